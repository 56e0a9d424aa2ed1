"""The whole chain, end to end: a client behaving like chatmail core stores
its device token through a real Dovecot 2.3 (the project's drop-in and
push.lua) into metadata-dictd; mail delivered over LMTP queues a job;
notifierd POSTs the token to proxyd's /notify; proxyd decrypts it,
debounces and pushes to the fake provider (fake_apns.py, fake_fcm.py,
fake_webpush.py). Nothing is stubbed between the IMAP client and the fake
provider. Issue 6, "Full-chain tests".

Wiring (as scripts/run-stack.py): metadata-dictd listens on Dovecot's dict
socket and wakes notifierd through its --notify-socket (= notifierd's
--wake-socket); notifierd --proxy-url http://127.0.0.1:<proxyd>/notify;
proxyd --apns-production-url/--apns-sandbox-url the fake APNs, --ca-file
the test CA. Everything listens on 127.0.0.1 or Unix sockets, except the
multi-host test, which uses 10.200.0.1/.2 inside network namespaces it
creates (and deletes).

Timings are test-sized (notifierd --retry-base 200ms --poll 200ms; proxyd
--debounce 1ms unless a test is about the debounce); every wait is for a
condition with a deadline. The Dovecot of this module knows FLEET_SIZE
extra users (fleetNN@example.org) besides alice and bob, so that a flood
can send each mail to its own device: "every mail produced its push" is
then a property of the set of tokens pushed, not something the relay's
coalescing or proxyd's debounce could blur.

Flood tokens are plain APNs tokens (proxyd takes the decrypted form too);
the tokens of the client-like-core, provider, debounce, 410, multi-host
and fault-run tests are encrypted by OpenPGP.js exactly as chatmail core
does.

test_fault_run_whole_chain (issue 11) runs the chain for about a minute
under a mail flood while the daemons are killed with SIGKILL and the fake
providers fail in turns, and checks what proxyd's 200 promises and what
the relay's queue guarantees: every device pushed after its last mail,
every 200 followed by a push; the seed it prints replays the run.

Two defects these tests found are fixed and stay covered:
  * test_dictd_killed_during_a_commit_still_pushes: a mail whose dict
    commit was unanswered when metadata-dictd died was accepted by LMTP
    but never pushed (push.lua's error was only logged); push.lua now
    tries the commit again.
  * test_proxyd_answers_at_once_on_a_new_connection: proxyd never sent an
    answer its handler gave at once (debounce-coalesced 200, 410 for a
    malformed token) on a new connection while another one was open
    (proxyd/api/api.c now queues such answers without suspending).
"""

import bisect
import collections
import contextlib
import ctypes
import hashlib
import math
import os
import pwd
import grp
import random
import re
import secrets
import select
import shutil
import signal
import smtplib
import socket
import sqlite3
import ssl
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

import harness
from fake_apns import FakeApns
from harness import (Dovecot, http_request, imap_literal_plus,
                     make_world_tmpdir, register_secret, wait_until)

ALICE = "alice@example.org"
BOB = "bob@example.org"
FLEET_SIZE = 60
FLEET = ["fleet%02d@example.org" % i for i in range(FLEET_SIZE)]
FLEET_PASSWORD = "fleetpass"
FCM_PACKAGE = "chat.delta"
VAPID_SUBJECT = "mailto:ops@relay.example"

# Every test here wires a real notifierd to metadata-dictd's notify socket.
pytestmark = pytest.mark.dictd_bind_notify(False)


# ---------------------------------------------------------------------------
# Dovecot with the fleet users


class ChainDovecot(Dovecot):
    """harness.Dovecot plus the FLEET users in its passwd file (LMTP would
    deliver to them anyway: the userdb is static; IMAP LOGIN needs them in
    the passdb)."""

    def write_files(self):
        super().write_files()
        uid = pwd.getpwnam("nobody").pw_uid
        gid = grp.getgrnam("nogroup").gr_gid
        with open(os.path.join(self.tmp, "passwd"), "a") as f:
            for user in FLEET:
                f.write("%s:{PLAIN}%s\n" % (user, FLEET_PASSWORD))
                home = os.path.join(self.tmp, "home", user)
                os.makedirs(home, exist_ok=True)
                os.chown(home, uid, gid)


@pytest.fixture(scope="module")
def dovecot_server():
    """This module's Dovecot (overrides conftest's): the same, with the
    fleet users."""
    tmp = make_world_tmpdir("e2e-dovecot-")
    dv = ChainDovecot(tmp, os.path.join(tmp, "dict.sock"))
    try:
        dv.start()
        yield dv
    finally:
        dv.stop()
        if os.environ.get("E2E_KEEP_TMP") != "1":
            shutil.rmtree(tmp, ignore_errors=True)


# ---------------------------------------------------------------------------
# Providers' fakes beyond the APNs one (conftest's fake_apns)


# ---------------------------------------------------------------------------
# The chain


class Chain:
    """One test's stack: Dovecot (module-wide), metadata-dictd, notifierd,
    proxyd and the fake APNs; helpers to act like a client and a sender."""

    def __init__(self, dovecot, dictd, notifierd, proxyd, apns):
        self.dovecot = dovecot
        self.dictd = dictd
        self.notifierd = notifierd
        self.proxyd = proxyd
        self.apns = apns

    def deliver(self, rcpt, sender=BOB, subject="hello", timing=None):
        """One mail over LMTP: (accepted, wall-clock time of the final
        reply). accepted is False when LMTP refused or failed it. A dict
        as timing gets "start" (MAIL FROM) and "done" (the final reply),
        as wall-clock times."""
        timing = {} if timing is None else timing
        try:
            refused = self.dovecot.lmtp_deliver(sender, rcpt, subject=subject,
                                                timing=timing)
        except (smtplib.SMTPException, OSError):
            return False, time.time()
        # the fakes stamp time.time(); LMTP's timing is monotonic
        off = time.time() - time.monotonic()
        timing["start"] += off
        timing["done"] += off
        return not refused, timing["done"]

    def relay_tokens(self):
        return sorted(r[0] for r in
                      self.dictd.db_query("SELECT token FROM tokens"))

    def queue_len(self):
        return self.dictd.db_query("SELECT count(*) FROM queue")[0][0]

    def pushes(self, token=None, status=200):
        """APNs requests (for the plain token, with the status)."""
        return [r for r in list(self.apns.requests)
                if (token is None or r.token == token) and
                (status is None or r.status == status)]


@pytest.fixture
def chain_factory(dovecot, dictd, fake_apns, proxyd_factory,
                  notifierd_factory):
    """chain_factory(debounce="1ms", proxyd_args=(), **notifierd_options):
    proxyd against the test's fake APNs, notifierd POSTing to it and woken
    by metadata-dictd, behind the module's Dovecot. Teardown (conftest)
    stops each daemon (exit 0 required) and checks their logs for
    tokens."""
    def make(debounce="1ms", proxyd_args=(), **nopts):
        p = proxyd_factory(apns=fake_apns, debounce=debounce,
                           extra_args=list(proxyd_args))
        nopts.setdefault("retry_base", "200ms")
        nopts.setdefault("poll", "200ms")
        n = notifierd_factory(proxy_url="http://127.0.0.1:%d/notify"
                              % p.port, wake_socket=dictd.notify_path,
                              **nopts)
        return Chain(dovecot, dictd, n, p, fake_apns)
    return make


def apns_token():
    t = secrets.token_hex(32)
    register_secret(t)
    return t


def core_encrypt(openpgp_js, plain):
    """The token as chatmail core stores it: OpenPGP.js, v6 PKESK to the
    proxy's X25519 subkey, SEIPDv2 AES-128-OCB, padded to 512 octets."""
    register_secret(plain)
    enc = openpgp_js(plain)
    register_secret(enc)
    return enc


def register_like_core(dovecot, user, token, password=None):
    """What chatmail core 2.58 does on a relay (harness.register_like_core:
    capabilities from the greeting and LOGIN, no CAPABILITY command, the
    token as a quoted string); the relay must take it."""
    reg = harness.register_like_core(dovecot, user, token, password)
    assert reg.push_by == "XDELTAPUSH", (reg.greeting_caps, reg.login_caps)
    assert reg.result.status == "OK", "SETMETADATA devicetoken -> %s %s" % (
        reg.result.status, reg.result.text)


def register_fleet(chain, n=FLEET_SIZE):
    """A plain APNs token for each of the first n fleet users, stored
    through IMAP. Returns {user: token}."""
    tokens = {}
    for user in FLEET[:n]:
        tokens[user] = apns_token()
        register_like_core(chain.dovecot, user, tokens[user],
                           FLEET_PASSWORD)
    return tokens


def percentile(values, p):
    """Nearest-rank percentile."""
    s = sorted(values)
    return s[max(0, math.ceil(p / 100.0 * len(s)) - 1)]


def report(record_property, key, text):
    """A figure for the reader: printed (pytest -s) with a clear prefix and
    attached to the test report (junit XML properties)."""
    print("\nFULL-CHAIN %s: %s" % (key, text))
    record_property(key, text)


class PushLost(AssertionError):
    """A mail LMTP accepted got no push: the known push.lua/dict defect."""


class ProxydHang(AssertionError):
    """proxyd left a /notify unanswered (the api.c defect fixed: an
    answer the request handler gave at once was never sent on a new
    connection while another one was open)."""


class Flood(threading.Thread):
    """Sequential LMTP deliveries from bob to each recipient, in a thread.
    pause_at: indices before which it stops until resume() (the test does
    something to the chain meanwhile; wait_paused() waits for the stop).
    Records (recipient, wall time of the final reply) of accepted mails,
    the recipients refused, and (index, duration) of each delivery."""

    def __init__(self, chain, rcpts, pause_at=()):
        super().__init__(daemon=True, name="flood")
        self.chain = chain
        self.rcpts = list(rcpts)
        self.pause_at = set(pause_at)
        self._paused = threading.Event()
        self._resume = threading.Event()
        self.accepted = []
        self.refused = []
        self.durations = []
        self.error = None

    def wait_paused(self, timeout=30):
        assert self._paused.wait(timeout), "flood never paused"
        assert self.is_alive(), "flood ended instead of pausing: %r" % (
            self.error,)

    def resume(self):
        self._paused.clear()
        self._resume.set()

    def run(self):
        try:
            for i, rcpt in enumerate(self.rcpts):
                if i in self.pause_at:
                    self._resume.clear()
                    self._paused.set()
                    if not self._resume.wait(60):
                        raise RuntimeError("flood never resumed")
                t0 = time.monotonic()
                ok, done = self.chain.deliver(rcpt, subject="flood %d" % i)
                self.durations.append((i, time.monotonic() - t0))
                if ok:
                    self.accepted.append((rcpt, done))
                else:
                    self.refused.append(rcpt)
        except BaseException as e:      # raised again by finish()
            self.error = e
        finally:
            self._paused.set()

    def finish(self, timeout=60):
        self.join(timeout)
        assert not self.is_alive(), "flood still running after %ds" % timeout
        if self.error is not None:
            raise self.error


