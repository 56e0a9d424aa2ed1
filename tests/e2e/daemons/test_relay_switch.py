"""Switching a chatmail relay from chatmail relay's Python metadata and
notifier service (chatmail-metadata.service) to metadata-dictd and
notifierd, as docs/operator-relay.md tells an operator to ("Switching a
chatmail relay to metadata-dictd and notifierd").

A relay's tree is laid out in a temp dir as chatmail relay lays it out
(chatmail_relay.py): /usr/local/lib/chatmaild/chatmail.ini as `cmdeploy
init` writes it, and the Python service's state under
/home/vmail/mail/<mail_domain>: metadata.json per address, a push still
pending in pending_notifications/. Then the guide's steps: the import
(`--config` and `--import-chatmaild` on those paths), metadata-dictd and
notifierd started with `--config`, and a real Dovecot (the module's,
with the project's drop-in, i.e. the dict socket and push script the
guide switches to) in front. What the clients had registered with the
old service must arrive: tokens through IMAP METADATA, the server
entries from chatmail.ini, the pending push and new mail's pushes at the
proxy. The old state must come out untouched, so that switching back
finds it.
"""

import os
import subprocess
import time

import pytest

from chatmail_relay import ChatmailRelayTree
from harness import (PUSHSTACK_BIN, leaked_secrets, register_secret, tail,
                     wait_until)
from test_metadata_dictd import (ALICE, BOB, DELTACHAT, FakeTurnHelper,
                                 QUEUE_ROWS, apns_token, openpgp_token,
                                 tokens_of)

DICTD = os.path.join(PUSHSTACK_BIN, "metadata-dictd")
CAROL = "carol@example.org"      # an address whose device never set a token


def run_import(ini_path, db_path, vmail):
    """The guide's step: metadata-dictd --config ... --db ...
    --import-chatmaild <mailboxes_dir>; returns the report's counts."""
    r = subprocess.run([DICTD, "--config", ini_path, "--db", db_path,
                        "--import-chatmaild", vmail],
                       capture_output=True, timeout=30)
    out = (r.stdout + r.stderr).decode(errors="replace")
    assert r.returncode == 0, "import exited %d:\n%s" % (r.returncode, out)
    lines = r.stdout.decode().splitlines()
    assert len(lines) == 1, out
    return {k: int(v) for k, v in (kv.split("=") for kv in lines[0].split())
            }, out


def test_switch_chatmail_relay(dovecot_server, dictd_factory,
                               notifierd_factory, fake_proxy, tmpdir):
    t0 = time.monotonic()
    dv = dovecot_server
    dv_log_start = len(dv.log_text())
    now = int(time.time())
    turn_path = os.path.join(tmpdir, "turn.sock")
    helper = FakeTurnHelper(turn_path)

    # The relay as chatmail relay left it. Alice has two devices (relay
    # 1.7 and later keep {token: seconds}), Bob one from an older relay
    # (a list) with a push still pending, Carol none.
    tree = ChatmailRelayTree(os.path.join(tmpdir, "relay"), "example.org",
                             turn_socket_path=turn_path)
    a1, a2, b1 = openpgp_token(), openpgp_token(), apns_token()
    for tok in (a1, a2, b1):
        register_secret(tok)
    tree.add_user(ALICE, {a1: now - 86400, a2: now - 60})
    tree.add_user(BOB, [b1])
    tree.add_user(CAROL)
    tree.add_pending(BOB, now - 30, b1)
    before = tree.snapshot()
    assert tree.vmail == os.path.join(tree.root, "home/vmail/mail/example.org")

    try:
        # Step: import, before the daemons start.
        dictd = dictd_factory(socket_path=dv.dict_socket, start=False,
                              bind_notify=False,
                              extra_args=["--config", tree.ini_path])
        counts, out = run_import(tree.ini_path, dictd.db_path, tree.vmail)
        assert leaked_secrets(out, [a1, a2, b1]) == []
        assert (counts["users"], counts["metadata_files"],
                counts["tokens_imported"], counts["pending_queued"],
                counts["files_skipped"]) == (3, 2, 3, 1, 0), counts

        # Step: start both daemons with --config chatmail.ini.
        dictd.start()
        notifierd = notifierd_factory(wake_socket=dictd.notify_path,
                                      extra_args=["--config",
                                                  tree.ini_path])
        # The push chatmaild had not sent yet goes out at once.
        fake_proxy.wait_for(pred=lambda reqs: any(r.body == b1
                                                  for r in reqs),
                            what="bob's pending push")

        # Through Dovecot, as a client after the switch: its tokens (in
        # the order chatmaild's timestamps give them) and the relay's
        # server entries, from chatmail.ini.
        with dv.imap(ALICE) as c:
            assert tokens_of(c.get_entry("INBOX",
                                         "/private/devicetoken")) == [a1, a2]
            r, md = c.getmetadata("", DELTACHAT + "irohrelay",
                                  DELTACHAT + "turn",
                                  DELTACHAT + "maxsmtprecipients")
            assert r.status == "OK", r.text
        assert md == {
            DELTACHAT + "irohrelay": b"https://example.org",
            DELTACHAT + "turn": ("example.org:3478:" +
                                 helper.credentials(1)).encode(),
            DELTACHAT + "maxsmtprecipients": b"1000",
        }, md
        with dv.imap(BOB) as c:
            assert tokens_of(c.get_entry("INBOX",
                                         "/private/devicetoken")) == [b1]

        # New mail after the switch: one push per device of Alice, by
        # push.lua -> metadata-dictd -> notifierd -> the proxy.
        assert dv.lmtp_deliver(BOB, ALICE) == {}
        fake_proxy.wait_for(pred=lambda reqs: {a1, a2} <= {r.body
                                                          for r in reqs},
                            what="alice's pushes")
        # Each answered 200: nothing is left queued.
        wait_until(lambda: dictd.db_query(QUEUE_ROWS) == [],
                   what="an empty queue")
        assert "config key not used" in notifierd.log_text()

        # Switching back: chatmaild's files are as they were (the import
        # and the daemons only read them).
        assert tree.snapshot() == before
    finally:
        helper.stop()
        text = dv.log_text()[dv_log_start:]
        bad = [line for line in text.splitlines()
               if "Panic:" in line or "Fatal:" in line]
        if bad or not dv.ready():
            pytest.fail("dovecot: %s\n%s" % ("\n".join(bad),
                                             tail(dv.log_path)),
                        pytrace=False)
        assert leaked_secrets(text) == []
    assert time.monotonic() - t0 < 15
