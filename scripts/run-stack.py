#!/usr/bin/python3
"""Run the push stack locally, in a temp dir, until Ctrl-C.

The whole chain: a real Dovecot (IMAP + LMTP, the project's dovecot-conf
drop-in and push.lua), metadata-dictd, notifierd, proxyd with the shared
test keyring, and a local fake Apple APNs (tests/e2e/fake_apns.py: HTTP/2
over TLS, checking the client certificate proxyd presents) standing in for
Apple. It registers a demo device the way chatmail core does (CAPABILITY,
then SETMETADATA with a LITERAL+ `openpgp:` token encrypted by OpenPGP.js
exactly as core encrypts it; a pre-encrypted test vector when Node.js is
missing), delivers a mail over LMTP, and shows the push arriving at the
fake APNs with the measured latency.

Uses the end-to-end harness (tests/e2e/harness.py), so the demo and the
tests start everything the same way.
"""
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "e2e"))

import harness  # noqa: E402
from fake_apns import FakeApns  # noqa: E402
from pki import make_pki  # noqa: E402

OPENPGP_JS_DIR = os.path.join(ROOT, "tests", "e2e", "openpgp_js")


def demo_token():
    """(plain APNs token, what the client stores): a fresh token
    encrypted like chatmail core when Node.js is there, else the shared
    test vector core_apns_k1."""
    plain = secrets.token_hex(32)
    if shutil.which("node") and shutil.which("npm"):
        if not os.path.isdir(os.path.join(OPENPGP_JS_DIR, "node_modules",
                                          "openpgp")):
            subprocess.run(["npm", "ci", "--no-audit", "--no-fund"],
                           cwd=OPENPGP_JS_DIR, check=True,
                           capture_output=True, timeout=300)
        return plain, harness.openpgp_js_encrypt(plain)
    row = next(r for r in harness.openpgp_vectors()
               if r["name"] == "core_apns_k1")
    return row["expected"], row["input"]


def main():
    tmp = harness.make_world_tmpdir("push-stack-")
    apns = proxyd = dictd = notifierd = dovecot = None
    stop = []
    signal.signal(signal.SIGTERM, lambda *a: stop.append(1))
    try:
        pki = make_pki(os.path.join(tmp, "pki"))
        apns = FakeApns(pki, mode="cert").start()
        proxyd = harness.Proxyd(tmp, apns=apns, pki=pki, debounce="10s",
                                interval="20m", log_level="info").start()
        dictd = harness.Dictd(tmp, log_level="info",
                              bind_notify=False).start()
        notifierd = harness.Notifierd(
            tmp, dictd.db_path, "http://127.0.0.1:%d/notify" % proxyd.port,
            wake_socket=dictd.notify_path, retry_base="8s", poll="1s",
            log_level="info").start()
        dovecot = harness.Dovecot(tmp, dictd.socket_path)
        dovecot.start()
        print("push stack running in %s" % tmp)
        print("  IMAP            127.0.0.1:%d  (alice@example.org / "
              "alicepass, bob@example.org / bobpass)" % dovecot.imap_port)
        print("  LMTP            %s" % dovecot.lmtp_path)
        print("  relay database  %s" % dictd.db_path)
        print("  proxyd          http://127.0.0.1:%d/notify  (metrics "
              "http://127.0.0.1:%d/metrics)" % (proxyd.port,
                                                 proxyd.metrics_port))
        print("  fake APNs       %s  (client certificate required)"
              % apns.url)
        print("  logs            %s" % tmp)

        plain, stored = demo_token()
        imap = dovecot.imap("alice@example.org")
        caps = imap.capabilities()
        print("client: CAPABILITY has XDELTAPUSH: %s" % ("XDELTAPUSH" in caps))
        r = imap.set_devicetoken(stored)
        print("client: SETMETADATA INBOX /private/devicetoken "
              "(openpgp:, %d bytes) -> %s" % (len(stored), r.status))
        imap.close()

        timing = {}
        dovecot.lmtp_deliver("bob@example.org", "alice@example.org",
                             subject="demo", timing=timing)
        apns.wait_for(count=1, timeout=15)
        got = apns.requests[0]
        # The fake stamps wall-clock time; LMTP timing is monotonic.
        got_mono = got.t - time.time() + time.monotonic()
        print("mail bob -> alice: LMTP took %.1f ms from MAIL FROM to the "
              "final 250; Apple's stand-in got the push for the device "
              "%.1f ms after MAIL FROM (token matches: %s)"
              % ((timing["done"] - timing["start"]) * 1000,
                 (got_mono - timing["start"]) * 1000, got.token == plain))
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
        for d in (notifierd, dictd, proxyd):
            if d is not None:
                d.stop()
        if dictd is not None:
            dictd.close()
        if apns is not None:
            apns.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