def wait_all_pushed(chain, tokens, timeout=15, what="every token pushed"):
    """Wait until each token in `tokens` has a 200 at the fake APNs."""
    want = set(tokens)

    def pred(reqs):
        return want <= {r.token for r in reqs if r.status == 200}
    try:
        chain.apns.wait_for(pred=pred, timeout=timeout)
    except AssertionError:
        got = {r.token for r in chain.apns.requests if r.status == 200}
        raise AssertionError("%s: %d of %d tokens never pushed"
                             % (what, len(want - got), len(want)))


# ---------------------------------------------------------------------------
# 1. A client behaving like chatmail core


def test_client_like_core_registers_and_gets_pushed(chain_factory,
                                                    openpgp_js):
    """The greeting and LOGIN's answer carry XDELTAPUSH (core sends no
    CAPABILITY command); the token, encrypted by OpenPGP.js exactly as
    core does (687 octets: v6 PKESK, SEIPDv2 AES-128-OCB, 512-octet
    padded literal), goes in with SETMETADATA "INBOX"
    (/private/devicetoken "openpgp:...") as core 2.58 sends it, a quoted
    string; the relay stores the ciphertext as it is, GETMETADATA gives it
    back, and a mail over LMTP ends as a visible push to the plain token at
    the fake APNs. The old LITERAL+ form ({924+}) is the next test."""
    import base64
    chain = chain_factory()
    plain = apns_token()
    enc = core_encrypt(openpgp_js, plain)
    assert len(enc) == 924, len(enc)
    raw = base64.b64decode(enc[len("openpgp:"):])
    assert len(raw) == 687, len(raw)
    assert raw[:2] == b"\xc1\x5d" and raw[95:98] == b"\xd2\xc1\x8d", \
        raw[:4].hex()
    assert raw[98:102] == bytes([2, 7, 2, 7])   # SEIPD v2, AES-128, OCB

    with chain.dovecot.imap() as c:
        assert "XDELTAPUSH" in c.greeting_capabilities()
        c.login(ALICE, "alicepass")
        assert {"XDELTAPUSH", "METADATA"} <= c.login_caps, c.login_caps
        cmd = b'SETMETADATA "INBOX" (/private/devicetoken "' + \
            enc.encode() + b'")'
        assert len(cmd) == 969, len(cmd)    # + "<tag> " and CRLF on the wire
        r = c.command(cmd)
        assert r.status == "OK", r
        assert c.get_entry("INBOX", "/private/devicetoken") == enc.encode()
    assert chain.relay_tokens() == [enc]

    ok, done = chain.deliver(ALICE)
    assert ok
    (req,) = chain.apns.wait_for(1, timeout=10)
    assert (req.token, req.status, req.push_type) == (plain, 200, "alert")
    assert req.topic == chain.apns.pki.topic
    assert "alert" in req.payload["aps"], req.payload
    wait_until(lambda: chain.queue_len() == 0, timeout=5,
               what="the job deleted after the 200")
    assert chain.notifierd.metric("notifierd_succeeded_total") == 1
    assert chain.proxyd.metric("direct_notifications_total") == 1


def test_client_before_core_258_literal_plus_form(chain_factory,
                                                   openpgp_js):
    """Core before 2.58 sent the same token as a LITERAL+ literal,
    SETMETADATA "INBOX" (/private/devicetoken {924+}CRLF<924 octets>),
    without waiting for a continuation: stored byte for byte, pushed."""
    chain = chain_factory()
    plain = apns_token()
    enc = core_encrypt(openpgp_js, plain)
    reg = harness.register_like_core(chain.dovecot, ALICE, enc,
                                     form="literal")
    assert reg.push_by == "XDELTAPUSH" and reg.result.status == "OK", reg
    assert imap_literal_plus(enc.encode()).startswith(b"{924+}\r\n")
    assert chain.relay_tokens() == [enc]
    ok, _ = chain.deliver(ALICE)
    assert ok
    (req,) = chain.apns.wait_for(1, timeout=10)
    assert (req.token, req.status) == (plain, 200)


# ---------------------------------------------------------------------------
# 2. Every provider, and the latency over 200 mails


def test_lmtp_to_every_provider_latency_over_200_mails(
        chain_factory, fake_fcm, fake_webpush, vapid_key, openpgp_js,
        tmpdir, record_property):
    """alice has three devices, each token encrypted like core's: APNs,
    FCM (fcm-<package>:<registration token>) and Web Push
    (webpush:<endpoint>|<p256dh>|<auth>). 200 mails over LMTP, one at a
    time (the next once the previous one's three pushes arrived; proxyd
    --debounce 1ms so nothing is coalesced): each mail gives exactly one
    push at each fake, to the right device (the fake Web Push decrypts
    "ping" with the subscription's key). Latency: from the LMTP client
    reading the final 250 to the fake's receipt, p50/p99 printed per
    provider; only a sanity bound is asserted (p99 < 2 s). A negative
    latency is a push that beat the 250 to its reader (metadata-dictd
    queues the job before Dovecot answers)."""
    key = os.path.join(tmpdir, "service-account.json")
    fake_fcm.write_key_file(key)
    chain = chain_factory(proxyd_args=[
        "--fcm-key-path", key, "--fcm-api-url", fake_fcm.api_url,
        "--vapid-key-path", vapid_key, "--vapid-subject", VAPID_SUBJECT,
        "--webpush-allow-private"])

    apns_plain = apns_token()
    reg = secrets.token_urlsafe(120).replace("-", "_")
    register_secret(reg)
    fcm_plain = "fcm-%s:%s" % (FCM_PACKAGE, reg)
    sub = fake_webpush.subscribe()
    wp_plain = sub.token
    for plain in (apns_plain, fcm_plain, wp_plain):
        register_like_core(chain.dovecot, ALICE,
                           core_encrypt(openpgp_js, plain))
    assert len(chain.relay_tokens()) == 3

    def fcm_sends():
        return [s for s in fake_fcm.sends if s.status == 200]

    def wp_pushes():
        return [r for r in fake_webpush.received(sub)
                if r.status is not None and 200 <= r.status < 300]

    N = 200
    lat = {"APNs": [], "FCM": [], "WebPush": []}
    from_mail_from = []
    t_start = time.monotonic()
    for i in range(N):
        timing = {}
        ok, done = chain.deliver(ALICE, subject="latency %d" % i,
                                 timing=timing)
        assert ok, "mail %d refused" % i
        a = chain.apns.wait_for(pred=lambda rs: rs[i:i + 1], timeout=10)[0]
        f = fake_fcm.wait_for(pred=lambda rs: fcm_sends()[i:i + 1],
                              timeout=10)[0]
        w = fake_webpush.wait_for(pred=lambda rs: wp_pushes()[i:i + 1],
                                  timeout=10)[0]
        lat["APNs"].append(a.t - done)
        lat["FCM"].append(f.t - done)
        lat["WebPush"].append(w.t - done)
        from_mail_from.append(max(a.t, f.t, w.t) - timing["start"])
    elapsed = time.monotonic() - t_start

    wait_until(lambda: chain.queue_len() == 0, timeout=10,
               what="the relay queue empty")
    assert [(r.token, r.status) for r in chain.apns.requests] == \
        [(apns_plain, 200)] * N
    assert [s.info["token"] for s in fcm_sends()] == [reg] * N
    assert len(fake_fcm.sends) == N
    assert fake_webpush.payloads(sub) == [b"ping"] * N
    assert len(fake_webpush.requests) == N
    assert chain.notifierd.metric("notifierd_succeeded_total") == 3 * N

    for prov, v in lat.items():
        p50, p99 = percentile(v, 50) * 1000, percentile(v, 99) * 1000
        report(record_property, "latency_%s" % prov,
               "LMTP 250 -> fake %s over %d mails: p50 %.1f ms, p99 %.1f "
               "ms (min %.1f, max %.1f)" % (prov, N, p50, p99,
                                            min(v) * 1000, max(v) * 1000))
        assert p99 < 2000, "%s p99 %.0f ms" % (prov, p99)
    report(record_property, "latency_from_mail_from",
           "MAIL FROM -> the last of the three pushes: p50 %.1f ms, p99 "
           "%.1f ms" % (percentile(from_mail_from, 50) * 1000,
                        percentile(from_mail_from, 99) * 1000))
    report(record_property, "latency_run",
           "%d mails x 3 providers in %.1f s" % (N, elapsed))


# ---------------------------------------------------------------------------
# 3. Debounce through the whole chain


