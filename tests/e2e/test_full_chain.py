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
the tokens of the client-like-core, provider, debounce, 410 and multi-host
tests are encrypted by OpenPGP.js exactly as chatmail core does.

Two defects these tests found are fixed and stay covered:
  * test_dictd_killed_during_a_commit_still_pushes: a mail whose dict
    commit was unanswered when metadata-dictd died was accepted by LMTP
    but never pushed (push.lua's error was only logged); push.lua now
    tries the commit again.
  * test_proxyd_answers_at_once_on_a_new_connection: proxyd never sent an
    answer its handler gave at once (debounce-coalesced 200, 410 for a
    malformed token) on a new connection while another one was open
    (proxyd/api.c now queues such answers without suspending).
"""

import contextlib
import ctypes
import math
import os
import pwd
import grp
import secrets
import select
import shutil
import signal
import smtplib
import socket
import ssl
import subprocess
import threading
import time

import pytest

import harness
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
    Each must be answered at once (before the fix in proxyd/api.c neither
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
