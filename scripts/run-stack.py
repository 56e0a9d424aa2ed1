#!/usr/bin/python3
"""Run the push stack locally, in a temp dir, until Ctrl-C.

Today this is the relay side: a real Dovecot (IMAP + LMTP, the project's
dovecot-conf drop-in and push.lua), metadata-dictd and notifierd, with a
local fake push proxy (tests/e2e/fake_proxy.py) standing in for proxyd. It
registers a demo device the way chatmail core does (CAPABILITY, then
SETMETADATA with a LITERAL+ token), delivers a mail over LMTP, and shows
the token arriving at the proxy with the measured latency. proxyd and the
fake providers join this runner when they exist.

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
from fake_proxy import FakeProxy  # noqa: E402


def main():
    tmp = harness.make_world_tmpdir("push-stack-")
    dictd = dovecot = notifierd = proxy = None
    stop = []
    signal.signal(signal.SIGTERM, lambda *a: stop.append(1))
    try:
        proxy = FakeProxy(default=200).start()
        dictd = harness.Dictd(tmp, log_level="info",
                              bind_notify=False).start()
        notifierd = harness.Notifierd(tmp, dictd.db_path, proxy.url,
                                      wake_socket=dictd.notify_path,
                                      retry_base="8s", poll="1s",
                                      log_level="info").start()
        dovecot = harness.Dovecot(tmp, dictd.socket_path)
        dovecot.start()
        print("push stack (relay side) running in %s" % tmp)
        print("  IMAP            127.0.0.1:%d  (alice@example.org / "
              "alicepass, bob@example.org / bobpass)" % dovecot.imap_port)
        print("  LMTP            %s" % dovecot.lmtp_path)
        print("  dict socket     %s" % dictd.socket_path)
        print("  relay database  %s" % dictd.db_path)
        print("  push proxy      %s (fake: answers 200, prints nothing "
              "secret)" % proxy.url)
        print("  metrics         http://127.0.0.1:%d/metrics (notifierd)"
              % notifierd.metrics_port)
        print("  logs            %s, %s, %s" % (dovecot.log_path,
                                                dictd.log_path,
                                                notifierd.log_path))

        imap = dovecot.imap("alice@example.org")
        caps = imap.capabilities()
        print("client: CAPABILITY has XDELTAPUSH: %s" % ("XDELTAPUSH" in caps))
        demo_token = "openpgp:" + "QUJD" * 150  # stands for a real one
        r = imap.set_devicetoken(demo_token)
        print("client: SETMETADATA INBOX /private/devicetoken -> %s"
              % r.status)
        imap.close()

        timing = {}
        dovecot.lmtp_deliver("bob@example.org", "alice@example.org",
                             subject="demo", timing=timing)
        proxy.wait_for(count=1, timeout=10)
        # The push is sent while Dovecot is still finishing the delivery,
        # so it can arrive before the client has read LMTP's final 250.
        print("mail bob -> alice: LMTP took %.1f ms from MAIL FROM to the "
              "final 250; the token reached the push proxy %.1f ms after "
              "MAIL FROM" % ((timing["done"] - timing["start"]) * 1000,
                             (proxy.requests[0].t - timing["start"]) * 1000))
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
        if notifierd is not None:
            notifierd.stop()
        if dictd is not None:
            dictd.stop()
            dictd.close()
        if proxy is not None:
            proxy.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