def test_50_mails_in_one_second_give_two_pushes(chain_factory, openpgp_js,
                                                record_property):
    """50 mails to alice within one second (five LMTP connections in
    parallel), proxyd --debounce 2s: exactly two pushes for her device,
    the leading one at once and the trailing one about 2 s later, after
    the last mail was accepted (so it covers every mail); then the window
    that push reopened closes (debounced_set_size back to 0) without a
    third. Every request proxyd got after the leading one was coalesced
    (debounced_notifications_total = requests - 1)."""
    chain = chain_factory(debounce="2s")
    plain = apns_token()
    register_like_core(chain.dovecot, ALICE, core_encrypt(openpgp_js, plain))

    results = []
    lock = threading.Lock()

    def sender(k):
        for j in range(10):
            t0 = time.time()
            ok, done = chain.deliver(ALICE, subject="burst %d.%d" % (k, j))
            with lock:
                results.append((ok, t0, done))
    threads = [threading.Thread(target=sender, args=(k,)) for k in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(results) == 50 and all(ok for ok, _, _ in results), results
    first = min(t0 for _, t0, _ in results)
    last = max(done for _, _, done in results)
    assert last - first < 1.0, (
        "the 50 mails took %.2f s, not within one second: the test needs a "
        "faster LMTP" % (last - first))

    chain.apns.wait_for(2, timeout=10)
    wait_until(lambda: chain.proxyd.metric("debounced_set_size") == 0 and
               chain.queue_len() == 0, timeout=15,
               what="proxyd's debounce windows closed, relay queue empty")
    reqs = chain.pushes(status=None)
    timeouts = chain.notifierd.metric(
        'notifierd_failures_total{reason="transport"}')
    if timeouts:
        raise ProxydHang(
            "%d notifierd request(s) to proxyd got no answer (timed out); "
            "pushes at +%s s after the first mail" % (
                timeouts, ["%.3f" % (r.t - first) for r in reqs]))
    assert [(r.token, r.status) for r in reqs] == [(plain, 200)] * 2, (
        "pushes at +%s s after the first mail (the last one accepted at "
        "+%.3f s)" % (["%.3f" % (r.t - first) for r in reqs], last - first))
    lead, trail = reqs
    assert lead.t - first < 1.0, "leading push %.2fs after the first mail" \
        % (lead.t - first)
    # The window opens when the first request reaches proxyd, a little
    # before the leading push reaches the fake.
    assert 1.5 <= trail.t - lead.t <= 3.0, "trailing push %.2fs after the " \
        "leading one" % (trail.t - lead.t)
    assert trail.t > last, "the trailing push left before the last mail " \
        "was accepted"
    requests = chain.notifierd.metric("notifierd_succeeded_total")
    assert chain.proxyd.metric("debounced_notifications_total") == \
        requests - 1
    report(record_property, "debounce",
           "50 mails in %.2f s -> %d requests to proxyd (relay coalescing) "
           "-> 2 pushes, %.2f s apart" % (last - first, requests,
                                          trail.t - lead.t))


# ---------------------------------------------------------------------------
# 4. A token the provider reports gone


def test_gone_token_is_deleted_at_the_relay(chain_factory, openpgp_js):
    """The fake APNs answers 410 Unregistered for one of alice's two
    devices: proxyd answers notifierd 410, notifierd deletes that token
    from the relay database (GETMETADATA now lists only the other one),
    and the next mail pushes only the other device."""
    chain = chain_factory()
    gone, kept = apns_token(), apns_token()
    gone_enc = core_encrypt(openpgp_js, gone)
    kept_enc = core_encrypt(openpgp_js, kept)
    chain.apns.set_replies(gone, (410, "Unregistered"))
    register_like_core(chain.dovecot, ALICE, gone_enc)
    register_like_core(chain.dovecot, ALICE, kept_enc)
    assert chain.relay_tokens() == sorted([gone_enc, kept_enc])

    assert chain.deliver(ALICE)[0]
    chain.apns.wait_for(2, timeout=10)
    assert sorted((r.token, r.status) for r in chain.apns.requests) == \
        sorted([(gone, 410), (kept, 200)])
    wait_until(lambda: chain.relay_tokens() == [kept_enc], timeout=10,
               what="the gone token deleted at the relay")
    wait_until(lambda: chain.queue_len() == 0, timeout=5, what="queue empty")
    assert chain.notifierd.metric("notifierd_gone_total") == 1
    assert chain.proxyd.metric(
        'notification_failures_total{details="Unregistered",'
        'provider="APNS",reason="410"}') == 1
    with chain.dovecot.imap(ALICE) as c:
        assert c.get_entry("INBOX", "/private/devicetoken") == \
            kept_enc.encode()

    assert chain.deliver(ALICE)[0]
    chain.apns.wait_for(pred=lambda rs: len(chain.pushes(kept)) == 2,
                        timeout=10)
    wait_until(lambda: chain.queue_len() == 0, timeout=5, what="queue empty")
    assert len(chain.pushes(gone, status=None)) == 1
    assert chain.notifierd.metric("notifierd_sent_total") == 3


# ---------------------------------------------------------------------------
# 5. Outages: proxyd down, notifierd and metadata-dictd killed


def test_proxyd_down_the_relay_queues_backs_off_and_delivers(
        chain_factory, record_property):
    """proxyd stopped; 30 mails to 30 devices are accepted and queued.
    notifierd's requests are refused; after 5 failures its circuit
    breaker opens for 1 s, the probe after it fails and the pause doubles
    to 2 s: the jobs stay in the database, no request per job per retry.
    proxyd started again on the same port: every device gets its push,
    the queue empties and the breaker closes."""
    chain = chain_factory()
    tokens = register_fleet(chain, 30)
    chain.proxyd.stop()
    t_down = time.monotonic()

    flood = Flood(chain, tokens)
    flood.start()
    flood.finish()
    assert not flood.refused and len(flood.accepted) == 30
    n = chain.notifierd
    # notifierd logs each opening of its breaker with the pause; a failed
    # probe doubles it (1 s, 2 s, ... 5 min).
    wait_until(lambda: "pausing for 2000 ms" in n.log_text(), timeout=10,
               what="the breaker re-opened for 2 s after a failed probe")
    failures = n.metric('notifierd_failures_total{reason="transport"}')
    assert chain.queue_len() == 30
    assert not chain.apns.requests
    assert "pausing for 1000 ms" in n.log_text()
    # Backing off: at most one request per job plus the probes, not a
    # request per job per retry (--retry-base 200ms) or poll.
    assert failures <= 30 + 3, failures

    chain.proxyd.start()
    t_up = time.monotonic()
    wait_all_pushed(chain, tokens.values(), timeout=15)
    t_done = time.monotonic()
    wait_until(lambda: chain.queue_len() == 0 and
               n.metric("notifierd_breaker_open") == 0, timeout=10,
               what="queue empty and breaker closed")
    report(record_property, "proxyd_down",
           "down %.1f s, %d failed requests for 30 jobs; all 30 pushed "
           "%.2f s after proxyd came back" % (t_up - t_down, failures,
                                              t_done - t_up))


def test_notifierd_kill9_mid_flood(chain_factory, record_property):
    """60 mails to 60 devices. The fake APNs answers the first push of
    each of the first 20 devices with 500 after 1 s, so that their
    requests are still in flight when, after the 20th mail was accepted,
    notifierd is killed with SIGKILL. 20 more mails are accepted while it
    is dead (their wake-ups are lost); it starts again, and the last 20
    mails follow. Every device gets its push (a 200 at the fake) at least
    once: the devices whose jobs were in flight at the crash (some must
    be) only because those jobs are sent again after the restart, the
    next 20 only because the jobs queued meanwhile are found in the
    database."""
    chain = chain_factory()
    tokens = register_fleet(chain, 60)
    for t in list(tokens.values())[:20]:
        chain.apns.set_replies(t, (500, "InternalServerError",
                                   {"delay": 1.0}), 200)
    n = chain.notifierd

    flood = Flood(chain, tokens, pause_at=(20, 40))
    flood.start()
    flood.wait_paused()
    wait_until(lambda: n.metric("notifierd_in_flight") > 0, timeout=10,
               what="requests in flight")
    assert n.kill9() == -signal.SIGKILL
    in_flight = chain.dictd.db_query(
        "SELECT count(*) FROM queue WHERE state = 1")[0][0]
    assert in_flight > 0, "no job was in flight at the crash"
    flood.resume()
    flood.wait_paused()
    queued = chain.queue_len()
    n.start()
    flood.resume()
    flood.finish()
    assert not flood.refused and len(flood.accepted) == 60
    wait_all_pushed(chain, tokens.values(), timeout=20)
    wait_until(lambda: chain.queue_len() == 0, timeout=10,
               what="the relay queue empty")
    report(record_property, "notifierd_kill9",
           "60 mails, kill -9 after 20 with %d jobs in flight, %d jobs "
           "waiting at the restart; every device pushed (%d duplicate "
           "pushes)" % (in_flight, queued, len(chain.pushes()) - 60))


def test_dictd_kill9_mid_flood(chain_factory, record_property):
    """60 mails to 60 devices. After the 20th is accepted, metadata-dictd
    is killed with SIGKILL; the flood goes on at once, and metadata-dictd
    is started again 0.3 s later (a supervisor's restart). Dovecot's dict
    client retries connecting for about a second, so the next mail waits
    through the outage instead of failing.

    "Every mail" here: every mail whose LMTP delivery was accepted (all
    60 are) produces its push at least once. The kill falls between two
    mails: no dict commit is in flight at that moment; one in flight is
    test_dictd_killed_during_a_commit_still_pushes below."""
    chain = chain_factory()
    tokens = register_fleet(chain, 60)
    d = chain.dictd

    flood = Flood(chain, tokens, pause_at=(20,))
    flood.start()
    flood.wait_paused()
    d.kill()
    t_kill = time.monotonic()
    flood.resume()
    # The outage's length is the scenario, not a synchronisation.
    time.sleep(0.3)
    d.start()
    outage = time.monotonic() - t_kill
    flood.finish()
    assert not flood.refused and len(flood.accepted) == 60, flood.refused
    wait_all_pushed(chain, tokens.values(), timeout=20)
    wait_until(lambda: chain.queue_len() == 0, timeout=10,
               what="the relay queue empty")
    waited = max(dt for i, dt in flood.durations if i >= 20)
    report(record_property, "dictd_kill9",
           "60 mails, metadata-dictd killed after 20 and back after %.2f s; "
           "the slowest LMTP delivery meanwhile took %.2f s; every device "
           "pushed, %d duplicates" % (outage, waited,
                                      len(chain.pushes()) - 60))


def _dictd_backlog(dictd):
    """Connections waiting in metadata-dictd's listen queue (ss -xl)."""
    out = subprocess.run(["ss", "-xln"], capture_output=True, text=True,
                         check=True).stdout
    for line in out.splitlines():
        f = line.split()
        if len(f) >= 5 and f[4] == dictd.socket_path:
            return int(f[2])
    return 0


def test_dictd_killed_during_a_commit_still_pushes(chain_factory):
    """metadata-dictd is stopped (SIGSTOP) before a mail to alice; LMTP
    saves the mail and push.lua's dict commit waits in metadata-dictd's
    listen queue; metadata-dictd is then killed (SIGKILL: the crash lands
    on the commit) and started again at once. LMTP accepted the mail, so
    a push is owed: push.lua tries the failed commit again, and the
    restarted daemon queues it. (Before that fix the commit's error was
    only logged and the push lost. A dict outage longer than push.lua's
    attempts still loses pushes: see docs/operator-relay.md.)"""
    chain = chain_factory()
    plain = apns_token()
    register_like_core(chain.dovecot, ALICE, plain)
    d = chain.dictd
    assert _dictd_backlog(d) == 0

    d.proc.send_signal(signal.SIGSTOP)
    result = []
    t = threading.Thread(target=lambda: result.append(chain.deliver(ALICE)))
    try:
        t.start()
        # The LMTP process opens its dict connection for push.lua's
        # metadata_set, the delivery's first dict use (the mail is saved
        # by then), and writes the transaction at once: a connection
        # pending at the stopped daemon's socket is that commit. Even if
        # the kill came between connect and write, the write would fail.
        wait_until(lambda: _dictd_backlog(d) >= 1, timeout=10,
                   what="Dovecot's dict commit queued at metadata-dictd")
    finally:
        d.kill()                # SIGKILL works on a stopped process
    d.start()
    t.join(30)
    assert result and result[0][0], "LMTP did not accept the mail: %r" % (
        result)
    try:
        chain.apns.wait_for(pred=lambda rs: chain.pushes(plain), timeout=5)
    except AssertionError:
        raise PushLost("LMTP accepted the mail, no push for it in 5 s; "
                       "relay queue: %d rows" % chain.queue_len())


def test_proxyd_answers_at_once_on_a_new_connection(proxyd_factory,
                                                    fake_apns):
    """What the debounce test above sometimes trips over, reduced to
    proxyd alone. A client holds a keep-alive connection (as notifierd
    does) after a first push; a second client on a new connection sends a
    request proxyd answers without waiting for anything: the same token
    again (coalesced by the debounce: 200), then a malformed token (410).
    Each must be answered at once (before the fix in proxyd/api/api.c neither
    was, and only the client's timeout ended the wait)."""
    import http.client
    p = proxyd_factory(apns=fake_apns, debounce="10s")
    tok = apns_token()
    held = http.client.HTTPConnection("127.0.0.1", p.port, timeout=5)
    try:
        held.request("POST", "/notify", body=tok)
        r = held.getresponse()
        assert (r.status, r.read()) == (200, b"")     # the leading push
        for what, body, want in (("a coalesced request", tok, 200),
                                 ("a malformed token", "not-a-token", 410)):
            try:
                status, _ = http_request(p.port, "POST", "/notify", body,
                                         timeout=3)
            except TimeoutError:
                raise ProxydHang("no answer in 3 s to %s on a new "
                                 "connection while another is open" % what)
            assert status == want, (what, status)
    finally:
        held.close()


# ---------------------------------------------------------------------------
# 6. Multi-host: relay and central side in two network namespaces

CLONE_NEWNET = 0x40000000
RELAY_ADDR = "10.200.0.1"
CENTRAL_ADDR = "10.200.0.2"


@contextlib.contextmanager
def in_netns(name):
    """Run the block with this thread in network namespace `name`:
    sockets it opens, threads it starts and children it spawns live in
    that namespace (they keep it afterwards); the thread returns to its
    own namespace at the end."""
    libc = ctypes.CDLL(None, use_errno=True)
    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    target = os.open("/run/netns/%s" % name, os.O_RDONLY)
    try:
        if libc.setns(target, CLONE_NEWNET) != 0:
            e = ctypes.get_errno()
            raise OSError(e, "setns(%s): %s" % (name, os.strerror(e)))
        try:
            yield
        finally:
            if libc.setns(own, CLONE_NEWNET) != 0:
                e = ctypes.get_errno()
                raise RuntimeError("cannot return to the test's network "
                                   "namespace: %s" % os.strerror(e))
    finally:
        os.close(own)
        os.close(target)


def _ip(*args):
    return subprocess.run(["ip"] + list(args), capture_output=True,
                          text=True, timeout=30)


@pytest.fixture
def netns_pair():
    """Two network namespaces, relay and central, joined by a veth pair
    (10.200.0.1/24 in relay, 10.200.0.2/24 in central), loopback up in
    each. The veth is created inside the namespaces: nothing is added to
    the host's own network. Deleted in teardown (after the daemons in
    them stopped: request this fixture first). Skips when not root or
    when `ip netns` does not work here."""
    if os.geteuid() != 0:
        pytest.skip("network namespaces need root")
    if shutil.which("ip") is None:
        pytest.skip("no `ip` command (iproute2)")
    tag = "%d" % os.getpid()
    relay, central = "fc-relay-" + tag, "fc-central-" + tag
    made = []
    try:
        for ns in (relay, central):
            r = _ip("netns", "add", ns)
            if r.returncode != 0:
                pytest.skip("`ip netns add` failed here: %s"
                            % r.stderr.strip())
            made.append(ns)
        steps = [
            ("-n", relay, "link", "add", "fcr" + tag, "type", "veth",
             "peer", "name", "fcc" + tag, "netns", central),
            ("-n", relay, "addr", "add", RELAY_ADDR + "/24", "dev",
             "fcr" + tag),
            ("-n", central, "addr", "add", CENTRAL_ADDR + "/24", "dev",
             "fcc" + tag),
            ("-n", relay, "link", "set", "fcr" + tag, "up"),
            ("-n", central, "link", "set", "fcc" + tag, "up"),
            ("-n", relay, "link", "set", "lo", "up"),
            ("-n", central, "link", "set", "lo", "up"),
        ]
        for step in steps:
            r = _ip(*step)
            if r.returncode != 0:
                pytest.skip("cannot set up the veth pair (ip %s): %s"
                            % (" ".join(step), r.stderr.strip()))
        try:
            with in_netns(relay):
                pass
        except OSError as e:
            pytest.skip("cannot enter a network namespace here: %s" % e)
        yield relay, central
    finally:
        errors = []
        for ns in made:
            r = _ip("netns", "del", ns)
            if r.returncode != 0:
                errors.append("ip netns del %s: %s" % (ns, r.stderr))
        if errors:
            pytest.fail("\n".join(errors), pytrace=False)


class TlsFront:
    """What an operator puts in front of proxyd, which serves plain HTTP
    only (docs/proxyd.md: --host/--port, no TLS flags): a TLS terminator.
    Accepts TLS (HTTP/1.1 by ALPN) on addr:port and pipes the bytes to
    proxyd's port on 127.0.0.1 of the same namespace. Records each
    client's address, TLS version and ALPN."""

    def __init__(self, cert, key, addr, backend_port):
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        self.ctx.load_cert_chain(cert, key)
        self.ctx.set_alpn_protocols(["http/1.1"])
        self.addr = addr
        self.backend_port = backend_port
        self.clients = []
        self.errors = []
        self._stop = False
        self._threads = []

    def start(self):
        """Listen (in the calling thread's network namespace)."""
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind((self.addr, 0))
        self.sock.listen(64)
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        t = threading.Thread(target=self._accept, daemon=True,
                             name="tls-front")
        t.start()
        self._threads.append(t)
        return self

    def stop(self):
        self._stop = True
        for t in self._threads:
            t.join(5)
        self.sock.close()

    def _accept(self):
        while not self._stop:
            try:
                raw, peer = self.sock.accept()
            except socket.timeout:
                continue
            t = threading.Thread(target=self._serve, args=(raw, peer),
                                 daemon=True, name="tls-front-conn")
            t.start()
            self._threads.append(t)

    def _serve(self, raw, peer):
        tls = back = None
        try:
            raw.settimeout(10)
            tls = self.ctx.wrap_socket(raw, server_side=True)
            self.clients.append((peer[0], tls.version(),
                                 tls.selected_alpn_protocol()))
            back = socket.create_connection(("127.0.0.1", self.backend_port),
                                            timeout=10)
            tls.settimeout(None)
            back.settimeout(None)
            while not self._stop:
                ready = [tls] if tls.pending() else \
                    select.select([tls, back], [], [], 0.2)[0]
                for s in ready:
                    data = s.recv(65536)
                    if not data:
                        return
                    (back if s is tls else tls).sendall(data)
        except (OSError, ssl.SSLError) as e:
            if not self._stop and not isinstance(
                    e, (ConnectionResetError, BrokenPipeError)):
                self.errors.append(repr(e))
        finally:
            for s in (tls, back, raw):
                if s is not None:
                    try:
                        s.close()
                    except OSError:
                        pass


def test_two_hosts_over_veth_and_tls(netns_pair, tmpdir, apns_pki,
                                     fake_apns_factory, proxyd_factory,
                                     dictd_factory, notifierd_factory,
                                     openpgp_js, record_property):
    """The relay (Dovecot, metadata-dictd, notifierd) in one network
    namespace, the central side (proxyd, a TLS terminator in front of it,
    the fake APNs) in another, joined by a veth pair. notifierd reaches
    proxyd only at https://10.200.0.2:<port>/notify, verifying the
    certificate against the test CA (--ca-file): proxyd has no TLS
    listener of its own, so the TLS is a terminator's, as in a
    deployment. A client like core registers over IMAP inside the relay
    namespace, a mail goes in over LMTP, and the push reaches the fake
    APNs on the central side; the terminator saw the relay's address
    (10.200.0.1) and TLS."""
    relay_ns, central_ns = netns_pair
    from fake_webpush import make_server_cert
    certdir = os.path.join(tmpdir, "front")
    os.makedirs(certdir)
    cert, key = make_server_cert(apns_pki, certdir, hosts=(CENTRAL_ADDR,))

    dv = front = None
    try:
        with in_netns(central_ns):
            apns = fake_apns_factory("cert")
            proxyd = proxyd_factory(apns=apns, debounce="1ms")
            front = TlsFront(cert, key, CENTRAL_ADDR, proxyd.port).start()
        dictd = dictd_factory(name="relay", bind_notify=False)
        dvdir = os.path.join(tmpdir, "dv")
        os.makedirs(dvdir)
        os.chmod(dvdir, 0o755)
        with in_netns(relay_ns):
            dv = Dovecot(dvdir, dictd.socket_path)
            dv.start()
            notifierd_factory(
                proxy_url="https://%s:%d/notify" % (CENTRAL_ADDR, front.port),
                db_path=dictd.db_path, wake_socket=dictd.notify_path,
                extra_args=["--ca-file", apns_pki.ca_cert])
            plain = apns_token()
            register_like_core(dv, ALICE, core_encrypt(openpgp_js, plain))
        timing = {}
        assert dv.lmtp_deliver(BOB, ALICE, timing=timing) == {}
        done = timing["done"] + (time.time() - time.monotonic())
        (req,) = apns.wait_for(1, timeout=15)
        assert (req.token, req.status) == (plain, 200)
        wait_until(lambda: dictd.db_query("SELECT count(*) FROM queue")
                   [0][0] == 0, timeout=10, what="the relay queue empty")
        assert front.clients, "nothing came through the TLS terminator"
        assert {c[0] for c in front.clients} == {RELAY_ADDR}, front.clients
        assert all(c[1] in ("TLSv1.2", "TLSv1.3") for c in front.clients)
        assert not front.errors, front.errors
        # The relay cannot reach proxyd's plain port: only the terminator
        # listens on the veth.
        with in_netns(relay_ns):
            with pytest.raises(OSError):
                socket.create_connection((CENTRAL_ADDR, proxyd.port),
                                         timeout=2).close()
        report(record_property, "two_hosts",
               "LMTP 250 -> fake APNs across the veth over TLS (%s): "
               "%.1f ms, first connection included"
               % (front.clients[0][1], (req.t - done) * 1000))
    finally:
        if front is not None:
            front.stop()
        if dv is not None:
            dv.stop(check=False)
            bad = [line for line in dv.log_text().splitlines()
                   if "Panic:" in line or "Fatal:" in line]
            assert not bad, bad


# ---------------------------------------------------------------------------
# 7. A fault run of the whole chain (issue 11)
#
# proxyd's promise (a 200 to a /notify means a push for that device reaches
# the provider after the request arrived, across provider faults and
# proxyd restarts), metadata-dictd's durable queue and notifierd's
# delete-after-200, all at once: a mail flood over LMTP while daemons are
# killed with SIGKILL and restarted and the providers misbehave.

FAULT_RUN_RATE = 15.0           # flood mails per second
FAULT_RUN_LOAD_S = 40.0
FAULT_RUN_SENDERS = 3           # LMTP connections at once at most
# The wait after the load, bounded: usually a second or two, but a job that
# failed 8 times (notifierd --retry-base 200ms doubles: 25.6 s +- 10 %) at
# the end of the load waits that long before its next try.
FAULT_RUN_SETTLE_S = 40.0
FLOOD_USERS = FLEET[:10]        # 16 devices: one each, 6 more at random
FLOOD_KINDS = ["apns"] * 12 + ["fcm"] * 2 + ["webpush"] * 2
PROBE_POOL = FLEET[10:]         # one device and one probe each
PROBE_LEADS = (0.7, 0.3)        # a burst's mails: seconds before a fault
# How long a killed daemon stays down: what systemd does (systemd/*.service:
# Restart=always, RestartSec=1s); metadata-dictd also at once (chosen by
# the seed), its outage then lasting a few ms.
FAULT_RESTART_S = {"dictd": (0.0, 1.0), "notifierd": (1.0,),
                   "proxyd": (1.0,)}
FAULT_KINDS = ("dictd-kill9", "notifierd-kill9", "proxyd-kill9",
               "provider-500", "provider-429", "apns-close",
               "provider-down")
SANITIZER_MARKS = ("AddressSanitizer", "LeakSanitizer",
                   "UndefinedBehaviorSanitizer", "runtime error:")


def _digest(token):
    """A token's short name in messages: never the token itself."""
    return hashlib.sha256(token.encode()).hexdigest()[:8]


class FaultyApns(FakeApns):
    """The fake APNs plus two faults Apple's service can show and
    fake_apns.py does not script: close_requests (a request's connection
    is closed at the TCP level instead of answered: the push may or may
    not have been taken; counted in closed_requests), and a Retry-After
    header on a reply that carries "retry_after" (seconds)."""

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.close_requests = False
        self.closed_requests = 0

    def _request(self, c, sid):
        if self.close_requests:
            self.closed_requests += 1
            self._close(c)
            return
        super()._request(c, sid)

    def _answer(self, c, sid, req, reply):
        ra = reply.get("retry_after")
        if ra is None:
            return super()._answer(c, sid, req, reply)
        h = c.h2
        send_headers = h.send_headers

        def with_retry_after(stream_id, headers, **kw):
            return send_headers(stream_id, list(headers) +
                                [("retry-after", str(ra))], **kw)
        h.send_headers = with_retry_after
        try:
            return super()._answer(c, sid, req, reply)
        finally:
            del h.send_headers


class NotifyRecord:
    __slots__ = ("body", "t_in", "t_fwd", "status", "t_answer")

    def __init__(self, body, t_in):
        self.body = body
        self.t_in = t_in
        self.t_fwd = None       # just before the request went to proxyd
        self.status = None      # proxyd's answer; None: none came
        self.t_answer = None


class NotifyRecorder:
    """A recording HTTP/1.1 forwarder between notifierd and proxyd, to
    see every answer proxyd gave (including those notifierd never read
    because it was killed). One thread per client connection, each with
    its own keep-alive connection to proxyd (re-opened when proxyd closed
    it, e.g. after a restart). When proxyd cannot be reached or gives no
    answer, the client's connection is closed unanswered, as a dead proxyd
    would leave it. records: a NotifyRecord per request."""

    def __init__(self, upstream_port):
        self.upstream_port = upstream_port
        self.records = []
        self.errors = []
        self._lock = threading.Lock()
        self._stop = False
        self._socks = set()
        self._threads = []

    @property
    def url(self):
        return "http://127.0.0.1:%d/notify" % self.port

    def start(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(512)
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        t = threading.Thread(target=self._accept, daemon=True,
                             name="notify-recorder")
        t.start()
        self._threads.append(t)
        return self

    def stop(self):
        self._stop = True
        with self._lock:
            socks = list(self._socks)
        for s in socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        for t in self._threads:
            t.join(5)
        self.sock.close()

    def _accept(self):
        while not self._stop:
            try:
                c, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            t = threading.Thread(target=self._serve, args=(c,), daemon=True,
                                 name="notify-recorder-conn")
            t.start()
            self._threads.append(t)

    def _track(self, s, add=True):
        with self._lock:
            (self._socks.add if add else self._socks.discard)(s)

    @staticmethod
    def _read_head(s, buf):
        while b"\r\n\r\n" not in buf:
            data = s.recv(65536)
            if not data:
                if buf:
                    raise ConnectionError("EOF inside a header")
                return None, b""
            buf += data
        i = buf.index(b"\r\n\r\n") + 4
        return buf[:i], buf[i:]

    @staticmethod
    def _read_exact(s, buf, n):
        while len(buf) < n:
            data = s.recv(65536)
            if not data:
                raise ConnectionError("EOF inside a body")
            buf += data
        return buf[:n], buf[n:]

    @staticmethod
    def _headers(head):
        lines = head.decode("latin-1").split("\r\n")
        h = {}
        for line in lines[1:]:
            if ":" in line:
                k, v = line.split(":", 1)
                h[k.strip().lower()] = v.strip()
        return lines[0], h

    def _read_response(self, up):
        """(status, its bytes, its headers) of one response on up."""
        buf = b""
        head, buf = self._read_head(up, buf)
        if head is None:
            raise ConnectionError("no answer")
        first, h = self._headers(head)
        status = int(first.split()[1])
        if "chunked" in h.get("transfer-encoding", "").lower():
            body = b""
            while True:
                while b"\r\n" not in buf:
                    data = up.recv(65536)
                    if not data:
                        raise ConnectionError("EOF inside a chunk")
                    buf += data
                line, buf = buf.split(b"\r\n", 1)
                n = int(line.split(b";")[0], 16)
                chunk, buf = self._read_exact(up, buf, n + 2)
                body += line + b"\r\n" + chunk
                if n == 0:
                    break
            return status, head + body, h
        body, buf = self._read_exact(up, buf,
                                     int(h.get("content-length", "0")))
        return status, head + body, h

    @staticmethod
    def _dead(up):
        """Readable while no request is out: EOF (proxyd closed it or
        died), a reset, or bytes nobody asked for; not to be used."""
        return bool(select.select([up], [], [], 0)[0])

    def _serve(self, client):
        self._track(client)
        up = None
        buf = b""
        try:
            while not self._stop:
                head, buf = self._read_head(client, buf)
                if head is None:
                    return
                _, h = self._headers(head)
                body, buf = self._read_exact(
                    client, buf, int(h.get("content-length", "0")))
                rec = NotifyRecord(body.decode("latin-1"), time.time())
                with self._lock:
                    self.records.append(rec)
                if up is not None and self._dead(up):
                    self._track(up, False)
                    up.close()
                    up = None
                if up is None:
                    try:
                        up = socket.create_connection(
                            ("127.0.0.1", self.upstream_port), timeout=30)
                    except OSError:
                        return          # as a refused connection
                    self._track(up)
                rec.t_fwd = time.time()
                try:
                    up.sendall(head + body)
                    status, resp, rh = self._read_response(up)
                except (OSError, ValueError, IndexError):
                    return              # proxyd died: no answer
                rec.status, rec.t_answer = status, time.time()
                client.sendall(resp)
                if "close" in (rh.get("connection", "").lower(),
                               h.get("connection", "").lower()):
                    return
        except (OSError, ValueError) as e:
            if not self._stop and not isinstance(
                    e, (ConnectionError, BrokenPipeError)):
                self.errors.append(repr(e))
        finally:
            for s in (client, up):
                if s is not None:
                    self._track(s, False)
                    try:
                        s.close()
                    except OSError:
                        pass


class FaultMail:
    __slots__ = ("i", "at", "rcpt", "probe", "msgid", "t_start", "t_dot",
                 "t_250", "accepted", "error")

    def __init__(self, at, rcpt, probe=None):
        self.i = None               # its place in the run, by `at`
        self.at = at                # seconds after the load began
        self.rcpt = rcpt
        self.probe = probe          # the number of the fault it probes
        self.msgid = "fault-%s@example.org" % secrets.token_hex(8)
        self.t_start = self.t_dot = self.t_250 = None
        self.accepted = False
        self.error = None


def lmtp_mail(dovecot, mail, sender=BOB):
    """One mail over LMTP, by hand so that the times are known: t_start
    (before MAIL FROM), t_dot (before the message and its final dot were
    sent: no dict commit of this mail can come earlier) and t_250 (the
    final reply read). Wall-clock times, as the fakes stamp them."""
    msg = ("From: <%s>\r\nTo: <%s>\r\nSubject: fault run %d\r\n"
           "Message-ID: <%s>\r\nDate: Thu, 01 Jan 2026 00:00:00 +0000\r\n"
           "\r\nhi\r\n" % (sender, mail.rcpt, mail.i, mail.msgid)).encode()
    lmtp = None
    try:
        lmtp = smtplib.LMTP(dovecot.lmtp_path, timeout=60)
        lmtp.ehlo()
        mail.t_start = time.time()
        for cmd, want in ((lambda: lmtp.mail(sender), (250,)),
                          (lambda: lmtp.rcpt(mail.rcpt), (250, 251)),
                          (lambda: lmtp.docmd("DATA"), (354,))):
            code, text = cmd()
            if code not in want:
                mail.error = "%d %r" % (code, text)
                return
        mail.t_dot = time.time()
        lmtp.send(msg + b".\r\n")
        code, text = lmtp.getreply()
        mail.t_250 = time.time()
        mail.accepted = code == 250
        if not mail.accepted:
            mail.error = "%d %r" % (code, text)
    except (smtplib.SMTPException, OSError) as e:
        mail.error = repr(e)
    finally:
        if lmtp is not None:
            try:
                lmtp.quit()
            except (smtplib.SMTPException, OSError):
                lmtp.close()


class PacedFlood:
    """Each mail is sent at t0 + mail.at (mails sorted by at) by one of
    `senders` threads; an overdue one at once, so that a delivery stalled
    by a dict outage holds up only its own thread."""

    def __init__(self, dovecot, mails, t0, senders):
        self.dovecot = dovecot
        self.mails = mails
        self.t0 = t0
        self._next = 0
        self._lock = threading.Lock()
        self.errors = []
        self.threads = [threading.Thread(target=self._run, daemon=True,
                                         name="fault-flood-%d" % k)
                        for k in range(senders)]

    def start(self):
        for t in self.threads:
            t.start()
        return self

    def _run(self):
        try:
            while True:
                with self._lock:
                    i = self._next
                    self._next += 1
                if i >= len(self.mails):
                    return
                # pacing the load, not waiting for a condition
                time.sleep(max(0.0, self.t0 + self.mails[i].at -
                               time.time()))
                lmtp_mail(self.dovecot, self.mails[i])
        except BaseException as e:
            self.errors.append(repr(e))

    def finish(self, timeout):
        for t in self.threads:
            t.join(timeout)
        assert not any(t.is_alive() for t in self.threads), \
            "the flood is still running"
        assert not self.errors, self.errors


class Fault:
    __slots__ = ("kind", "at", "length", "retry_after", "probes",
                 "t_begin", "t_end", "note", "probe_note")

    def __init__(self, kind, at, length, retry_after=None):
        self.kind = kind
        self.at = at                # seconds after the load began
        self.length = length        # provider faults; kills: the restart
        self.retry_after = retry_after
        self.probes = []            # (user, "owed" or "during")
        self.t_begin = self.t_end = None
        self.note = ""
        self.probe_note = ""

    def describe(self, t0):
        extra = " Retry-After %ds" % self.retry_after \
            if self.retry_after else ""
        got = "" if self.t_begin is None else " (ran %+.2f..%+.2f s%s)" % (
            self.t_begin - t0, self.t_end - t0,
            ", " + self.note if self.note else "")
        return "+%.2fs %s %.2fs%s%s; probes %s%s" % (
            self.at, self.kind, self.length, extra, got,
            ", ".join("%s (%s)" % (u.split("@")[0], how)
                      for u, how in self.probes) or "none",
            " (%s)" % self.probe_note if self.probe_note else "")

    def during(self):
        """When a mail lands inside this fault (seconds after its start):
        halfway through the killed daemon's outage (for a metadata-dictd
        started again at once, with the kill), or in the provider fault's
        first second."""
        if self.kind.endswith("kill9"):
            return self.length / 2
        return min(1.0, self.length / 2)


def fault_plan(rng, load_s=FAULT_RUN_LOAD_S):
    """The faults of one run: one every 3-6 s from 1.5 s on while the load
    runs, each kind at least once (the first seven are the kinds in a
    random order); a provider fault lasts 2-5 s, but ends 1 s before the
    next fault begins (so that the probe burst before that one meets
    working providers)."""
    starts = []
    t = 1.5
    while t < load_s - 2.0:
        starts.append(t)
        t += rng.uniform(3.0, 6.0)
    kinds = list(FAULT_KINDS)
    rng.shuffle(kinds)
    while len(kinds) < len(starts):
        kinds.append(rng.choice(FAULT_KINDS))
    faults = []
    for k, at in enumerate(starts):
        kind = kinds[k]
        gap = (starts[k + 1] - at) if k + 1 < len(starts) else 6.0
        if kind.endswith("kill9"):
            faults.append(Fault(kind, at, rng.choice(
                FAULT_RESTART_S[kind.split("-")[0]])))
        else:
            length = min(rng.uniform(2.0, 5.0), gap - 1.0)
            ra = rng.randint(1, 3) if kind == "provider-429" else None
            faults.append(Fault(kind, at, length, ra))
    return faults


def plan_fault_run(rng):
    """Everything a run does, from the seed: devices [(user, kind)],
    mails (sorted by time, numbered) and faults. The flood goes to random
    FLOOD_USERS at FAULT_RUN_RATE. Each fault also gets probes: users of
    PROBE_POOL with one device each that get no other mail in the run, so
    that a probe's push cannot hide behind a later mail's. An "owed"
    probe is two mails just before the fault (planned PROBE_LEADS seconds
    before it; FaultRunner sends them): the first is pushed at once and
    opens proxyd's debounce window, the second falls into it, so that
    proxyd owes its push when the fault strikes. A "during" probe is one
    mail inside the fault (Fault.during): the relay must keep trying, or
    push.lua try the dict again. Provider
    faults get both, a proxyd kill an owed one, a notifierd or
    metadata-dictd kill a during one. Probes are APNs devices but for an
    FCM and a Web Push one, at a provider fault that reaches them."""
    kinds = list(FLOOD_KINDS)
    rng.shuffle(kinds)
    owners = list(FLOOD_USERS) + [rng.choice(FLOOD_USERS)
                                  for _ in range(len(kinds) -
                                                 len(FLOOD_USERS))]
    devices = list(zip(owners, kinds))
    faults = fault_plan(rng)
    mails = [FaultMail(i / FAULT_RUN_RATE, rng.choice(FLOOD_USERS))
             for i in range(int(FAULT_RUN_RATE * FAULT_RUN_LOAD_S))]
    pool = iter(PROBE_POOL)
    probes = []             # (fault number, user, how)
    for n, f in enumerate(faults):
        hows = {"proxyd-kill9": ("owed",), "notifierd-kill9": ("during",),
                "dictd-kill9": ("during",)}.get(f.kind, ("owed", "during"))
        for how in hows:
            u = next(pool)
            f.probes.append((u, how))
            probes.append((n, u, how))
            if how == "owed":
                mails += [FaultMail(f.at - lead, u, probe=n)
                          for lead in PROBE_LEADS]
            else:
                mails.append(FaultMail(f.at + f.during(), u, probe=n))
    others = [k for k, (n, _, _) in enumerate(probes)
              if faults[n].kind.startswith("provider-")]
    special = dict(zip(rng.sample(others, min(2, len(others))),
                       ("fcm", "webpush")))
    devices += [(u, special.get(k, "apns"))
                for k, (_, u, _) in enumerate(probes)]
    mails.sort(key=lambda m: m.at)
    for i, m in enumerate(mails):
        m.i = i
    return devices, mails, faults


def kill9(daemon):
    """SIGKILL a running daemon (the harness' Notifierd.kill9 for any
    Daemon): its exit code, -9 unless it had died by itself before."""
    proc, daemon.proc = daemon.proc, None
    rc = proc.poll()
    if rc is None:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        rc = proc.returncode
    daemon.exit_codes.append(rc)
    return rc


class FaultRunner(threading.Thread):
    """Applies the planned faults at their times (one at a time; a
    provider fault is ended before the next one starts). A fault with an
    owed probe starts PROBE_LEADS[0] s early with prepare(fault), which
    returns once proxyd owes the probe's push (or it gave up: its note);
    inside(fault) runs as the fault strikes. errors: what went wrong (a
    daemon that had died by itself before its kill, a restart that
    failed)."""

    def __init__(self, t0, faults, daemons, apns, fcm, webpush,
                 prepare=None, inside=None):
        super().__init__(daemon=True, name="fault-runner")
        self.t0 = t0
        self.faults = faults
        self.prepare, self.inside = prepare, inside
        self.daemons = daemons      # {"dictd": ..., "notifierd": ...}
        self.apns, self.fcm, self.webpush = apns, fcm, webpush
        self.provider = None        # None, "500" or "429"
        self.retry_after = 1
        self.errors = []
        self.dictd_down = []        # (killed, ready again), wall times
        apns.responder = self._apns_reply
        fcm.responder = self._fcm_reply
        webpush.responder = self._webpush_reply

    def _apns_reply(self, req):
        if self.provider == "500":
            return (500, "InternalServerError")
        if self.provider == "429":
            return (429, "TooManyRequests",
                    {"retry_after": self.retry_after})
        return 200

    def _fcm_reply(self, req):
        if self.provider == "500":
            return "INTERNAL"
        if self.provider == "429":
            return (429, self.retry_after)
        return 200

    def _webpush_reply(self, req):
        if self.provider == "500":
            return 500
        if self.provider == "429":
            return (429, {"Retry-After": str(self.retry_after)})
        return None         # the fake's default (201)

    def run(self):
        for f in self.faults:
            lead = PROBE_LEADS[0] if any(how == "owed"
                                         for _, how in f.probes) else 0.0
            # the plan's timing, not a synchronisation
            time.sleep(max(0.0, self.t0 + f.at - lead - time.time()))
            try:
                if self.prepare is not None:
                    f.probe_note = self.prepare(f)
            except BaseException as e:
                self.errors.append("%s: %r" % (f.describe(self.t0), e))
                return
            f.t_begin = time.time()
            try:
                if self.inside is not None:
                    self.inside(f)
                self._apply(f)
            except BaseException as e:
                self.errors.append("%s: %r" % (f.describe(self.t0), e))
                return
            finally:
                f.t_end = time.time()

    def _apply(self, f):
        if f.kind.endswith("kill9"):
            name = f.kind.split("-")[0]
            d = self.daemons[name]
            rc = kill9(d)
            t_killed = time.time()
            if rc != -signal.SIGKILL:
                self.errors.append("%s had exited with %r before its kill "
                                   "at %+.2f s" % (name, rc,
                                                   t_killed - self.t0))
            time.sleep(f.length)        # the supervisor's restart delay
            d.start()
            f.note = "%s up %.2f s after the kill" % (
                name, time.time() - t_killed)
            if name == "dictd":
                self.dictd_down.append((t_killed, time.time()))
            return
        end = f.t_begin + f.length
        if f.kind == "provider-down":
            for fake in (self.apns, self.fcm, self.webpush):
                fake.stop()
            time.sleep(max(0.0, end - time.time()))
            for fake in (self.apns, self.fcm, self.webpush):
                fake.start()
        elif f.kind == "apns-close":
            before = self.apns.closed_requests
            self.apns.close_requests = True
            self.apns.drop_connections()
            time.sleep(max(0.0, end - time.time()))
            self.apns.close_requests = False
            f.note = "%d requests' connections closed" % (
                self.apns.closed_requests - before)
        else:
            self.retry_after = f.retry_after or 1
            self.provider = f.kind.split("-")[1]
            time.sleep(max(0.0, end - time.time()))
            self.provider = None


def _lmtp_sessions(log_text):
    """From Dovecot's log: {msgid: session} of the mails LMTP saved, and
    per session the number of failed dict commits and whether push.lua
    failed (it gave up after its attempts)."""
    saved, commits, lua = {}, collections.Counter(), set()
    prefix = r"lmtp\([^)]*\)<(\d+)><([^>]+)>: "
    for line in log_text.splitlines():
        m = re.search(prefix + r"Info: msgid=<([^>]+)>: saved mail", line)
        if m:
            saved[m.group(3)] = (m.group(1), m.group(2))
            continue
        m = re.search(prefix + r"Error: .*Dict private transaction commit "
                      r"failed", line)
        if m:
            commits[(m.group(1), m.group(2))] += 1
            continue
        m = re.search(prefix + r"Error: .*lua_pcall\(dovecot_lua_notify_"
                      r"event_message_new", line)
        if m:
            lua.add((m.group(1), m.group(2)))
    return saved, commits, lua


def _read_db(path, sql, params=()):
    """Rows of a query on a daemon's SQLite file, opened read-only (WAL:
    it does not disturb the writer); None if it cannot be read now."""
    try:
        con = sqlite3.connect("file:%s?mode=ro" % path, uri=True,
                              timeout=2.0)
        try:
            return con.execute(sql, params).fetchall()
        finally:
            con.close()
    except sqlite3.Error:
        return None


def test_fault_run_whole_chain(dovecot, dictd, apns_pki, proxyd_factory,
                               notifierd_factory, fake_fcm, fake_webpush,
                               vapid_key, openpgp_js, tmpdir,
                               record_property):
    """Issue 11: a fault run of the whole chain, about a minute. About
    30 devices (tokens encrypted like core's, stored through IMAP): 16
    flood devices (12 APNs, 2 FCM, 2 Web Push) on 10 users, who get 15
    mails/s over LMTP at random for 40 s, and a probe device for each
    probe (below). Meanwhile a fault every 3-6 s, in a seeded random
    order with every kind at least once: SIGKILL of metadata-dictd
    (started again at once or 1 s later), of notifierd and of proxyd
    (started again 1 s later, systemd's RestartSec=1s), and provider
    faults of 2-5 s: 500s, 429 with Retry-After (FCM and Web Push pause
    for it, an owed push waits for it), the fake APNs closing the
    connection of every request, and every provider down. Each fault has
    probes, users who get no other mail (plan_fault_run): an "owed"
    probe gets two mails just before the fault, so that proxyd owes the
    second one's push (a coalesced request it answered 200) when the
    fault strikes; a "during" probe gets one mail inside the fault. A
    probe's push cannot hide behind a later mail's, as the flood's can.
    proxyd --debounce 1s --owed-retry-min 100ms --owed-retry-max 1s;
    notifierd --retry-base 200ms --poll 200ms, reaching proxyd through a
    recording forwarder (NotifyRecorder) that sees every answer proxyd
    gave, also those notifierd was killed before reading.

    Then, within FAULT_RUN_SETTLE_S of the load's end:
      (a) every device got a successful push after its user's last mail.
          "After a mail" means after the client sent its final dot: the
          dict commit that queues the job comes after that and LMTP's 250
          after the commit, so a push may beat the 250 by a few ms
          (counted in the summary). A mail push.lua failed to hand to the
          dict (Dovecot logs it: the documented limit of a metadata-dictd
          outage longer than push.lua's three attempts) is left out only
          if it was delivered while metadata-dictd was down; with outages
          of 1 s at most none has been (push.lua's attempts cover about
          9 s).
      (b) for every /notify proxyd answered 200, a push for that device
          reached its provider after the request was sent to proxyd;
      (c) the relay queue is empty and proxyd owes nothing (metric and
          table); no daemon exited but by our SIGKILL (the fixtures'
          SIGTERM must give 0), no sanitizer report in a log, no token in
          clear in any log.
    The seed is printed (FULL_CHAIN_SEED=<seed> replays the plan: devices,
    recipients, times and faults); so are the fault timeline and a
    summary: mails, faults by kind, /notify answers, pushes, and the
    lateness from a mail's 250 to the first push after it."""
    seed = int(os.environ.get("FULL_CHAIN_SEED") or secrets.randbits(32))
    print("\nFULL-CHAIN fault_run seed: %d" % seed)
    record_property("fault_run_seed", seed)
    layout, mails, faults = plan_fault_run(random.Random(seed))

    apns = FaultyApns(apns_pki, mode="cert").start()
    key = os.path.join(tmpdir, "service-account.json")
    fake_fcm.write_key_file(key)
    recorder = None
    try:
        proxyd = proxyd_factory(apns=apns, debounce="1s", extra_args=[
            "--owed-retry-min", "100ms", "--owed-retry-max", "1s",
            "--fcm-key-path", key, "--fcm-api-url", fake_fcm.api_url,
            "--vapid-key-path", vapid_key, "--vapid-subject",
            VAPID_SUBJECT, "--webpush-allow-private"])
        recorder = NotifyRecorder(proxyd.port).start()
        notifierd = notifierd_factory(
            proxy_url=recorder.url, wake_socket=dictd.notify_path,
            retry_base="200ms", poll="200ms")

        # ---- devices, registered as core does ----
        subs = {}           # Web Push subscription id -> plain token
        plains = []
        for _, kind in layout:
            if kind == "apns":
                plains.append(apns_token())
            elif kind == "fcm":
                reg = secrets.token_urlsafe(120).replace("-", "_")
                register_secret(reg)
                plains.append("fcm-%s:%s" % (FCM_PACKAGE, reg))
            else:
                sub = fake_webpush.subscribe()
                subs[sub.id] = sub.token
                plains.append(sub.token)
        with ThreadPoolExecutor(4) as pool:
            encs = list(pool.map(lambda p: core_encrypt(openpgp_js, p),
                                 plains))
        devices = [(user, kind, plain) for (user, kind), plain in
                   zip(layout, plains)]
        for (user, _), enc in zip(layout, encs):
            register_like_core(dovecot, user, enc, FLEET_PASSWORD)
        assert len(dictd.db_query("SELECT id FROM tokens")) == len(devices)
        plain_of = dict(zip(encs, plains))
        fcm_plain = {p.split(":", 1)[1]: p for p in plains
                     if p.startswith("fcm-")}
        devices_of = collections.defaultdict(list)
        for user, kind, plain in devices:
            devices_of[user].append((kind, plain))

        def pushes():
            """{plain token: sorted times of its successful pushes}."""
            out = collections.defaultdict(list)
            for r in list(apns.requests):
                if r.status == 200:
                    out[r.token].append(r.t)
            for r in fake_fcm.sends:
                if r.status == 200 and r.info.get("token") in fcm_plain:
                    out[fcm_plain[r.info["token"]]].append(r.t)
            for r in fake_webpush.received():
                if r.status is not None and 200 <= r.status < 300 and \
                        r.sub_id in subs:
                    out[subs[r.sub_id]].append(r.t)
            for v in out.values():
                v.sort()
            return out

        # ---- the run ----
        log_start = len(dovecot.log_text())
        t0 = time.time() + 0.5
        probe_mails = collections.defaultdict(list)
        for m in mails:
            if m.probe is not None:
                probe_mails[m.probe].append(m)
        during_threads = []

        def poll(pred, timeout):
            try:
                return wait_until(pred, timeout=timeout, interval=0.01)
            except harness.WaitTimeout:
                return False

        def prepare(f):
            """An owed probe: once notifierd's breaker is closed (after
            an earlier fault it may hold the relay's jobs back, and two
            mails then become one job), the first mail and its push,
            then the second and proxyd's 200 for it, with no push after
            it yet: proxyd owes that push when the fault strikes."""
            n = faults.index(f)
            owed = [m for m in probe_mails[n] if m.rcpt in
                    [u for u, how in f.probes if how == "owed"]]
            if not owed:
                return ""
            first, second = owed
            (_, plain), = devices_of[first.rcpt]

            def breaker_closed():
                try:
                    return notifierd.metric("notifierd_breaker_open") == 0
                except (OSError, AssertionError):
                    return False
            closed = poll(breaker_closed, 3.0)
            lmtp_mail(dovecot, first)
            if not first.accepted:
                return "NOT owed: the first mail failed (%s)" % first.error
            poll(lambda: any(t > first.t_dot
                             for t in pushes().get(plain, ())), 2.0)
            lmtp_mail(dovecot, second)

            def owes():
                last = max(pushes().get(plain, ()), default=0.0)
                return any(r.status == 200 and r.t_fwd > last and
                           plain_of.get(r.body) == plain
                           for r in list(recorder.records))
            if poll(owes, 1.0):
                return "owed at the strike"
            return "NOT owed at the strike%s" % (
                "" if closed else ", the relay's breaker stayed open")

        def inside(f):
            """A during probe: its mail goes f.during() s into the
            fault, from a thread of its own (LMTP waits for a dict
            outage)."""
            n = faults.index(f)
            for m in probe_mails[n]:
                if m.rcpt in [u for u, how in f.probes if how == "during"]:
                    due = f.t_begin + f.during()

                    def send(m=m, due=due):
                        time.sleep(max(0.0, due - time.time()))
                        lmtp_mail(dovecot, m)
                    t = threading.Thread(target=send, daemon=True,
                                         name="during-probe")
                    t.start()
                    during_threads.append(t)

        runner = FaultRunner(t0, faults, {"dictd": dictd,
                                          "notifierd": notifierd,
                                          "proxyd": proxyd},
                             apns, fake_fcm, fake_webpush, prepare, inside)
        flood = PacedFlood(dovecot, [m for m in mails if m.probe is None],
                           t0, FAULT_RUN_SENDERS).start()
        runner.start()
        flood.finish(FAULT_RUN_LOAD_S + 60)
        runner.join(30)
        assert not runner.is_alive(), "the faults did not end"
        for t in during_threads:
            t.join(60)
            assert not t.is_alive(), "a probe mail is still being sent"
        t_quiet = time.time()
        timeline = "\n".join("  " + f.describe(t0) for f in faults)
        print("FULL-CHAIN fault_run timeline (seconds after the load "
              "began):\n" + timeline)
        assert not runner.errors, "seed %d: %s" % (
            seed, "; ".join(runner.errors))

        # ---- which mails owe a push ----
        saved, commit_failures, lua_failed = _lmtp_sessions(
            dovecot.log_text()[log_start:])
        accepted = [m for m in mails if m.accepted]
        excluded, unexplained = [], []
        for m in accepted:
            if saved.get(m.msgid) in lua_failed:
                if any(a <= m.t_250 and m.t_start <= b
                       for a, b in runner.dictd_down):
                    excluded.append(m)
                else:
                    unexplained.append(m)
        owed = sorted((m for m in accepted if m not in excluded),
                      key=lambda m: m.t_dot)
        owed_of = collections.defaultdict(list)
        for m in owed:
            owed_of[m.rcpt].append(m)
        # Probes: (fault, user, the probe's last mail, "owed" or
        # "during"); (a) covers them, this names them when they fail.
        bursts = [(f, u, owed_of[u][-1], how)
                  for f in faults for u, how in f.probes if owed_of[u]]

        def check():
            """What is still missing: (a) devices without a push after
            their last mail (probes apart), probes without their push,
            (b) 200s not followed by a push."""
            got = pushes()
            miss_a = [(u, kind, plain) for u in owed_of
                      for kind, plain in devices_of[u]
                      if not any(t > owed_of[u][-1].t_dot
                                 for t in got.get(plain, ()))]
            miss_p = [(f, u, kind, plain, b, how)
                      for f, u, b, how in bursts
                      for kind, plain in devices_of[u]
                      if not any(t > b.t_dot for t in got.get(plain, ()))]
            miss_a = [x for x in miss_a if x[0] not in
                      {y[1] for y in miss_p}]
            newest = {}
            for r in list(recorder.records):
                p = plain_of.get(r.body)
                if r.status == 200 and p is not None and (
                        p not in newest or r.t_fwd > newest[p].t_fwd):
                    newest[p] = r
            miss_b = [(p, r) for p, r in newest.items()
                      if not any(t >= r.t_fwd for t in got.get(p, ()))]
            return miss_a, miss_p, miss_b

        def settled():
            return not any(check()) and dictd.db_query(
                "SELECT count(*) FROM queue")[0][0] == 0 and \
                proxyd.metric("owed_pushes") == 0 and \
                _read_db(proxyd.db_path, "SELECT count(*) FROM owed") == [(0,)]

        def fmt(ts):
            return ["%+.3f" % (t - t0) for t in ts]

        try:
            wait_until(settled, timeout=FAULT_RUN_SETTLE_S, interval=0.2,
                       what="every device pushed after its last mail, "
                       "every 200 kept, the relay queue empty, nothing "
                       "owed")
        except AssertionError as e:
            miss_a, miss_p, miss_b = check()
            got = pushes()

            def posts(plain):
                return [("%+.3f" % ((r.t_fwd or r.t_in) - t0), r.status)
                        for r in recorder.records
                        if plain_of.get(r.body) == plain]
            lines = [str(e), "seed %d (FULL_CHAIN_SEED=%d replays the plan)"
                     % (seed, seed), "faults (seconds after the load "
                     "began):", timeline]
            for u, kind, plain in miss_a:
                m = owed_of[u][-1]
                lines.append(
                    "(a) %s device %s (%s): no push after its last mail #%d "
                    "(dot %+.3f s, 250 %+.3f s); pushes at %s; /notify "
                    "(sent, status) %s" % (
                        u, _digest(plain), kind, m.i, m.t_dot - t0,
                        m.t_250 - t0, fmt(got.get(plain, [])[-4:]),
                        posts(plain)[-6:]))
            for f, u, kind, plain, b, how in miss_p:
                lines.append(
                    "(a) %s probe of %s at %+.2f s, %s device %s (%s): no "
                    "push after its mail #%d (dot %+.3f s, 250 %+.3f s); "
                    "pushes at %s; /notify (sent, status) %s" % (
                        how, f.kind, f.at, u, _digest(plain), kind, b.i,
                        b.t_dot - t0, b.t_250 - t0, fmt(got.get(plain, [])),
                        posts(plain)))
            for plain, r in miss_b:
                lines.append(
                    "(b) device %s: proxyd answered 200 to the request "
                    "sent at %+.3f s (answer %+.3f s), pushes only at %s"
                    % (_digest(plain), r.t_fwd - t0, r.t_answer - t0,
                       fmt(got.get(plain, [])[-4:])))
            lines.append("relay queue (token id, attempts, due in s): %s; "
                         "proxyd owed_pushes %s, owed rows %s" % (
                             [(a, b, round(c / 1000.0 - time.time(), 2))
                              for a, b, c in dictd.db_query(
                                  "SELECT token_id, attempts, next_at "
                                  "FROM queue")][:20],
                             proxyd.metric("owed_pushes"),
                             _read_db(proxyd.db_path, "SELECT first_at, "
                                      "due_at, attempts FROM owed")))
            if unexplained:
                lines.append("push.lua gave up outside any metadata-dictd "
                             "outage for mails %s" % [m.i for m in
                                                      unexplained])
            raise AssertionError("\n".join(lines)) from None
        t_settled = time.time()

        # ---- (c) ----
        assert not unexplained, "push.lua gave up outside a " \
            "metadata-dictd outage: mails %s" % [m.i for m in unexplained]
        for name, d in (("metadata-dictd", dictd), ("notifierd", notifierd),
                        ("proxyd", proxyd)):
            assert d.running, "%s is not running at the end (exit codes " \
                "%r)" % (name, d.exit_codes)
            assert all(rc == -signal.SIGKILL for rc in d.exit_codes), \
                (name, d.exit_codes)
            bad = [line for line in d.log_text().splitlines()
                   if any(s in line for s in SANITIZER_MARKS)]
            assert not bad, "%s: %s" % (name, bad[:5])
        assert not recorder.errors, recorder.errors
        assert not apns.errors, apns.errors

        # ---- figures ----
        got = pushes()
        late = []           # (first push after the dot - 250, mail)
        for m in owed:
            for _, plain in devices_of[m.rcpt]:
                ts = got[plain]
                late.append((ts[bisect.bisect_right(ts, m.t_dot)] - m.t_250,
                             m))
        late.sort(key=lambda x: x[0])
        worst = late[-1][1]
        beat_250 = sum(1 for u in owed_of for _, plain in devices_of[u]
                       if not any(t > owed_of[u][-1].t_250
                                  for t in got[plain]))
        probes = collections.defaultdict(list)
        for f, u, b, how in bursts:
            for _, plain in devices_of[u]:
                ts = got[plain]
                probes[how].append(ts[bisect.bisect_right(ts, b.t_dot)] -
                                   b.t_250)
        kept = []           # a 200's push: how long after the request
        for r in recorder.records:
            if r.status == 200 and r.body in plain_of:
                ts = got[plain_of[r.body]]
                t = ts[bisect.bisect_left(ts, r.t_fwd)]
                kept.append((t - r.t_fwd, r))
        kept.sort(key=lambda x: x[0])
        answers = collections.Counter(r.status for r in recorder.records)
        per_provider = collections.Counter()
        for _, kind, plain in devices:
            per_provider[kind] += len(got[plain])

        def count(c):
            return ", ".join("%s %d" % (k, v) for k, v in sorted(
                c.items(), key=lambda kv: str(kv[0])))
        refused = collections.Counter((m.error or "")[:40] for m in mails
                                      if not m.accepted)
        figures = [
            "seed %d" % seed,
            "%d mails over %.1f s, %d accepted%s; %d devices on %d users" % (
                len(mails), max(m.t_250 or m.t_start or t0 for m in mails)
                - t0, len(accepted),
                (", refused: " + count(refused)) if refused else "",
                len(devices), len(devices_of)),
            "faults: %s" % count(collections.Counter(f.kind
                                                     for f in faults)),
            "/notify answers from proxyd: %s" % count(answers),
            "successful pushes: %s" % count(per_provider),
            "every device pushed after its user's last mail (%d of them "
            "only between the final dot and the 250); settled %.1f s "
            "after the faults" % (beat_250, t_settled - t_quiet),
            "probes, all pushed: %d owed (%d of them owed by proxyd when "
            "the fault struck; the push %.2f s after the 250 at most), %d "
            "during a fault (%.2f s at most)" % (
                len(probes["owed"]), sum(f.probe_note.startswith("owed")
                                         for f in faults),
                max(probes["owed"] or [0]), len(probes["during"]),
                max(probes["during"] or [0])),
            "lateness, a mail's 250 to the first push after it (%d mail x "
            "device): p50 %.2f s, p99 %.2f s, max %.2f s (mail #%d to %s "
            "at %+.1f s)" % (
                len(late), late[len(late) // 2][0],
                percentile([x[0] for x in late], 99), late[-1][0], worst.i,
                worst.rcpt.split("@")[0], worst.t_250 - t0),
            "a 200's push came after the request within p50 %.2f s, p99 "
            "%.2f s, max %.2f s" % (
                kept[len(kept) // 2][0], percentile([x[0] for x in kept],
                                                    99), kept[-1][0]),
            "push.lua: dict commit retried for %d mails, given up for %d "
            "(left out of (a): %d)" % (
                sum(1 for m in accepted
                    if commit_failures.get(saved.get(m.msgid))),
                len(lua_failed), len(excluded)),
            "restarts: proxyd read back %s owed pushes, notifierd %s jobs "
            "in flight; notifierd's breaker opened %d times (for %d ms at "
            "most), a job took %d attempts at most; proxyd retried owed "
            "pushes %d times" % (
                "+".join(re.findall(r"proxy owed pushes loaded=(\d+)",
                                    proxyd.log_text())) or "no",
                "+".join(re.findall(r"notify (\d+) jobs were in flight",
                                    notifierd.log_text())) or "no",
                notifierd.log_text().count("pausing for"),
                max(map(int, re.findall(r"pausing for (\d+) ms",
                                        notifierd.log_text())), default=0),
                max(map(int, re.findall(r" attempts=(\d+)",
                                        notifierd.log_text())), default=0),
                len(re.findall(r"proxy owed push token=\S+ provider=\S+ "
                               r"failed", proxyd.log_text()))),
        ]
        report(record_property, "fault_run", "\n  ".join(figures))
        print("FULL-CHAIN fault_run, the latest push: /notify requests for "
              "mail #%d's devices after it (sent, status): %s" % (
                  worst.i, [("%+.3f" % (r.t_in - t0), r.status)
                            for r in recorder.records
                            if r.t_in > worst.t_dot and
                            plain_of.get(r.body) in
                            [p for _, p in devices_of[worst.rcpt]]][:30]))
    finally:
        if recorder is not None:
            recorder.stop()
        apns.stop()
