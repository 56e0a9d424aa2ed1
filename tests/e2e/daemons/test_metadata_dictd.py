"""End-to-end tests of metadata-dictd behind a real Dovecot 2.3.19.

Spec: docs/metadata-dictd.md; wire protocol:
docs/dovecot-dict-protocol.md. Each test gets a fresh temp dir and a
fresh metadata-dictd with an empty database; tests that ask for `dovecot`
share the module's Dovecot, which uses the project's drop-in config
(see conftest.py). Every check reads the per-test database or daemon, so the
order of tests does not matter.
"""

import base64
import json
import os
import resource
import selectors
import shutil
import signal
import socket
import struct
import subprocess
import threading
import time
import urllib.request
import uuid

import pytest

from harness import (HANDSHAKE, PUSHSTACK_BIN, Dovecot, dict_reply_fields,
                     free_tcp_port, imap_quote, leaked_secrets,
                     make_world_tmpdir, register_like_core, register_secret,
                     tab_escape, wait_until)

ALICE = "alice@example.org"
BOB = "bob@example.org"
TOKEN_MAX_BYTES = 8192


def openpgp_token(b64_chars=600):
    """Looks like what chatmail core sends: openpgp: + base64 ciphertext."""
    raw = os.urandom(b64_chars * 3 // 4)
    return "openpgp:" + base64.b64encode(raw).decode()[:b64_chars]


def apns_token():
    return os.urandom(32).hex()


def sized_token(total):
    tok = "openpgp:" + base64.b64encode(os.urandom(total)).decode()
    return tok[:total]


def guid():
    return uuid.uuid4().hex


def now_ms():
    return int(time.time() * 1000)


def tokens_of(value):
    """Split a devicetoken GETMETADATA value; checks the single-space join."""
    assert value is not None, "expected tokens, got NIL"
    text = value.decode()
    parts = text.split(" ")
    assert all(parts), "tokens not joined by single spaces: %r" % text[:200]
    return parts


# queue rows reference tokens by id (docs/metadata-dictd.md, "What it stores")
QUEUE_ROWS = ("SELECT q.user, t.token, q.state, q.attempts FROM queue q "
              "JOIN tokens t ON t.id = q.token_id")


def db_tokens(dictd, user=None):
    if user is None:
        return sorted(dictd.db_query("SELECT user, token FROM tokens"))
    return sorted(r[0] for r in dictd.db_query(
        "SELECT token FROM tokens WHERE user = ?", (user,)))


def set_token(dovecot, user, token):
    with dovecot.imap(user) as c:
        r = c.set_devicetoken(token)
        assert r.status == "OK", "SETMETADATA devicetoken -> %s %s" % (
            r.status, r.text)


def assert_still_serving(dictd):
    """A fresh connection can commit and look up a value."""
    key = "priv/%s/alive" % guid()
    value = "still here " + uuid.uuid4().hex
    with dictd.client() as c:
        reply = c.transaction(1, ALICE, sets=[(key, value)])
        assert reply[:1] == b"O", "commit -> %r" % reply
        assert c.lookup_value(key, ALICE) == value.encode()


# ---------------------------------------------------------------------------
# Through Dovecot (IMAP and LMTP)


def test_capabilities_advertise_push(dovecot):
    with dovecot.imap() as c:
        greeting = c.greeting[0].decode()
        assert "XDELTAPUSH" in greeting and "XCHATMAIL" in greeting, greeting
        caps = c.capabilities()
        assert {"XDELTAPUSH", "XCHATMAIL"} <= caps, caps
        c.login(ALICE, "alicepass")
        caps = c.capabilities()
        assert {"XDELTAPUSH", "XCHATMAIL", "METADATA"} <= caps, caps


def test_core_258_registers_a_quoted_token_on_every_session(dovecot,
                                                            dictd):
    """chatmail core 2.58+: no CAPABILITY command (XDELTAPUSH is read from
    the greeting and LOGIN's answer), the 924-character token as a quoted
    string, and the byte-identical ciphertext again on every new IMAP
    session: one row, refreshed, never a duplicate."""
    tok = openpgp_token(916)
    assert len(tok) == 924
    reg = register_like_core(dovecot, ALICE, tok)
    assert "XDELTAPUSH" in reg.greeting_caps, reg.greeting_caps
    assert {"XDELTAPUSH", "METADATA"} <= reg.login_caps, reg.login_caps
    assert reg.push_by == "XDELTAPUSH"
    assert reg.result.status == "OK", reg.result
    # the server metadata core reads after LOGIN is answered
    assert reg.server_metadata[
        "/shared/vendor/deltachat/maxsmtprecipients"] == b"1000"
    rows = dictd.db_query("SELECT token, updated_at FROM tokens")
    assert [r[0] for r in rows] == [tok]
    first = rows[0][1]
    wait_until(lambda: now_ms() > first + 5, timeout=2, what="clock")
    for _ in range(3):                      # three more sessions
        assert register_like_core(dovecot, ALICE, tok).result.status == "OK"
    rows = dictd.db_query("SELECT token, updated_at FROM tokens")
    assert len(rows) == 1 and rows[0][0] == tok and rows[0][1] > first
    with dovecot.imap(ALICE) as c:
        assert c.get_entry("INBOX", "/private/devicetoken") == tok.encode()


def test_core_before_258_literal_plus_form(dovecot, dictd):
    """Core before 2.58 sent the token as a LITERAL+ literal ({924+}):
    still stored, the same as the quoted form; both forms of one token
    are one row."""
    tok = openpgp_token(916)
    reg = register_like_core(dovecot, ALICE, tok, form="literal")
    assert reg.result.status == "OK", reg.result
    assert db_tokens(dictd) == [(ALICE, tok)]
    assert register_like_core(dovecot, ALICE, tok).result.status == "OK"
    assert db_tokens(dictd) == [(ALICE, tok)]


def test_server_without_xdeltapush_gets_tokens_by_core_rule(dictd_factory):
    """Core treats a server as push-capable when it advertises XDELTAPUSH
    or answers /shared/vendor/deltachat/maxsmtprecipients. A Dovecot whose
    imap_capability lacks XDELTAPUSH still gets the token stored: core
    sees maxsmtprecipients answered by metadata-dictd."""
    tmp = make_world_tmpdir("e2e-dovecot-nopush-")
    dv = Dovecot(tmp, os.path.join(tmp, "dict.sock"),
                 imap_capability="+XCHATMAIL")
    d = dictd_factory(name="nopush", socket_path=dv.dict_socket)
    try:
        dv.start()
        tok = openpgp_token(916)
        reg = register_like_core(dv, ALICE, tok)
        assert "XDELTAPUSH" not in (reg.greeting_caps or set()), \
            reg.greeting_caps
        assert "XDELTAPUSH" not in (reg.login_caps or set()), reg.login_caps
        assert reg.push_by == "maxsmtprecipients", reg.server_metadata
        assert reg.result.status == "OK", reg.result
        assert db_tokens(d) == [(ALICE, tok)]
        # and a mail for that user queues a push for the token
        assert dv.lmtp_deliver(BOB, ALICE) == {}
        wait_until(lambda: d.db_query("SELECT count(*) FROM queue")[0][0]
                   == 1, timeout=5, what="one queued job")
    finally:
        dv.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def test_devicetokens_of_several_devices_and_users(dovecot, dictd):
    alice1, alice2, bob1 = openpgp_token(), apns_token(), openpgp_token()
    set_token(dovecot, ALICE, alice1)       # first device
    set_token(dovecot, ALICE, alice2)       # second device, own session
    set_token(dovecot, BOB, bob1)

    with dovecot.imap(ALICE) as c:
        got = tokens_of(c.get_entry("INBOX", "/private/devicetoken"))
    assert len(got) == 2 and set(got) == {alice1, alice2}
    with dovecot.imap(BOB) as c:
        assert tokens_of(c.get_entry("INBOX", "/private/devicetoken")) == [
            bob1]

    assert db_tokens(dictd) == sorted([(ALICE, alice1), (ALICE, alice2),
                                       (BOB, bob1)])


def test_devicetoken_reset_refreshes_not_duplicates(dovecot, dictd):
    tok = openpgp_token()
    set_token(dovecot, ALICE, tok)
    rows = dictd.db_query("SELECT updated_at FROM tokens WHERE user = ?",
                          (ALICE,))
    assert len(rows) == 1
    before = rows[0][0]
    assert abs(now_ms() - before) < 60_000, "updated_at is not unix ms"
    wait_until(lambda: now_ms() > before + 5, timeout=2, what="clock")

    set_token(dovecot, ALICE, tok)
    rows = dictd.db_query("SELECT token, updated_at FROM tokens "
                          "WHERE user = ?", (ALICE,))
    assert len(rows) == 1 and rows[0][0] == tok
    assert rows[0][1] > before
    with dovecot.imap(ALICE) as c:
        assert tokens_of(c.get_entry("INBOX", "/private/devicetoken")) == [
            tok]


def test_unset_is_nil_and_values_round_trip(dovecot, dictd):
    raw = b"x\ty\r\nz\x01w \xc3\xa4 \xe2\x9c\x89 end"
    shared_raw = b"shared\t\x01\x01\r\n\xf0\x9f\x93\xac"
    with dovecot.imap(ALICE) as c:
        assert c.get_entry("INBOX", "/private/devicetoken") is None
        assert c.get_entry("INBOX", "/private/nothere") is None
        assert c.get_entry("INBOX", "/shared/nothere") is None

        r = c.setmetadata("INBOX", [("/private/esc", raw)])
        assert r.status == "OK", r.text
        r = c.setmetadata("INBOX", [("/shared/esc", shared_raw)])
        assert r.status == "OK", r.text
        r = c.setmetadata("INBOX", [("/private/plain", "hello world"),
                                    ("/private/empty", "")])
        assert r.status == "OK", r.text

        assert c.get_entry("INBOX", "/private/esc") == raw
        assert c.get_entry("INBOX", "/shared/esc") == shared_raw
        assert c.get_entry("INBOX", "/private/plain") == b"hello world"
        # a found empty string is not NIL
        assert c.get_entry("INBOX", "/private/empty") == b""

    # private keys are stored under the user, shared ones under ''
    rows = dictd.db_query("SELECT user, key FROM metadata")
    assert sorted((u, k.split("/")[0], k.rsplit("/", 1)[1])
                  for u, k in rows) == sorted([
                      (ALICE, "priv", "esc"), (ALICE, "priv", "plain"),
                      (ALICE, "priv", "empty"), ("", "shared", "esc")])

    with dovecot.imap(BOB) as c:
        assert c.get_entry("INBOX", "/private/esc") is None
        assert c.get_entry("INBOX", "/shared/esc") is None


def test_depth_listings(dovecot):
    tok = apns_token()
    with dovecot.imap(ALICE) as c:
        assert c.set_devicetoken(tok).status == "OK"
        r = c.setmetadata("INBOX", [("/private/a", "1"),
                                    ("/private/a/b", "2"),
                                    ("/shared/s", "3")])
        assert r.status == "OK", r.text

        r, md = c.getmetadata("INBOX", "/private", depth=1)
        assert r.status == "OK", r.text
        assert md == {"/private/devicetoken": tok.encode(),
                      "/private/a": b"1"}

        r, md = c.getmetadata("INBOX", "/private", depth="infinity")
        assert r.status == "OK", r.text
        assert md == {"/private/devicetoken": tok.encode(),
                      "/private/a": b"1", "/private/a/b": b"2"}

        r, md = c.getmetadata("INBOX", "/private", "/shared",
                              depth="infinity")
        assert r.status == "OK", r.text
        assert md == {"/private/devicetoken": tok.encode(),
                      "/private/a": b"1", "/private/a/b": b"2",
                      "/shared/s": b"3"}

    with dovecot.imap(BOB) as c:
        r, md = c.getmetadata("INBOX", "/private", "/shared",
                              depth="infinity")
        assert r.status == "OK", r.text
        assert md == {}


def test_devicetoken_nil_removes_all_tokens_of_user(dovecot, dictd):
    alice1, alice2, bob1 = openpgp_token(), apns_token(), apns_token()
    for user, tok in ((ALICE, alice1), (ALICE, alice2), (BOB, bob1)):
        set_token(dovecot, user, tok)
    assert len(db_tokens(dictd, ALICE)) == 2

    with dovecot.imap(ALICE) as c:
        r = c.setmetadata("INBOX", [("/private/devicetoken", None)])
        assert r.status == "OK", r.text
        assert c.get_entry("INBOX", "/private/devicetoken") is None
    assert db_tokens(dictd, ALICE) == []

    assert db_tokens(dictd, BOB) == [bob1]
    with dovecot.imap(BOB) as c:
        assert tokens_of(c.get_entry("INBOX", "/private/devicetoken")) == [
            bob1]


def test_mailbox_delete_removes_its_attributes(dovecot, dictd):
    tok, box_tok = openpgp_token(), apns_token()
    with dovecot.imap(ALICE) as c:
        assert c.set_devicetoken(tok).status == "OK"
        assert c.setmetadata("INBOX", [("/private/keep", "k"),
                                       ("/shared/keep", "s")]).status == "OK"
        box = "Chats-" + guid()[:8]
        c.create(box)
        r = c.setmetadata(box, [("/private/p", "pv"), ("/shared/s", "sv")])
        assert r.status == "OK", r.text
        assert c.get_entry(box, "/private/p") == b"pv"
        assert c.get_entry(box, "/shared/s") == b"sv"
        # a token belongs to the mailbox it was set on (docs/metadata-dictd.md)
        r = c.set_devicetoken(box_tok, mailbox=imap_quote(box))
        assert r.status == "OK", r.text
        assert db_tokens(dictd, ALICE) == sorted([tok, box_tok])

        rows = dictd.db_query("SELECT user, key FROM metadata")
        by_name = {k.rsplit("/", 1)[1] + "@" + k.split("/")[0]: (u, k)
                   for u, k in rows}
        assert set(by_name) == {"keep@priv", "keep@shared", "p@priv",
                                "s@shared"}
        inbox_guid = by_name["keep@priv"][1].split("/")[1]
        chats_guid = by_name["p@priv"][1].split("/")[1]
        assert chats_guid != inbox_guid
        assert by_name["s@shared"] == ("", "shared/%s/s" % chats_guid)

        c.delete(box)

        rows = dictd.db_query("SELECT user, key FROM metadata")
        assert not [k for _, k in rows if chats_guid in k], rows
        assert sorted(rows) == sorted([(ALICE, "priv/%s/keep" % inbox_guid),
                                       ("", "shared/%s/keep" % inbox_guid)])
        assert c.get_entry("INBOX", "/private/keep") == b"k"
        assert c.get_entry("INBOX", "/private/devicetoken") == tok.encode()
    # the deleted mailbox's token went with it; INBOX's stayed
    assert db_tokens(dictd, ALICE) == [tok]


def test_restart_keeps_everything(dovecot, dictd):
    alice1, alice2, bob1 = openpgp_token(), apns_token(), openpgp_token()
    value = b"line1\r\nline2\tx\x01y \xc3\xa4"
    for user, tok in ((ALICE, alice1), (ALICE, alice2), (BOB, bob1)):
        set_token(dovecot, user, tok)
    with dovecot.imap(ALICE) as c:
        assert c.setmetadata("INBOX", [("/private/k", value)]).status == "OK"
        assert c.setmetadata("INBOX", [("/shared/k", "sv")]).status == "OK"

    dictd.restart()          # SIGTERM must give exit 0; start again

    with dovecot.imap(ALICE) as c:
        got = tokens_of(c.get_entry("INBOX", "/private/devicetoken"))
        assert len(got) == 2 and set(got) == {alice1, alice2}
        assert c.get_entry("INBOX", "/private/k") == value
        assert c.get_entry("INBOX", "/shared/k") == b"sv"
    with dovecot.imap(BOB) as c:
        assert tokens_of(c.get_entry("INBOX", "/private/devicetoken")) == [
            bob1]


def test_lmtp_delivery_queues_one_row_per_token(dovecot, dictd):
    alice1, alice2 = openpgp_token(), apns_token()
    set_token(dovecot, ALICE, alice1)
    set_token(dovecot, ALICE, alice2)

    # Mail the user sent to themself wakes nobody (push.lua skips it).
    assert dovecot.lmtp_deliver(ALICE, ALICE) == {}
    assert dictd.db_query("SELECT * FROM queue") == []
    # bob has no token: nothing to queue. The commit is synchronous inside
    # the delivery, so LMTP's 250 means the dict work is done.
    assert dovecot.lmtp_deliver(ALICE, BOB) == {}
    assert dictd.db_query("SELECT * FROM queue") == []

    assert dovecot.lmtp_deliver(BOB, ALICE) == {}
    rows = dictd.db_query(QUEUE_ROWS)
    assert sorted(rows) == sorted([(ALICE, alice1, 0, 0),
                                   (ALICE, alice2, 0, 0)])
    # messagenew is turned into queue rows, never stored as metadata
    assert dictd.db_query("SELECT key FROM metadata") == []

    wait_until(dictd.notify_drain, timeout=5, what="notify datagram")
    # Only the delivery that queued jobs woke notifierd (datagrams from a
    # single sender arrive in order, so earlier ones would be here too).
    assert len(dictd.notify_drain()) == 1


def test_lmtp_delivery_without_notifierd(dovecot, dictd):
    """The wake-up datagram is best effort: with nobody on the notify
    socket the jobs are still queued and the mail delivered."""
    tok = apns_token()
    set_token(dovecot, ALICE, tok)
    dictd.close()
    os.unlink(dictd.notify_path)
    assert dovecot.lmtp_deliver(BOB, ALICE) == {}
    assert dictd.db_query(QUEUE_ROWS) == [(ALICE, tok, 0, 0)]
    assert dovecot.lmtp_deliver(BOB, ALICE) == {}
    assert len(dictd.db_query("SELECT * FROM queue")) >= 1
    assert dictd.running


def test_token_size_limit(dovecot, dictd):
    too_big = sized_token(9000)
    exact = sized_token(TOKEN_MAX_BYTES)
    assert len(too_big) == 9000 and len(exact) == TOKEN_MAX_BYTES
    with dovecot.imap(ALICE) as c:
        r = c.set_devicetoken(too_big)
        assert r.status == "NO", "9000-byte token accepted: %s" % r.text
        assert c.get_entry("INBOX", "/private/devicetoken") is None
        assert db_tokens(dictd) == []

        r = c.set_devicetoken(exact)
        assert r.status == "OK", r.text
        assert c.get_entry("INBOX", "/private/devicetoken") == exact.encode()
    assert db_tokens(dictd) == [(ALICE, exact)]


def test_invalid_tokens_fail_the_whole_transaction(dovecot, dictd):
    with dovecot.imap(ALICE) as c:
        for bad in (b"has a space" + os.urandom(8).hex().encode(), b"",
                    b"ctl\x01byte" + os.urandom(8).hex().encode()):
            r = c.set_devicetoken(bad)
            assert r.status == "NO", "token %r accepted" % bad
        # one transaction with a bad token and another entry: all or nothing
        r = c.setmetadata("INBOX", [("/private/devicetoken", "two words"),
                                    ("/private/other", "x")])
        assert r.status == "NO", r.text
        assert c.get_entry("INBOX", "/private/other") is None
        assert c.get_entry("INBOX", "/private/devicetoken") is None
    assert db_tokens(dictd) == []
    assert dictd.db_query("SELECT * FROM metadata") == []


@pytest.mark.dictd_args("--token-ttl", "2s")
def test_token_expiry(dovecot, dictd):
    tok = openpgp_token()
    with dovecot.imap(ALICE) as c:
        assert c.set_devicetoken(tok).status == "OK"
        assert c.get_entry("INBOX", "/private/devicetoken") == tok.encode()
        wait_until(lambda: c.get_entry("INBOX", "/private/devicetoken")
                   is None, timeout=10, interval=0.2,
                   what="token to expire (--token-ttl 2s)")
    # new-mail events ignore expired tokens before the sweep removes them
    assert dovecot.lmtp_deliver(BOB, ALICE) == {}
    assert dictd.db_query("SELECT * FROM queue") == []


def _scrape(port):
    # No proxy: the request must stay on loopback whatever the environment.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open("http://127.0.0.1:%d/metrics" % port, timeout=5) as r:
        assert r.status == 200
        ctype = r.headers.get("Content-Type", "")
        assert ctype.startswith("application/openmetrics-text"), ctype
        return r.read().decode()


def _samples(text):
    """{sample name: value summed over its label sets}."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        if "}" in line:
            name = line.split("{", 1)[0]
            rest = line.rsplit("}", 1)[1].split()
        else:
            name, *rest = line.split()
        out[name] = out.get(name, 0.0) + float(rest[0])
    return out


def test_metrics(dovecot, dictd):
    port = free_tcp_port()
    dictd.restart(extra_args=["--metrics", "127.0.0.1:%d" % port])

    def scrape_ok():
        try:
            return _scrape(port)
        except OSError:
            return None

    text = wait_until(scrape_ok, timeout=10, what="metrics listener")
    assert text.endswith("# EOF\n") or text.endswith("# EOF"), text[-200:]

    alice1, alice2 = openpgp_token(), apns_token()
    set_token(dovecot, ALICE, alice1)
    set_token(dovecot, ALICE, alice2)
    before = _samples(_scrape(port))
    assert "dictd_connections_total" in before, before
    assert "dictd_queue_rows_inserted_total" in before, before

    assert dovecot.lmtp_deliver(BOB, ALICE) == {}

    def after_delivery():
        s = _samples(_scrape(port))
        return s if (s["dictd_queue_rows_inserted_total"] >=
                     before["dictd_queue_rows_inserted_total"] + 2) else None

    after = wait_until(after_delivery, timeout=5, what="queue counter")
    assert (after["dictd_queue_rows_inserted_total"] -
            before["dictd_queue_rows_inserted_total"]) == 2
    assert (after["dictd_connections_total"] >
            before["dictd_connections_total"])
    text = _scrape(port)
    assert text.rstrip("\n").endswith("# EOF")


def test_logs_never_contain_tokens(dovecot, dictd):
    tokens = [openpgp_token(), apns_token(), openpgp_token(),
              sized_token(TOKEN_MAX_BYTES), sized_token(9000)]
    a1, a2, b1, exact, too_big = tokens
    set_token(dovecot, ALICE, a1)
    set_token(dovecot, ALICE, a2)
    set_token(dovecot, BOB, b1)
    set_token(dovecot, ALICE, a1)                       # refresh
    with dovecot.imap(ALICE) as c:
        assert c.set_devicetoken(too_big).status == "NO"
        assert c.set_devicetoken(exact).status == "OK"
        c.getmetadata("INBOX", "/private", depth="infinity")
        c.get_entry("INBOX", "/private/devicetoken")
    assert dovecot.lmtp_deliver(BOB, ALICE) == {}
    with dovecot.imap(ALICE) as c:
        assert c.setmetadata("INBOX", [("/private/devicetoken", None)]
                             ).status == "OK"
    # A transaction abandoned with a token in it, and unknown-id S lines.
    with dictd.client() as d:
        d.send(b"B1\t%s\nS1\tpriv/%s/devicetoken\t%s\nS9\tpriv/%s/devicetoken"
               b"\t%s\n" % (ALICE.encode(), guid().encode(), a2.encode(),
                            guid().encode(), b1.encode()))
        assert d.lookup_value("priv/%s/x" % guid(), ALICE) is None
    dictd.stop()                                        # flush everything
    log = dictd.log_text()
    assert log.strip(), "metadata-dictd wrote no log at all"
    assert leaked_secrets(log, tokens) == []


# ---------------------------------------------------------------------------
# Directly on the dict socket (no Dovecot)


def test_dict_overlong_line_closes_connection(dictd):
    key = "priv/%s/big" % guid()
    big = "v" * 60_000                       # under the 64 KiB line limit
    with dictd.client() as c:
        reply = c.transaction(1, ALICE, sets=[(key, big)])
        assert reply[:1] == b"O", reply[:100]
        assert c.lookup_value(key, ALICE) == big.encode()

    for what, payload in (
            ("70,000-byte line", b"L" + b"x" * 70_000 + b"\t" +
             ALICE.encode() + b"\n"),
            ("100,000 bytes without LF", b"S1\t" + b"y" * 100_000)):
        with dictd.client() as c:
            try:
                c.send(payload)
            except (BrokenPipeError, ConnectionResetError):
                pass
            assert c.wait_closed(), "%s did not close the connection" % what
    assert_still_serving(dictd)
    with dictd.client() as c:
        assert c.lookup_value(key, ALICE) == big.encode()


def test_dict_garbage_closes_connection(dictd):
    probe = b"Lpriv/%s/k\t%s\n" % (guid().encode(), ALICE.encode())
    cases = (
        ("unknown command letter", HANDSHAKE + b"Zfoo\tbar\n" + probe),
        ("binary garbage", HANDSHAKE + bytes(range(0x80, 0x100)) + b"\n" +
         probe),
        ("NUL bytes", HANDSHAKE + b"\x00\x00\x00\n" + probe),
        ("HTTP instead of the dict protocol",
         b"GET / HTTP/1.0\r\nHost: x\r\n\r\n" + probe),
        ("handshake major version 9", b"H9\t2\t0\t\tmetadata\n" + probe),
    )
    for what, payload in cases:
        with dictd.client(handshake=False) as c:
            try:
                c.send(payload)
            except (BrokenPipeError, ConnectionResetError):
                pass
            assert c.wait_closed(), \
                "%s: connection not closed (or answered)" % what
    assert_still_serving(dictd)


def test_dict_unknown_transaction_ids(dictd):
    k1 = "priv/%s/k1" % guid()
    k2 = "priv/%s/k2" % guid()
    with dictd.client() as c:
        c.send(b"S99\t%s\tv\nU98\t%s\n" % (k1.encode(), k2.encode()))
        c.send(b"C99\n")
        line = c.readline()
        assert line is not None and line[:1] == b"F", \
            "C for an unknown id -> %r" % line

    # Rolled back: nothing stored, and a later transaction works.
    with dictd.client() as c:
        c.send(b"B1\t%s\nS1\t%s\trolled-back\nR1\n" % (ALICE.encode(),
                                                      k1.encode()))
        reply = c.transaction(2, ALICE, sets=[(k2, "kept")])
        assert reply[:1] == b"O", reply
        assert c.lookup_value(k1, ALICE) is None
        assert c.lookup_value(k2, ALICE) == b"kept"
    assert dictd.db_query("SELECT key FROM metadata") == [(k2,)]
    assert_still_serving(dictd)


def test_dict_abrupt_close_discards_open_transaction(dictd):
    g = guid()
    k_open = "priv/%s/left-open" % g
    k_done = "priv/%s/committed" % g
    tok = apns_token()
    c1 = dictd.client()
    c1.send(b"B1\t%s\nS1\t%s\tv1\nS1\tpriv/%s/devicetoken\t%s\n"
            % (ALICE.encode(), k_open.encode(), g.encode(), tok.encode()))
    # A round trip on c1 proves the daemon has read B and S.
    assert c1.lookup_value(k_open, ALICE) is None
    # Same transaction id on another connection is another transaction.
    with dictd.client() as c2:
        reply = c2.transaction(1, ALICE, sets=[(k_done, "v2")])
        assert reply[:1] == b"O", reply
    c1.close()

    with dictd.client() as c3:
        assert c3.lookup_value(k_open, ALICE) is None
        assert c3.lookup_value(k_done, ALICE) == b"v2"
    assert dictd.db_query("SELECT key FROM metadata") == [(k_done,)]
    assert dictd.db_query("SELECT * FROM tokens") == []
    assert_still_serving(dictd)


def test_dict_client_gone_while_its_commit_waits(dictd):
    """A client pipelines a commit and a lookup, then hangs up while the
    commit waits for SQLite's write lock (held by another writer, as the
    chatmaild importer does): the data is stored, and the daemon, whose
    reply writes then fail, keeps serving (it once freed such a
    connection twice)."""
    import sqlite3
    g = guid()
    k = "priv/%s/k" % g
    other = sqlite3.connect(dictd.db_path, isolation_level=None, timeout=5)
    other.execute("BEGIN IMMEDIATE")
    try:
        s = socket.socket(socket.AF_UNIX)
        s.connect(dictd.socket_path)
        s.sendall(HANDSHAKE + b"B1\t%s\nS1\t%s\tv\nC1\nL%s\t%s\n"
                  % (ALICE.encode(), k.encode(), k.encode(), ALICE.encode()))
        time.sleep(0.2)             # read by the daemon, commit waiting
        s.close()
        time.sleep(0.3)
    finally:
        other.execute("COMMIT")
        other.close()
    wait_until(lambda: dictd.db_query("SELECT key FROM metadata") == [(k,)],
               timeout=10, what="the commit stored")
    assert_still_serving(dictd)


def test_dict_pipelined_replies_in_order(dictd):
    g = guid().encode()
    user = ALICE.encode()
    key = b"priv/" + g + b"/pipe"
    value = b"piped\tvalue\nwith escapes"
    burst = (HANDSHAKE +
             b"B1\t" + user + b"\n" +
             b"S1\t" + key + b"\t" + tab_escape(value) + b"\n" +
             b"C1\n" +
             b"L" + key + b"\t" + user + b"\n" +
             b"C7\n" +
             b"L" + b"priv/" + g + b"/missing\t" + user + b"\n")
    with dictd.client(handshake=False) as c:
        c.send(burst)
        replies = [c.readline() for _ in range(4)]
        assert None not in replies, replies
        codes = [r[:1] for r in replies]
        assert codes == [b"O", b"O", b"F", b"N"], replies
        assert dict_reply_fields(replies[1])[1] == value
        # Nothing was answered to H, B or S: the next line is the next reply.
        c.send(b"L" + key + b"\t" + user + b"\n")
        assert dict_reply_fields(c.readline())[1] == value


def test_dict_atomic_increment(dictd):
    g = guid()
    k, missing = "priv/%s/count" % g, "priv/%s/missing" % g
    user = ALICE.encode()
    with dictd.client() as c:
        assert c.transaction(1, ALICE, sets=[(k, "5")])[:1] == b"O"
        c.send(b"B2\t%s\nA2\t%s\t3\nC2\n" % (user, k.encode()))
        assert c.readline()[:1] == b"O"
        assert c.lookup_value(k, ALICE) == b"8"
        c.send(b"B3\t%s\nA3\t%s\t-10\nC3\n" % (user, k.encode()))
        assert c.readline()[:1] == b"O"
        assert c.lookup_value(k, ALICE) == b"-2"
        # a missing key answers "not found", like Dovecot's drivers
        c.send(b"B4\t%s\nA4\t%s\t1\nC4\n" % (user, missing.encode()))
        assert c.readline()[:1] == b"N"
        assert c.lookup_value(missing, ALICE) is None


def test_dict_transaction_limits(dictd):
    # 10,000 keys of one user: past --max-keys-per-user's default (256),
    # which test_metadata_dictd_bounds.py tests.
    dictd.restart(["--max-keys-per-user", "10000"])
    g = guid().encode()
    user = ALICE.encode()

    def tx(tid, prefix, count, value):
        return (b"B%d\t%s\n" % (tid, user) +
                b"".join(b"S%d\tpriv/%s/%s%d\t%s\n" % (tid, g, prefix, i,
                                                        value)
                         for i in range(count)) +
                b"C%d\n" % tid)

    # 10,000 changes take seconds under the sanitizers: this test is
    # about the limits, not the time.
    with dictd.client(timeout=60) as c:
        c.send(tx(1, b"ok", 10_000, b"x"))              # at the limit
        assert c.readline()[:1] == b"O"
        c.send(tx(2, b"many", 10_001, b"x"))            # one change too many
        assert c.readline()[:1] == b"F"
        c.send(tx(3, b"big", 71, b"y" * 60_000))        # > 1 MiB a conn
        assert c.readline()[:1] == b"F"
        assert c.lookup_value("priv/%s/ok9999" % g.decode(), ALICE) == b"x"
        assert c.lookup_value("priv/%s/many0" % g.decode(), ALICE) is None
        assert c.lookup_value("priv/%s/big0" % g.decode(), ALICE) is None
    assert dictd.db_query("SELECT count(*) FROM metadata") == [(10_000,)]


def test_dict_sigterm_with_open_connections_exits_0(dictd):
    k = "priv/%s/k" % guid()
    idle = dictd.client()
    busy = dictd.client()
    busy.send(b"B1\t%s\nS1\t%s\tuncommitted\n" % (ALICE.encode(),
                                                  k.encode()))
    assert busy.lookup_value(k, ALICE) is None
    dictd.stop()              # raises unless it exits 0 within the deadline
    for c in (idle, busy):
        assert c.wait_closed()
        c.close()
    assert dictd.db_query("SELECT * FROM metadata") == []


def test_dict_sigint_exits_0(dictd):
    with dictd.client() as c:
        assert c.lookup_value("priv/%s/k" % guid(), ALICE) is None
    proc, dictd.proc = dictd.proc, None
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=10) == 0


def test_dict_10k_concurrent_connections(dictd):
    n = 10_000
    need = n + 100                # the connections plus our own few files
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < need:
        pytest.skip("RLIMIT_NOFILE hard limit %d < %d: cannot open %d "
                    "connections" % (hard, need, n))
    target = 65536 if hard == resource.RLIM_INFINITY else hard
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, target), hard))
    socks = []
    try:
        # The daemon inherits the raised limit; these connections all
        # stay open, past the default --max-connections (4096, tested in
        # test_metadata_dictd_bounds.py).
        dictd.restart(["--max-connections", str(n + 16)])
        g = guid()
        users = ["user%d@example.org" % i for i in range(16)]
        with dictd.client() as c:
            for i, u in enumerate(users):
                reply = c.transaction(1, u, sets=[("priv/%s/k" % g,
                                                   "value-%d" % i)])
                assert reply[:1] == b"O", reply

        deadline = time.monotonic() + 20
        # A blocking connect waits while the listen backlog is full (a
        # non-blocking one would fail with EAGAIN); SO_SNDTIMEO bounds the
        # wait, after which connect raises BlockingIOError.
        sndtimeo = struct.pack("ll", 10, 0)
        for _ in range(n):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            socks.append(s)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, sndtimeo)
            s.connect(dictd.socket_path)
        sel = selectors.DefaultSelector()
        bufs = [b""] * n
        for i, s in enumerate(socks):
            s.setblocking(False)
            msg = HANDSHAKE + b"Lpriv/%s/k\t%s\n" % (
                g.encode(), users[i % 16].encode())
            assert s.send(msg) == len(msg)
            sel.register(s, selectors.EVENT_READ, i)
        answered = 0
        while answered < n:
            left = deadline - time.monotonic()
            assert left > 0, "only %d of %d answered in time" % (answered, n)
            events = sel.select(timeout=left)
            for key, _ in events:
                i = key.data
                data = key.fileobj.recv(4096)
                assert data, "connection %d closed without a reply" % i
                bufs[i] += data
                if b"\n" in bufs[i]:
                    sel.unregister(key.fileobj)
                    answered += 1
        sel.close()
        wrong = [(i, b) for i, b in enumerate(bufs)
                 if b.split(b"\n")[0].split(b"\t")[0] !=
                 b"Ovalue-%d" % (i % 16) or b.count(b"\n") != 1]
        assert not wrong, "%d wrong replies, e.g. %r" % (len(wrong),
                                                         wrong[:3])
    finally:
        for s in socks:
            s.close()
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    assert_still_serving(dictd)


# ---------------------------------------------------------------------------
# --import-chatmaild: moving from chatmail relay's Python service
# (docs/metadata-dictd.md, "Moving from chatmaild")


def write_chatmaild_tree(root, files):
    """files: {relative path: str or bytes}; directories made as needed."""
    for rel, content in files.items():
        path = os.path.join(root, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(content.encode() if isinstance(content, str)
                    else content)


def run_import(dictd, vmail, expect_rc=0):
    """metadata-dictd --db <dictd's db> --import-chatmaild vmail, while
    the daemon runs; returns ({count: int}, stdout + stderr)."""
    binary = os.path.join(PUSHSTACK_BIN, "metadata-dictd")
    r = subprocess.run([binary, "--db", dictd.db_path,
                        "--import-chatmaild", vmail],
                       capture_output=True, timeout=30)
    out = (r.stdout + r.stderr).decode(errors="replace")
    assert r.returncode == expect_rc, "import exited %d:\n%s" % (
        r.returncode, out)
    counts = {}
    if expect_rc == 0:
        lines = r.stdout.decode().splitlines()
        assert len(lines) == 1, "expected one report line: %r" % lines
        counts = {k: int(v) for k, v in
                  (kv.split("=") for kv in lines[0].split())}
    return counts, out


def pending_item(addr, start_ts, token):
    # chatmaild's PersistentQueueItem.create: f"{addr}\n{start_ts}\n{token}"
    return "%s\n%d\n%s" % (addr, start_ts, token)


def test_import_chatmaild_tree_then_getmetadata(dovecot, dictd, tmpdir):
    now = int(time.time())
    a1, a2, a_old = openpgp_token(), openpgp_token(), openpgp_token()
    b1, b2 = apns_token(), openpgp_token()
    tokens = [a1, a2, a_old, b1, b2]
    for t in tokens:
        register_secret(t)
    vmail = os.path.join(tmpdir, "vmail")
    write_chatmaild_tree(vmail, {
        # relay >= 1.7: {token: unix seconds}; json.dump's spacing
        ALICE + "/metadata.json": json.dumps({"devicetoken": {
            a1: now - 86400, a2: now - 60, a_old: now - 91 * 86400}}),
        ALICE + "/password": "x",
        # older relays: a plain list
        BOB + "/metadata.json": json.dumps({"devicetoken": [b1, b2]}),
        "pending_notifications/" + uuid.uuid4().hex:
            pending_item(ALICE, now - 30, a1),
        "pending_notifications/" + uuid.uuid4().hex:
            pending_item(BOB, now - 60, b2),
        "pending_notifications/" + uuid.uuid4().hex + ".tmp":
            pending_item(BOB, now, b1)[:10],
        "pending_notifications/" + uuid.uuid4().hex: "garbage",
        "carol@example.org/metadata.json": "{\"devicetoken\": [",
        "dave@example.org/metadata.json":
            b"{" + b" " * (1024 * 1024) + b"}",
    })

    counts, out = run_import(dictd, vmail)
    assert leaked_secrets(out, tokens) == [], "a token in the output"
    assert counts["users"] == 4 and counts["metadata_files"] == 2, counts
    assert counts["tokens_imported"] == 4, counts
    assert counts["tokens_expired"] == 1, counts
    assert counts["pending_queued"] == 2, counts
    assert counts["files_skipped"] == 4, counts
    assert (counts["skipped_partial"], counts["skipped_bad_format"],
            counts["skipped_too_large"]) == (1, 2, 1), counts
    assert "carol@example.org/metadata.json reason=bad_format" in out, out
    assert "dave@example.org/metadata.json reason=too_large" in out, out

    # Read back through Dovecot, as a client would: the file's times
    # order alice's tokens; the expired one is gone.
    with dovecot.imap(ALICE) as c:
        assert tokens_of(c.get_entry("INBOX", "/private/devicetoken")) == [
            a1, a2]
    with dovecot.imap(BOB) as c:
        assert sorted(tokens_of(c.get_entry("INBOX",
                                            "/private/devicetoken"))) == \
            sorted([b1, b2])
    assert dictd.db_query("SELECT updated_at FROM tokens WHERE token = ?",
                          (a1,)) == [((now - 86400) * 1000,)]
    assert sorted(dictd.db_query(QUEUE_ROWS)) == sorted([
        (ALICE, a1, 0, 0), (BOB, b2, 0, 0)])

    # A second run changes nothing.
    tables = ("SELECT * FROM tokens ORDER BY id",
              "SELECT * FROM queue ORDER BY id")
    before = [dictd.db_query(q) for q in tables]
    counts, out = run_import(dictd, vmail)
    assert [dictd.db_query(q) for q in tables] == before
    assert (counts["tokens_imported"], counts["tokens_present"],
            counts["pending_queued"], counts["pending_present"]) == (
                0, 4, 0, 2), counts

    # New mail for alice: a job for a2; a1's imported job still waits
    # and absorbs it, as with the daemon's own jobs.
    assert dovecot.lmtp_deliver(BOB, ALICE) == {}
    assert sorted(dictd.db_query(QUEUE_ROWS)) == sorted([
        (ALICE, a1, 0, 0), (ALICE, a2, 0, 0), (BOB, b2, 0, 0)])
    # The device sets its token again: the same row, now on INBOX.
    set_token(dovecot, ALICE, a2)
    rows = dictd.db_query("SELECT mailbox FROM tokens WHERE user = ? "
                          "ORDER BY updated_at", (ALICE,))
    assert len(rows) == 2 and rows[0][0] == "" and len(rows[1][0]) == 32
    # Opting out through Dovecot removes the imported tokens too.
    with dovecot.imap(ALICE) as c:
        assert c.setmetadata("INBOX", [("/private/devicetoken", None)]
                             ).status == "OK"
        assert c.get_entry("INBOX", "/private/devicetoken") is None
    assert db_tokens(dictd, ALICE) == []


def test_import_chatmaild_failures(dictd, tmpdir):
    binary = os.path.join(PUSHSTACK_BIN, "metadata-dictd")
    _, out = run_import(dictd, os.path.join(tmpdir, "no-such-dir"),
                        expect_rc=1)
    assert "no-such-dir" in out and "No such file" in out, out
    # --db is needed, and only --db, in import mode.
    r = subprocess.run([binary, "--import-chatmaild", tmpdir],
                       capture_output=True, timeout=10)
    assert r.returncode == 2 and b"--db" in r.stderr, r
    assert dictd.db_query("SELECT * FROM tokens") == []


# ---------------------------------------------------------------------------
# Server-level entries: GETMETADATA "" /shared/vendor/deltachat/<name>

DELTACHAT = "/shared/vendor/deltachat/"
SERVER_ENTRIES = [DELTACHAT + n for n in ("irohrelay", "turn",
                                          "maxsmtprecipients",
                                          "appversions")]


class FakeTurnHelper:
    """The TURN helper's Unix socket as chatmail-turn serves it: one line
    "<username>:<password>\\n" per connection, then close. With
    silent=True it accepts and never answers."""

    def __init__(self, path, silent=False):
        self.path = path
        self.silent = silent
        self.connections = 0
        self.held = []
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(path)
        self.sock.listen(16)
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def credentials(self, n):
        return "%d:c2VjcmV0LXBhc3N3b3JkLSVk%d" % (1700000000 + n, n)

    def _run(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return                       # closed by stop()
            self.connections += 1
            if self.silent:
                self.held.append(conn)
                continue
            conn.sendall(self.credentials(self.connections).encode() +
                         b"\n")
            conn.close()

    def stop(self):
        self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()
        self.thread.join(timeout=5)
        for c in self.held:
            c.close()


def test_server_entries_through_dovecot(dovecot, dictd, tmpdir):
    # Nothing configured: NIL for each, as chatmaild without them, except
    # maxsmtprecipients, which chatmaild always answered (1000).
    with dovecot.imap(ALICE) as c:
        r, md = c.getmetadata("", *SERVER_ENTRIES)
        assert r.status == "OK", r.text
        want = {name: None for name in SERVER_ENTRIES}
        want[DELTACHAT + "maxsmtprecipients"] = b"1000"
        assert md == want, md

    turn_path = os.path.join(tmpdir, "turn.socket")
    helper = FakeTurnHelper(turn_path)
    appversions = os.path.join(tmpdir, "appversions.json")
    index = {"clients": [{"clientId": "deltachat", "sources": [
        {"sourceId": "gplay", "versionInteger": 754,
         "versionString": "2.57.0"}]}]}
    with open(appversions, "w") as f:
        json.dump(index, f, indent=2)
    try:
        dictd.restart(extra_args=[
            "--iroh-relay", "https://iroh.example.org",
            "--max-smtp-recipients", "1000",
            "--appversions", appversions,
            "--turn-host", "turn.example.org", "--turn-socket", turn_path])
        # One GETMETADATA for all four, as chatmail core asks.
        with dovecot.imap(ALICE) as c:
            r, md = c.getmetadata("", *SERVER_ENTRIES)
            assert r.status == "OK", r.text
        assert md[DELTACHAT + "irohrelay"] == b"https://iroh.example.org"
        assert md[DELTACHAT + "maxsmtprecipients"] == b"1000"
        # chatmaild's value: f"{turn_hostname}:3478:{credentials}"
        assert md[DELTACHAT + "turn"] == (
            "turn.example.org:3478:" + helper.credentials(1)).encode()
        assert helper.connections == 1
        # one line, compact, the same JSON
        value = md[DELTACHAT + "appversions"]
        assert b"\n" not in value and b": " not in value, value
        assert json.loads(value) == index
        # Fresh credentials at every lookup, for every user.
        with dovecot.imap(BOB) as c:
            assert c.get_entry("", DELTACHAT + "turn") == (
                "turn.example.org:3478:" + helper.credentials(2)).encode()
            # an unknown entry of that namespace is NIL
            assert c.get_entry("", DELTACHAT + "nothere") is None

        # The app versions file is re-read when it changes.
        index["clients"][0]["sources"][0]["versionInteger"] = 755
        with open(appversions + ".new", "w") as f:
            json.dump(index, f)
        os.rename(appversions + ".new", appversions)
        with dovecot.imap(ALICE) as c:
            assert json.loads(c.get_entry("", DELTACHAT + "appversions")
                              ) == index

        # Read-only to clients: set and unset are refused, nothing stored.
        with dovecot.imap(ALICE) as c:
            for name in SERVER_ENTRIES:
                for value in ("https://evil.example", None):
                    r = c.setmetadata("", [(name, value)])
                    assert r.status == "NO", "%s %r -> %s %s" % (
                        name, value, r.status, r.text)
            assert c.get_entry("", DELTACHAT + "irohrelay") == \
                b"https://iroh.example.org"
        assert dictd.db_query("SELECT * FROM metadata") == []
        assert "are read-only" in dictd.log_text()
        # Credentials are not logged.
        for n in (1, 2):
            assert helper.credentials(n).split(":")[1] not in \
                dictd.log_text()
    finally:
        helper.stop()


def test_turn_helper_absent_or_silent(dovecot, dictd, tmpdir):
    turn_path = os.path.join(tmpdir, "turn.socket")
    dictd.restart(extra_args=[
        "--iroh-relay", "https://iroh.example.org",
        "--turn-host", "turn.example.org", "--turn-socket", turn_path,
        "--turn-timeout", "500ms"])
    # No helper: TURN is NIL, and the other entries of the same command
    # still answer (an error would lose them all).
    with dovecot.imap(ALICE) as c:
        r, md = c.getmetadata("", DELTACHAT + "irohrelay", DELTACHAT + "turn")
        assert r.status == "OK", r.text
        assert md == {DELTACHAT + "irohrelay": b"https://iroh.example.org",
                      DELTACHAT + "turn": None}, md
    assert ("turn credentials unavailable: TURN helper %s: No such file"
            % turn_path) in dictd.log_text()

    # A helper that accepts and never answers: NIL after --turn-timeout,
    # and the daemon serves everybody else meanwhile.
    helper = FakeTurnHelper(turn_path, silent=True)
    try:
        turn_key = ("shared/%s/vendor/vendor.dovecot/pvt/server/vendor/"
                    "deltachat/turn" % guid())
        iroh_key = turn_key.rsplit("/", 1)[0] + "/irohrelay"
        with dictd.client() as waiting:
            # pipelined: the second reply must wait for the first
            waiting.send(b"L%s\t%s\nL%s\t%s\n" % (
                turn_key.encode(), ALICE.encode(), iroh_key.encode(),
                ALICE.encode()))
            wait_until(lambda: helper.connections == 1, timeout=5,
                       what="the helper's connection")
            assert_still_serving(dictd)
            assert waiting.readline() == b"N"
            assert waiting.readline() == b"Ohttps://iroh.example.org"
        assert "no answer within 500 ms" in dictd.log_text()
    finally:
        helper.stop()
