#!/usr/bin/python3
"""Run the push stack locally, in a temp dir, until Ctrl-C.

Today this is the relay side: a real Dovecot (IMAP + LMTP, the project's
dovecot-conf drop-in and push.lua) and metadata-dictd. It registers a demo
device the way chatmail core does (CAPABILITY, then SETMETADATA with a
LITERAL+ token), delivers a mail over LMTP, and shows the notification job
that metadata-dictd queued, with the measured time from LMTP acceptance.
notifierd and proxyd join this runner when they exist.

Uses the end-to-end harness (tests/e2e/harness.py), so the demo and the
tests start everything the same way.
"""
import os
import shutil
import signal
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "e2e"))

import harness  # noqa: E402


def main():
    tmp = harness.make_world_tmpdir("push-stack-")
    dictd = dovecot = None
    stop = []
    signal.signal(signal.SIGTERM, lambda *a: stop.append(1))
    try:
        dictd = harness.Dictd(tmp, log_level="info").start()
        dovecot = harness.Dovecot(tmp, dictd.socket_path)
        dovecot.start()
        print("push stack (relay side) running in %s" % tmp)
        print("  IMAP            127.0.0.1:%d  (alice@example.org / "
              "alicepass, bob@example.org / bobpass)" % dovecot.imap_port)
        print("  LMTP            %s" % dovecot.lmtp_path)
        print("  dict socket     %s" % dictd.socket_path)
        print("  relay database  %s" % dictd.db_path)
        print("  logs            %s, %s" % (dovecot.log_path, dictd.log_path))

        imap = dovecot.imap("alice@example.org")
        caps = imap.capabilities()
        print("client: CAPABILITY has XDELTAPUSH: %s" % ("XDELTAPUSH" in caps))
        demo_token = "openpgp:" + "QUJD" * 150  # stands for a real one
        r = imap.set_devicetoken(demo_token)
        print("client: SETMETADATA INBOX /private/devicetoken -> %s"
              % r.status)
        imap.close()

        before = dictd.db_query("SELECT coalesce(max(id), 0) FROM queue")[0][0]
        t0 = time.monotonic()
        dovecot.lmtp_deliver("bob@example.org", "alice@example.org",
                             subject="demo")
        t1 = time.monotonic()
        rows = dictd.db_query("SELECT id, user, state FROM queue "
                              "WHERE id > ?", (before,))
        print("mail bob -> alice delivered over LMTP in %.1f ms; queued "
              "jobs: %s" % ((t1 - t0) * 1000,
                            ", ".join("#%d for %s" % (i, u)
                                      for i, u, _ in rows) or "none"))
        print("Ctrl-C stops everything.")
        while not stop:
            try:
                time.sleep(1)
            except KeyboardInterrupt:
                break
    finally:
        print("stopping")
        if dovecot is not None:
            dovecot.stop(check=False)
        if dictd is not None:
            dictd.stop()
            dictd.close()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
