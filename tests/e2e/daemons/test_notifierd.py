"""End-to-end tests of notifierd: the relay queue drained into a fake push
proxy (fake_proxy.py), alone on a database the test fills directly
(harness.RelayDb) and behind a real Dovecot + metadata-dictd.

Spec: docs/notifierd.md. Timings are test-sized (--retry-base 200ms, --poll
200ms unless a test says otherwise); every wait is for a condition, with a
deadline. Each notifierd is stopped with SIGTERM in teardown and must exit
0, and its log must not contain a token in clear (conftest.py).
"""

import base64
import hashlib
import os
import re
import time

import pytest

from fake_proxy import FakeProxy
from harness import (RelayDb, http_get, leaked_secrets, parse_openmetrics,
                     register_secret, unix_ms, wait_until)

ALICE = "alice@example.org"
BOB = "bob@example.org"


def openpgp_token(b64_chars=600):
    raw = os.urandom(b64_chars * 3 // 4)
    tok = "openpgp:" + base64.b64encode(raw).decode()[:b64_chars]
    register_secret(tok)
    return tok


def apns_token():
    tok = os.urandom(32).hex()
    register_secret(tok)
    return tok


def mono_to_unix_ms(t):
    """A time.monotonic() value (the fake's arrival times) as unix ms."""
    return unix_ms() - (time.monotonic() - t) * 1000.0


def set_token(dovecot, user, token):
    with dovecot.imap(user) as c:
        r = c.set_devicetoken(token)
        assert r.status == "OK", "SETMETADATA devicetoken -> %s %s" % (
            r.status, r.text)


def wait_metrics(n, pred, timeout=5.0, what="metrics"):
    """Scrape until pred(samples) holds; returns the samples."""
    def check():
        m = n.metrics()
        return m if pred(m) else None
    return wait_until(check, timeout=timeout, interval=0.05, what=what)


def holds_for(pred, duration):
    """True if pred() stayed true for `duration` seconds: an observation
    window for something that must not happen, not a synchronisation."""
    deadline = time.monotonic() + duration
    while time.monotonic() < deadline:
        if not pred():
            return False
        time.sleep(0.02)
    return bool(pred())


def queue_empty(db):
    return db.count("queue") == 0


TRANSPORT = 'notifierd_failures_total{reason="transport"}'
STATUS = 'notifierd_failures_total{reason="status"}'


# ---------------------------------------------------------------------------
# Outcomes: 200, 410, retry, deadline


def test_200_delivers_the_token_and_deletes_the_job(fake_proxy, relay_db,
                                                    notifierd_factory):
    tok, later = openpgp_token(), apns_token()
    tid = relay_db.add_token(ALICE, tok)
    lid = relay_db.add_token(BOB, later)
    relay_db.add_job(tid)
    # not due for ten minutes: must stay untouched
    relay_db.add_job(lid, next_at=unix_ms() + 600_000)

    n = notifierd_factory()
    fake_proxy.wait_for(count=1, timeout=5)
    wait_until(lambda: relay_db.count("queue", "token_id = ?", (tid,)) == 0,
               timeout=5, what="delivered job deleted")

    reqs = fake_proxy.requests
    assert [r.body for r in reqs] == [tok], "proxy got %r" % [
        r.body[:20] for r in reqs]
    assert reqs[0].path == "/notify" and fake_proxy.other_requests == []
    # a 200 deletes the job, never the token
    assert relay_db.tokens() == sorted([tok, later])
    assert [(j[1], j[2], j[3]) for j in relay_db.jobs()] == [(later, 0, 0)]

    m = wait_metrics(n, lambda m: m["notifierd_succeeded_total"] == 1)
    assert m["notifierd_sent_total"] == 1
    assert m["notifierd_gone_total"] == 0
    assert m["notifierd_retried_total"] == 0
    assert m[TRANSPORT] == 0 and m[STATUS] == 0
    assert m["notifierd_request_duration_seconds_count"] == 1
    assert fake_proxy.count == 1


def test_410_deletes_the_token_and_all_its_jobs(fake_proxy, relay_db,
                                                notifierd_factory):
    dead, alive = openpgp_token(), apns_token()
    dead_id = relay_db.add_token(ALICE, dead)
    alive_id = relay_db.add_token(ALICE, alive)
    fake_proxy.set_status(dead, 410)
    now = unix_ms()
    relay_db.add_job(dead_id)
    # two more jobs of the dead token, not due yet: the 410 must take them
    relay_db.add_jobs([dead_id, dead_id], next_at=now + 600_000)
    relay_db.add_job(alive_id, next_at=now + 600_000)

    n = notifierd_factory()
    fake_proxy.wait_for(count=1, timeout=5)
    wait_until(lambda: relay_db.tokens() == [alive], timeout=5,
               what="token row of the 410 deleted")
    jobs = relay_db.jobs()
    assert [(j[1], j[2], j[3]) for j in jobs] == [(alive, 0, 0)], jobs
    assert fake_proxy.bodies() == [dead]

    m = wait_metrics(n, lambda m: m["notifierd_gone_total"] == 1)
    assert m["notifierd_succeeded_total"] == 0
    assert m["notifierd_retried_total"] == 0


def test_500_then_200_retries_after_the_back_off(fake_proxy, relay_db,
                                                 notifierd_factory):
    base_ms = 400
    tok = openpgp_token()
    tid = relay_db.add_token(ALICE, tok)
    fake_proxy.set_status(tok, 500, 200)
    relay_db.add_job(tid)

    n = notifierd_factory(retry_base="%dms" % base_ms, poll="200ms")
    first = fake_proxy.wait_for(count=1, timeout=5)[0]
    first_ms = mono_to_unix_ms(first.t)

    # Between the tries the job waits in the database: attempts 1, due one
    # base (+-10 %) after the failure.
    def retry_row():
        rows = relay_db.query("SELECT state, attempts, next_at FROM queue")
        return rows[0] if rows and rows[0][1] == 1 and rows[0][0] == 0 \
            else None
    state, attempts, next_at = wait_until(retry_row, timeout=base_ms / 1000,
                                          interval=0.01,
                                          what="job rescheduled after 500")
    delay = next_at - first_ms
    assert base_ms * 0.9 - 30 <= delay <= base_ms * 1.1 + 100, (
        "retry due %.0f ms after the 500, expected %d ms +-10%%"
        % (delay, base_ms))

    reqs = fake_proxy.wait_for(count=2, timeout=5)
    gap = reqs[1].t - reqs[0].t
    print("\n500 -> retry after %.0f ms (base %d ms)" % (gap * 1000, base_ms))
    assert gap >= base_ms * 0.9 / 1000 - 0.02, "retried after %.3fs" % gap
    assert [r.body for r in reqs] == [tok, tok]
    assert [r.status for r in reqs] == [500, 200]
    wait_until(lambda: queue_empty(relay_db), timeout=5, what="job deleted")
    assert relay_db.tokens() == [tok]

    m = wait_metrics(n, lambda m: m["notifierd_succeeded_total"] == 1)
    assert m["notifierd_retried_total"] >= 1
    assert m[STATUS] == 1 and m[TRANSPORT] == 0
    assert m["notifierd_sent_total"] == 2
    assert fake_proxy.count == 2


def test_deadline_drops_the_job(fake_proxy, relay_db, notifierd_factory):
    fake_proxy.default = 500
    tok = openpgp_token()
    tid = relay_db.add_token(ALICE, tok)
    created = unix_ms()
    relay_db.add_job(tid, created_at=created)

    n = notifierd_factory(retry_base="200ms", deadline="1s")
    wait_until(lambda: queue_empty(relay_db), timeout=5,
               what="job dropped after its 1 s deadline")
    reqs = fake_proxy.requests
    arrivals = [mono_to_unix_ms(r.t) - created for r in reqs]
    print("\nattempts before the drop at (ms after the mail): %s"
          % ", ".join("%.0f" % a for a in arrivals))
    assert all(r.body == tok and r.status == 500 for r in reqs)
    # retried with back-off (200, 400 ms) before giving up, and no try
    # later than the deadline
    assert 2 <= len(reqs) <= 4, len(reqs)
    assert max(arrivals) <= 1000 + 150, arrivals
    # dropping removes the job, not the token
    assert relay_db.tokens() == [tok]

    m = wait_metrics(n, lambda m: m["notifierd_dropped_total"] == 1)
    assert m["notifierd_succeeded_total"] == 0
    assert m[STATUS] == len(reqs)
    assert m["notifierd_retried_total"] == len(reqs) - 1

    warn = [line for line in n.log_text().splitlines()
            if re.search(r": warn(ing)?: ", line) and
            re.search(r"drop", line, re.I)]
    assert warn, "no warn line about the dropped job:\n" + n.log_text()
    assert leaked_secrets("\n".join(warn), {tok}) == []
    assert fake_proxy.count == len(reqs), "a try after the drop"


# ---------------------------------------------------------------------------
# A proxy that is down


def test_proxy_refusing_then_up(fake_proxy, relay_db, notifierd_factory):
    """Connection refused: the breaker opens after 5 failures, so far fewer
    attempts than jobs hit the dead port, and the jobs go out once the
    proxy listens again. --concurrency 4 < N: the breaker, not the
    concurrency limit, is what stops the wave."""
    N = 20
    fake_proxy.stop()                       # its port now refuses
    tokens = [apns_token() for _ in range(N)]
    relay_db.add_jobs(relay_db.add_tokens([(ALICE, t) for t in tokens]))

    n = notifierd_factory(retry_base="200ms", poll="200ms", concurrency=4)
    m = wait_metrics(n, lambda m: m[TRANSPORT] >= 5 and
                     m["notifierd_breaker_open"] == 1, timeout=5,
                     what="breaker open after connection refused")
    sent_while_down = m["notifierd_sent_total"]
    assert fake_proxy.count == 0

    fake_proxy.start()                      # same port
    up = time.monotonic()
    reqs = fake_proxy.wait_for(
        pred=lambda rs: set(tokens) <= {r.body for r in rs}, timeout=10,
        what="every job after the proxy came up")
    took = max(r.t for r in reqs) - up
    wait_until(lambda: queue_empty(relay_db), timeout=5, what="queue empty")
    m = wait_metrics(n, lambda m: m["notifierd_succeeded_total"] == N)
    print("\nrefused: %d requests failed before the proxy came up; all %d "
          "delivered %.2fs after it did" % (m[TRANSPORT], N, took))
    assert sorted(r.body for r in reqs) == sorted(tokens)
    # Five failures, the requests already in flight (at most 4 more), and
    # a probe or two: fewer than one attempt per job. Without the breaker
    # every job would have failed once, most of them twice or more.
    assert m[TRANSPORT] < N // 2, m[TRANSPORT]
    assert sent_while_down < N // 2, sent_while_down
    assert m["notifierd_breaker_open"] == 0


def test_breaker_paces_connects_to_a_dead_proxy(fake_proxy, relay_db,
                                                notifierd_factory):
    """The proxy accepts and closes at once (counted): after the first
    wave the breaker allows one probe per pause, 1 s then 2 s."""
    N = 40
    fake_proxy.mode = "close"
    tokens = [apns_token() for _ in range(N)]
    relay_db.add_jobs(relay_db.add_tokens([(BOB, t) for t in tokens]))

    notifierd_factory(retry_base="200ms", poll="200ms")
    first = fake_proxy.wait_connects(1, timeout=5)[0][0]
    # The first wave: every job at most once. Each job alone would retry
    # 200 ms later, and again 400 ms after that.
    wave_n = None

    def probe():
        nonlocal wave_n
        cs = fake_proxy.connects
        wave = [t for t, _ in cs if t - first < 0.8]
        late = [t for t, _ in cs if t - first >= 0.8]
        wave_n = len(wave)
        return late[0] if late else None
    probe1 = wait_until(probe, timeout=5, interval=0.01,
                        what="the breaker's first probe")
    fake_proxy.mode = "serve"
    assert wave_n <= N, "%d connects in the first 0.8 s for %d jobs" % (
        wave_n, N)

    reqs = fake_proxy.wait_for(
        pred=lambda rs: set(tokens) <= {r.body for r in rs}, timeout=10,
        what="every job once the proxy answers")
    wait_until(lambda: queue_empty(relay_db), timeout=5, what="queue empty")
    cs = fake_proxy.connects
    closed = [t for t, mode in cs if mode == "close"]
    served = [t for t, mode in cs if mode == "serve"]
    print("\nbreaker: %d connects in the first wave, probes at +%.2fs "
          "(refused) and +%.2fs (answered); %d requests in all for %d jobs"
          % (wave_n, probe1 - first, served[0] - first, len(reqs), N))
    # while the proxy was dead: the wave and exactly one probe
    assert len(closed) == wave_n + 1, (len(closed), wave_n)
    assert probe1 - closed[wave_n - 1] >= 0.8, "probe right after the wave"
    # the pause doubled after the failed probe: 2 s
    assert served[0] - probe1 >= 1.8, served[0] - probe1
    assert served[0] - probe1 <= 3.5, served[0] - probe1
    assert len(reqs) == N


def test_breaker_probe_with_nothing_due_does_not_stall(fake_proxy, relay_db,
                                                       notifierd_factory):
    """When the pause ends and no job is due, the next due job is still
    sent (the probe is not used up by an empty claim)."""
    fake_proxy.stop()
    toks = [apns_token() for _ in range(6)]
    ids = relay_db.add_tokens([(ALICE, t) for t in toks])
    relay_db.add_jobs(ids[:5])
    # due after the 1 s pause ended, before the five retry (1.8-2.2 s)
    relay_db.add_job(ids[5], next_at=unix_ms() + 1500)

    n = notifierd_factory(retry_base="2s", poll="200ms")
    wait_metrics(n, lambda m: m[TRANSPORT] >= 5 and
                 m["notifierd_breaker_open"] == 1, timeout=5,
                 what="breaker open")
    fake_proxy.start()
    reqs = fake_proxy.wait_for(
        pred=lambda rs: set(toks) <= {r.body for r in rs}, timeout=8,
        what="all six jobs after the proxy came up")
    assert sorted(r.body for r in reqs) == sorted(toks)
    wait_until(lambda: queue_empty(relay_db), timeout=5, what="queue empty")


# ---------------------------------------------------------------------------
# Wake-ups and polling


def test_wake_datagram_sends_at_once(fake_proxy, relay_db, notifierd_factory):
    canary, tok = apns_token(), openpgp_token()
    cid = relay_db.add_token(BOB, canary)
    relay_db.add_job(cid)
    n = notifierd_factory(poll="30s")
    # The canary (sent at start) shows the loop is up; after its outcome
    # notifierd sleeps until the 30 s poll.
    fake_proxy.wait_for(count=1, timeout=5)
    wait_until(lambda: queue_empty(relay_db), timeout=5, what="canary done")

    tid = relay_db.add_token(ALICE, tok)
    relay_db.add_job(tid)
    assert holds_for(lambda: fake_proxy.count == 1, 0.5), (
        "sent without a wake-up although --poll is 30 s")
    t0 = time.monotonic()
    n.wake()
    req = fake_proxy.wait_for(count=2, timeout=1.0)[1]
    print("\nwake-up -> proxy: %.1f ms" % ((req.t - t0) * 1000))
    assert req.body == tok
    assert req.t - t0 < 1.0
    wait_until(lambda: queue_empty(relay_db), timeout=5, what="job deleted")


def test_poll_finds_jobs_without_a_wake_up(fake_proxy, relay_db,
                                           notifierd_factory):
    notifierd_factory(poll="300ms", wake_socket=None)
    tok = openpgp_token()
    relay_db.add_job(relay_db.add_token(ALICE, tok))
    t0 = time.monotonic()
    req = fake_proxy.wait_for(count=1, timeout=3)[0]
    print("\npoll 300 ms -> proxy after %.0f ms" % ((req.t - t0) * 1000))
    assert req.body == tok
    assert req.t - t0 < 1.0
    wait_until(lambda: queue_empty(relay_db), timeout=5, what="job deleted")


# ---------------------------------------------------------------------------
# With Dovecot and metadata-dictd


@pytest.mark.dictd_bind_notify(False)
def test_lmtp_delivery_reaches_the_proxy(fake_proxy, dovecot, dictd,
                                         relay_db, notifierd_factory):
    a1, a2 = openpgp_token(), apns_token()
    set_token(dovecot, ALICE, a1)
    set_token(dovecot, ALICE, a2)
    # A 30 s poll: only metadata-dictd's wake-up can make it fast.
    notifierd_factory(wake_socket=dictd.notify_path, poll="30s")
    assert fake_proxy.count == 0

    timing = {}
    assert dovecot.lmtp_deliver(BOB, ALICE, timing=timing) == {}
    reqs = fake_proxy.wait_for(
        pred=lambda rs: {a1, a2} <= {r.body for r in rs}, timeout=5,
        what="both of alice's tokens at the proxy")
    last = max(min(r.t for r in reqs if r.body == tok) for tok in (a1, a2))
    latency = last - timing["done"]
    print("\nLMTP delivery -> proxy: %.1f ms after the LMTP reply "
          "(%.1f ms after MAIL FROM)" % (latency * 1000,
                                         (last - timing["start"]) * 1000))
    assert latency < 1.0, "tokens reached the proxy %.3fs after LMTP" % (
        latency)
    wait_until(lambda: queue_empty(relay_db), timeout=5, what="queue empty")
    assert sorted(r.body for r in fake_proxy.requests) == sorted([a1, a2])
    assert relay_db.tokens() == sorted([a1, a2])


def test_coalescing_one_row_per_token(fake_proxy, dovecot, dictd, relay_db,
                                      notifierd_factory):
    a1, a2 = openpgp_token(), apns_token()
    set_token(dovecot, ALICE, a1)
    set_token(dovecot, ALICE, a2)
    # notifierd not running: two mails, one waiting job per token
    assert dovecot.lmtp_deliver(BOB, ALICE) == {}
    assert dovecot.lmtp_deliver(BOB, ALICE) == {}
    jobs = relay_db.jobs()
    assert sorted((j[1], j[2], j[3]) for j in jobs) == sorted(
        [(a1, 0, 0), (a2, 0, 0)]), jobs

    # The proxy fails them once: waiting for a retry, they absorb nothing.
    fake_proxy.default = 500
    n = notifierd_factory(poll="30s", retry_base="30s")
    wait_until(lambda: sorted((j[2], j[3]) for j in relay_db.jobs()) ==
               [(0, 1), (0, 1)], timeout=5, what="both jobs tried once")
    assert dovecot.lmtp_deliver(BOB, ALICE) == {}
    assert dovecot.lmtp_deliver(BOB, ALICE) == {}
    jobs = relay_db.jobs()
    assert sorted((j[1], j[3]) for j in jobs) == sorted(
        [(a1, 0), (a1, 1), (a2, 0), (a2, 1)]), jobs

    # The two new ones go out on a wake-up; the retries wait for 30 s.
    fake_proxy.default = 200
    n.wake()
    wait_until(lambda: relay_db.count("queue", "attempts = 0") == 0,
               timeout=5, what="the new jobs delivered")
    assert sorted((r.body, r.status) for r in fake_proxy.requests) == sorted(
        [(a1, 500), (a2, 500), (a1, 200), (a2, 200)])
    assert sorted((j[1], j[3]) for j in relay_db.jobs()) == sorted(
        [(a1, 1), (a2, 1)])


# ---------------------------------------------------------------------------
# Crashes and stopping


def test_kill_9_mid_queue_loses_nothing(fake_proxy, relay_db,
                                        notifierd_factory):
    N = 10_000
    tokens = ["openpgp:crash-%05d-" % i +
              base64.b64encode(os.urandom(30)).decode() for i in range(N)]
    relay_db.add_jobs(relay_db.add_tokens(
        [("user%d@example.org" % i, t) for i, t in enumerate(tokens)]))

    n = notifierd_factory(log_level="info", start=False)
    n.secrets.update(tokens)            # checked in teardown, not global
    t0 = time.monotonic()
    n.start()
    fake_proxy.wait_for(count=4000, timeout=30)
    n.kill9()
    at_kill = fake_proxy.count
    states = dict(relay_db.query(
        "SELECT state, count(*) FROM queue GROUP BY state"))
    left = sum(states.values())
    assert left > 0, "everything was done before the kill: nothing tested"

    n.start()
    wait_until(lambda: queue_empty(relay_db), timeout=40, interval=0.1,
               what="queue drained after the restart")
    took = time.monotonic() - t0
    bodies = fake_proxy.bodies()
    missing = set(tokens) - set(bodies)
    dups = len(bodies) - len(set(bodies))
    print("\nkill -9 after %d of %d requests; %d jobs left (%d in flight); "
          "%d requests in all, %d duplicates; %.1fs"
          % (at_kill, N, left, states.get(1, 0), len(bodies), dups, took))
    assert not missing, "%d tokens never reached the proxy" % len(missing)
    assert set(bodies) == set(tokens)
    # at least once, not "everything again": at most what was in flight
    # or answered-but-unrecorded (--concurrency 256 plus a claim batch)
    assert dups <= 256 + 512, dups
    assert relay_db.count("tokens") == N


def test_in_flight_rows_of_a_crash_are_retried(fake_proxy, relay_db,
                                               notifierd_factory):
    toks = [apns_token() for _ in range(3)]
    ids = relay_db.add_tokens([(ALICE, t) for t in toks])
    relay_db.add_jobs(ids, state=1)             # left by a killed notifierd
    notifierd_factory()
    reqs = fake_proxy.wait_for(count=3, timeout=5)
    assert sorted(r.body for r in reqs) == sorted(toks)
    wait_until(lambda: queue_empty(relay_db), timeout=5, what="queue empty")


def test_sigterm_waits_for_requests_in_flight(fake_proxy, relay_db,
                                              notifierd_factory):
    fake_proxy.delay = 0.5
    now_toks = [apns_token() for _ in range(5)]
    soon_toks = [apns_token() for _ in range(5)]
    ids = relay_db.add_tokens([(ALICE, t) for t in now_toks + soon_toks])
    relay_db.add_jobs(ids[:5])

    n = notifierd_factory(grace="3s")
    fake_proxy.wait_for(count=1, timeout=5)
    # claimed together, marked in flight in the database
    assert relay_db.count("queue", "state = 1") == 5, relay_db.jobs()
    # due while notifierd is stopping: must not be claimed any more
    relay_db.add_jobs(ids[5:], next_at=unix_ms() + 300)
    t0 = time.monotonic()
    n.stop()                                # SIGTERM; exit 0 required
    took = time.monotonic() - t0
    print("\nSIGTERM with 5 requests in flight (answers after 0.5 s, "
          "grace 3 s): exit 0 after %.2fs" % took)
    assert took < 3.0, took
    # the answers came within the grace period and were recorded
    jobs = relay_db.jobs()
    assert sorted(j[1] for j in jobs) == sorted(soon_toks), jobs
    assert all(j[2] == 0 and j[3] == 0 for j in jobs), jobs
    assert sorted(fake_proxy.bodies()) == sorted(now_toks)
    assert all(r.status == 200 for r in fake_proxy.requests)


def test_sigterm_after_grace_puts_jobs_back(fake_proxy, relay_db,
                                            notifierd_factory):
    fake_proxy.delay = 1.0
    toks = [openpgp_token() for _ in range(3)]
    relay_db.add_jobs(relay_db.add_tokens([(ALICE, t) for t in toks]))

    n = notifierd_factory(grace="300ms")
    fake_proxy.wait_for(count=1, timeout=5)
    assert relay_db.count("queue", "state = 1") == 3, relay_db.jobs()
    t0 = time.monotonic()
    n.stop()                                # SIGTERM; exit 0 required
    took = time.monotonic() - t0
    print("\nSIGTERM, answers after 1 s, grace 300 ms: exit 0 after %.2fs"
          % took)
    assert 0.25 <= took < 0.9, took
    jobs = relay_db.jobs()
    assert sorted(j[1] for j in jobs) == sorted(toks)
    assert all(j[2] == 0 for j in jobs), "not put back to waiting: %r" % [
        (j[0], j[2], j[3]) for j in jobs]

    fake_proxy.delay = 0
    n.start()                               # and they go out again
    wait_until(lambda: queue_empty(relay_db), timeout=5, what="queue empty")
    answered = [r.body for r in fake_proxy.requests if r.t > t0 + took]
    assert sorted(answered) == sorted(toks)


def test_due_jobs_go_out_in_parallel(fake_proxy, relay_db,
                                     notifierd_factory):
    """--concurrency: five due jobs and a proxy answering after 0.5 s;
    the five requests are in flight together, not one and then four."""
    fake_proxy.delay = 0.5
    toks = [apns_token() for _ in range(5)]
    relay_db.add_jobs(relay_db.add_tokens([(ALICE, t) for t in toks]))
    notifierd_factory(concurrency=8)
    reqs = fake_proxy.wait_for(count=5, timeout=5)
    spread = reqs[-1].t - reqs[0].t
    print("\n5 jobs, proxy answering after 0.5 s: requests spread over "
          "%.2fs" % spread)
    wait_until(lambda: queue_empty(relay_db), timeout=5, what="queue empty")
    assert spread < 0.3, "requests arrived over %.2fs" % spread


# ---------------------------------------------------------------------------
# Logs and metrics


def test_no_token_in_the_log_at_debug_level(fake_proxy, relay_db,
                                            notifierd_factory):
    ok, gone, flaky, doomed = (openpgp_token(), apns_token(),
                               openpgp_token(), openpgp_token(8000))
    refused = openpgp_token()
    fake_proxy.set_status(gone, 410)
    fake_proxy.set_status(flaky, 500, 503, 200)
    fake_proxy.set_status(doomed, 500)
    ids = relay_db.add_tokens([(ALICE, ok), (ALICE, gone), (BOB, flaky),
                               (BOB, doomed)])
    relay_db.add_jobs(ids)
    n = notifierd_factory(log_level="debug", deadline="1s")

    # a second notifierd (own db and wake socket) against a closed port
    closed = FakeProxy().start()
    closed_url = closed.url
    closed.stop()
    other_db = RelayDb(os.path.join(n.workdir, "other.db"))
    other_db.add_job(other_db.add_token(ALICE, refused))
    m = notifierd_factory(proxy_url=closed_url, db_path=other_db.path,
                          wake_socket=os.path.join(n.workdir, "wake2.sock"),
                          log_level="debug")
    wait_until(lambda: relay_db.count("queue") == 0, timeout=5,
               what="200, 410, retries and the drop done")
    wait_until(lambda: m.metric(TRANSPORT) >= 2, timeout=5,
               what="transport failures")
    m.stop()
    n.stop()
    tokens = [ok, gone, flaky, doomed, refused]
    log = n.log_text() + m.log_text()
    assert re.search(r": debug: ", log), "no debug line at --log-level debug"
    # what the log carries instead: the start of the token's SHA-256
    digest = hashlib.sha256(ok.encode()).hexdigest()[:8]
    assert "token=" + digest in log, "no job line for the delivered token"
    assert leaked_secrets(log, tokens) == []


def test_metrics_queue_gauges(fake_proxy, relay_db, notifierd_factory):
    toks = [apns_token() for _ in range(4)]
    ids = relay_db.add_tokens([(ALICE, t) for t in toks])
    now = unix_ms()
    relay_db.add_jobs(ids[:3], created_at=now - 5000, next_at=now + 600_000)

    n = notifierd_factory()
    status, headers, text = http_get(n.metrics_url)
    assert status == 200
    ctype = headers.get("Content-Type", "")
    assert ctype.startswith("application/openmetrics-text"), ctype
    assert text.rstrip("\n").endswith("# EOF")
    m = parse_openmetrics(text)
    assert m["notifierd_queue_length"] == 3
    assert 5 <= m["notifierd_oldest_job_age_seconds"] <= 8
    assert m["notifierd_in_flight"] == 0
    assert m["notifierd_breaker_open"] == 0
    for name in ("notifierd_sent_total", "notifierd_succeeded_total",
                 "notifierd_gone_total", "notifierd_retried_total",
                 "notifierd_dropped_total", TRANSPORT, STATUS):
        assert m[name] == 0, name

    relay_db.add_job(ids[3])
    n.wake()
    fake_proxy.wait_for(count=1, timeout=5)
    m = wait_metrics(n, lambda m: m["notifierd_succeeded_total"] == 1)
    assert m["notifierd_request_duration_seconds_count"] == 1
    assert m['notifierd_request_duration_seconds_bucket{le="+Inf"}'] == 1
    assert m["notifierd_in_flight"] == 0
