"""Several proxyd instances sharing their state through Redis (issue 15,
proxyd/state/state_redis.h, docs/scaling.md).

Each test starts a real redis-server (and redis-sentinel, haproxy where
needed) on loopback, several proxyd with --redis, and one fake APNs that
all of them push to; assertions are on what the fake APNs received.
Times are short: --debounce 2s unless a test says otherwise.
"""
import secrets
import threading
import time

import pytest

from harness import register_secret, wait_until

WINDOW = "2s"
# Bursts of 50 requests through HAProxy must fit in one window even on a
# loaded machine.
BURST_WINDOW = "4s"


def apns_token():
    t = secrets.token_hex(32)
    register_secret(t)
    return t


def pushes(fake, tok):
    return [r for r in list(fake.requests) if r.token == tok]


def two_pushes(send, fake):
    """A new token, sent by send(tok) (its requests all within one
    window), gets exactly a leading and a trailing push: a duplicate
    (two instances sending the trailing push) would come with the
    second, at the window's end. Returns the pushes."""
    tok = apns_token()
    send(tok)
    fake.wait_for(pred=lambda _r: len(pushes(fake, tok)) >= 2, timeout=15)
    time.sleep(1.5)
    got = pushes(fake, tok)
    assert len(got) == 2, got
    return got


def instances(proxyd_factory, n, redis_url, *extra, **kw):
    out = []
    for i in range(n):
        args = ["--redis", redis_url] + list(extra)
        out.append(proxyd_factory(name="proxyd%d" % i,
                                  debounce=kw.get("debounce", WINDOW),
                                  extra_args=args))
    for p in out:
        wait_until(lambda p=p: p.metric("redis_up") == 1,
                   timeout=10, what="%s connected to redis" % p.name)
    return out


def test_debounce_shared_across_instances(proxyd_factory, redis_factory,
                                          fake_apns):
    """50 /notify for one token within one window, spread over three
    instances: one leading and one trailing push, exactly."""
    redis = redis_factory()
    px = instances(proxyd_factory, 3, redis.url, debounce=BURST_WINDOW)

    def burst(tok):
        t0 = time.time()
        for i in range(50):
            status, body = px[i % 3].notify(tok)
            assert status == 200, (i, status, body)
        assert time.time() - t0 < 3.5, "the burst must fit in one window"
    got = two_pushes(burst, fake_apns)
    # The trailing push comes a window after the leading one.
    assert got[1].t - got[0].t >= 3.9, [r.t for r in got]
    # No key names the token; the window's value holds no clear token.
    tok = got[0].token
    keys = redis.cli("KEYS", "*")
    assert not any(tok in k for k in keys), keys


def test_trailing_push_survives_the_instance_that_owed_it(
        proxyd_factory, redis_factory, fake_apns):
    """The instance that owes the trailing push is killed (SIGKILL)
    mid-window: another instance sends it once the window has ended
    (two pushes, at most one extra)."""
    redis = redis_factory()
    px = instances(proxyd_factory, 3, redis.url)
    tok = apns_token()
    assert px[0].notify(tok)[0] == 200      # leading, opens the window
    assert px[1].notify(tok)[0] == 200      # px1 owes the trailing push
    for _ in range(10):
        assert px[2].notify(tok)[0] == 200  # covered by px1's
    px[1].kill()
    fake_apns.wait_for(pred=lambda _r: len(pushes(fake_apns, tok)) >= 2,
                       timeout=15)
    time.sleep(2)
    got = pushes(fake_apns, tok)
    assert 2 <= len(got) <= 3, got
    assert sum(p.metric("redis_takeovers_total")
               for p in (px[0], px[2])) >= 1


@pytest.mark.not_again_under_san
def test_rate_limit_shared(proxyd_factory, redis_factory, fake_apns):
    """--rate-limit apns=20/s on each of three instances: together they
    push at 20/s (within 10 %), not 60/s."""
    redis = redis_factory()
    px = instances(proxyd_factory, 3, redis.url, "--rate-limit",
                   "apns=20/s", "--rate-limit-wait", "5s",
                   "--rate-limit-client-queue", "1000")
    toks = [apns_token() for _ in range(150)]
    errors = []

    def send(p, ts):
        for t in ts:
            try:
                st, _ = p.notify(t, keep_alive=False)
                if st != 200:
                    errors.append(st)
            except Exception as e:   # noqa: BLE001 - reported below
                errors.append(repr(e))
    threads = [threading.Thread(target=send, args=(px[i], toks[i::3]))
               for i in range(3)]
    t0 = time.time()
    for t in threads:
        t.start()
    fake_apns.wait_for(pred=lambda _r: len(fake_apns.requests) >= 120,
                       timeout=30)
    for t in threads:
        t.join(30)
    assert not errors, errors[:5]
    times = sorted(r.t for r in fake_apns.requests)
    # Past the first second's burst: the steady rate.
    steady = [t for t in times if t >= times[0] + 1.5]
    rate = (len(steady) - 1) / (steady[-1] - steady[0])
    assert 18 <= rate <= 22, (rate, len(times), time.time() - t0)


def test_redis_down_fails_open_and_comes_back(proxyd_factory, redis_factory,
                                              fake_apns):
    """Redis killed: pushes keep flowing (local debounce), /health says
    degraded; Redis back: shared debounce again, without a restart."""
    redis = redis_factory()
    px = instances(proxyd_factory, 2, redis.url)
    redis.kill()
    wait_until(lambda: px[0].metric("redis_up") == 0, timeout=5)
    tok = apns_token()
    t0 = time.time()
    assert px[0].notify(tok)[0] == 200
    assert time.time() - t0 < 1.0
    fake_apns.wait_for(pred=lambda _r: len(pushes(fake_apns, tok)) >= 1,
                       timeout=5)
    status, body = px[0].request("GET", "/health")
    assert status == 200 and body.startswith(b"degraded: redis"), body
    assert "redis unreachable" in px[0].log_text()
    redis.start()
    wait_until(lambda: all(p.metric("redis_up") == 1 for p in px),
               timeout=10)
    status, body = px[0].request("GET", "/health")
    assert (status, body) == (200, b"ok\n"), body
    two_pushes(lambda tok: [px[i % 2].notify(tok) for i in range(10)],
               fake_apns)


def heartbeat_times(fake):
    """{token: [t, ...]} of the heartbeats (background pushes) seen."""
    out = {}
    for r in list(fake.requests):
        if r.headers.get("apns-push-type") == "background":
            out.setdefault(r.token, []).append(r.t)
    return out


@pytest.mark.not_again_under_san
def test_heartbeats_once_per_interval_and_taken_over(
        proxyd_factory, redis_factory, fake_apns):
    """1,000 registrations made through three instances are heartbeated
    once per --interval by exactly one of them; once an instance is
    killed, the others heartbeat its share within one more interval."""
    interval = 2.5
    redis = redis_factory()
    px = instances(proxyd_factory, 3, redis.url, "--interval", "2500ms",
                   "--register-rate", "100000/s")
    toks = [apns_token() for _ in range(1000)]
    for i, t in enumerate(toks):
        status, body = px[i % 3].register(t)
        assert status == 200, (i, status, body)
    t_reg = time.time()
    assert redis.cli("ZCARD", "proxyd:hb") == 1000
    time.sleep(3 * interval + 1)
    seen = heartbeat_times(fake_apns)
    assert set(seen) == set(toks), len(seen)
    for t in toks:
        ts = seen[t]
        assert 2 <= len(ts) <= 4, (len(ts), [x - t_reg for x in ts])
        gaps = [b - a for a, b in zip(ts, ts[1:])]
        # +-10 % jitter, and a loaded machine's delays; two instances
        # sending the same registration would show a gap near 0.
        assert all(0.5 * interval <= g <= 1.5 * interval
                   for g in gaps), gaps
    by = [p.metric("heartbeat_notifications_total") for p in px]
    assert all(n > 0 for n in by), by     # each instance took a share
    # Each heartbeat the fake saw was counted once, by one instance
    # (some may be on their way: counted, not yet seen).
    sent = sum(by)
    assert 0 <= sent - sum(len(v) for v in seen.values()) <= 300, by

    px[1].kill()
    t_kill = time.time()
    time.sleep(2.5 * interval)
    seen = heartbeat_times(fake_apns)
    late = [t for t in toks
            if not any(x > t_kill + 0.2 for x in seen[t])]
    assert not late, "%d tokens not heartbeated since the kill" % len(late)
    for t in toks:
        after = [x for x in seen[t] if x > t_kill - interval]
        gaps = [b - a for a, b in zip(after, after[1:])]
        assert all(g >= 0.5 * interval for g in gaps), gaps


def test_sentinel_failover_followed(proxyd_factory, redis_factory,
                                    sentinel_factory, fake_apns):
    """proxyd asks Sentinel for the master; the master is killed, a
    replica promoted: proxyd follows within seconds, and every /notify
    sent meanwhile got its push."""
    master = redis_factory(name="master")
    replica = redis_factory(name="replica", replicaof=master)
    replica.wait_synced()
    sentinels = [sentinel_factory(master, name="sentinel%d" % i)
                 for i in range(3)]
    for s in sentinels:
        s.wait_sees(replicas=1, sentinels=2)
    px = []
    for i in range(2):
        px.append(proxyd_factory(
            name="proxyd%d" % i, debounce="1s",
            extra_args=["--redis-sentinel",
                        ",".join(s.address for s in sentinels),
                        "--redis-master", "mymaster"]))
    for p in px:
        wait_until(lambda p=p: p.metric("redis_up") == 1, timeout=10)
    master.kill()
    t_kill = time.time()
    toks = []
    # Requests all through the failover: each gets 200 and its push.
    while time.time() - t_kill < 12:
        tok = apns_token()
        toks.append(tok)
        assert px[len(toks) % 2].notify(tok)[0] == 200
        time.sleep(0.1)
        if (len(toks) > 20 and all(p.metric("redis_up") == 1 for p in px)
                and sentinels[0].master_addr() == replica.addr):
            break
    sentinels[0].wait_master(lambda a: a == replica.addr, timeout=20)
    for p in px:
        wait_until(lambda p=p: p.metric("redis_up") == 1 and
                   p.metric("redis_master_changes_total") >= 1,
                   timeout=10, what="%s following the failover" % p.name)
    followed = time.time() - t_kill
    fake_apns.wait_for(pred=lambda _r: all(pushes(fake_apns, t)
                                           for t in toks), timeout=15)
    assert replica.role() == "master"
    # The new master holds the shared state now.
    two_pushes(lambda tok: [px[i % 2].notify(tok) for i in range(6)],
               fake_apns)
    assert followed < 20, followed


def test_webpush_origin_pause_shared(proxyd_factory, redis_factory,
                                     webpush_factory, vapid_key):
    """A push service answers one instance 429 with Retry-After: the
    other instance pauses that origin too (within a poll, 0.5 s), without
    sending to it; another origin is not paused."""
    redis = redis_factory()
    wp, other = webpush_factory(), webpush_factory()
    args = ["--redis", redis.url, "--vapid-key-path", vapid_key,
            "--vapid-subject", "mailto:ops@relay.example",
            "--webpush-allow-private"]
    px = [proxyd_factory(name="proxyd%d" % i, extra_args=args)
          for i in range(2)]
    for p in px:
        wait_until(lambda p=p: p.metric("redis_up") == 1, timeout=10)
    a, b, c = wp.subscribe(), wp.subscribe(), other.subscribe()
    for s in (a, b, c):
        register_secret(s.token)
    wp.set_replies(a, (429, {"Retry-After": "4"}), 201)
    assert px[0].notify(a.token)[0] == 500
    t0 = time.monotonic()
    time.sleep(1.2)
    assert px[1].notify(b.token)[0] == 500      # paused there too
    assert len(wp.received()) == 1
    assert px[1].notify(c.token)[0] == 200      # another origin
    wait_until(lambda: time.monotonic() - t0 > 4.2, timeout=8)
    assert px[1].notify(b.token)[0] == 200
    assert len(wp.received()) == 2


# ---- behind HAProxy (deploy/haproxy/haproxy.cfg) ----------------------------


def cluster(proxyd_factory, haproxy_factory, redis, n=3):
    ps = [proxyd_factory(name="proxyd%d" % i, debounce=BURST_WINDOW,
                         extra_args=["--redis", redis.url,
                                     "--trusted-proxy", "127.0.0.1"])
          for i in range(n)]
    for p in ps:
        wait_until(lambda p=p: p.metric("redis_up") == 1, timeout=10)
    return ps, haproxy_factory(ps)


@pytest.mark.not_again_under_san
def test_balanced_burst_two_pushes(proxyd_factory, haproxy_factory,
                                   redis_factory, fake_apns):
    """50 /notify for one token through the balancer (round-robin over
    three instances) within one window: exactly two pushes."""
    ps, h = cluster(proxyd_factory, haproxy_factory, redis_factory())

    def burst(tok):
        t0 = time.time()
        for i in range(50):
            assert h.notify(tok) == (200, b""), i
        assert time.time() - t0 < 3.5
    two_pushes(burst, fake_apns)
    # Every instance took part (its counters follow twice a second).
    wait_until(lambda: all(p.metric("redis_commands_total") > 0
                           for p in ps), timeout=5)


def test_balanced_burst_owner_killed(proxyd_factory, haproxy_factory,
                                     redis_factory, fake_apns):
    """The same burst, and the instance that owes the trailing push is
    killed with SIGKILL mid-burst: the balancer keeps answering 200, the
    trailing push still comes, from a surviving instance (two pushes, at
    most one extra)."""
    redis = redis_factory()
    ps, h = cluster(proxyd_factory, haproxy_factory, redis)
    tok = apns_token()
    statuses = []
    for i in range(25):
        statuses.append(h.notify(tok)[0])
    (key,) = redis.cli("KEYS", "proxyd:w:*")
    owner = redis.cli("HGET", key, "o")
    assert owner, "a trailing push is owed"
    owner = owner.decode() if isinstance(owner, bytes) else owner
    (victim,) = [p for p in ps
                 if "redis shared state: instance %s" % owner
                 in p.log_text()]
    victim.kill()
    for i in range(25):
        statuses.append(h.notify(tok)[0])
    assert statuses == [200] * 50, statuses
    fake_apns.wait_for(pred=lambda _r: len(pushes(fake_apns, tok)) >= 2,
                       timeout=15)
    time.sleep(2)
    assert 2 <= len(pushes(fake_apns, tok)) <= 3
    survivors = [p for p in ps if p is not victim]
    assert sum(p.metric("redis_takeovers_total") for p in survivors) >= 1


def test_password_from_a_file(proxyd_factory, redis_factory, fake_apns,
                              tmpdir):
    """requirepass: the password comes from --redis-password-file (never
    the command line); a wrong one keeps proxyd serving alone, /health
    says why."""
    import os
    redis = redis_factory(password="s3cret-pw")
    good = os.path.join(tmpdir, "redis-pw")
    with open(good, "w") as f:
        f.write("s3cret-pw\n")
    bad = os.path.join(tmpdir, "redis-pw-bad")
    with open(bad, "w") as f:
        f.write("wrong\n")
    url = "redis://127.0.0.1:%d/0" % redis.port
    p = proxyd_factory(name="good", extra_args=[
        "--redis", url, "--redis-password-file", good])
    wait_until(lambda: p.metric("redis_up") == 1, timeout=10)
    q = proxyd_factory(name="bad", extra_args=[
        "--redis", url, "--redis-password-file", bad])
    time.sleep(1.5)
    assert q.metric("redis_up") == 0
    status, body = q.request("GET", "/health")
    assert status == 200 and b"degraded: redis unreachable" in body, body
    assert b"handshake" in body, body
    assert "s3cret-pw" not in p.log_text() + q.log_text()
    tok = apns_token()
    assert q.notify(tok)[0] == 200          # serving alone


def test_a_stalled_redis_never_holds_a_request(proxyd_factory,
                                               redis_factory, fake_apns):
    """Redis stops answering (SIGSTOP): every /notify is answered within
    --redis-timeout plus the push, the connection is dropped for the
    timeout, and sharing resumes once Redis answers again (SIGCONT)."""
    import os
    import signal
    redis = redis_factory()
    (p,) = instances(proxyd_factory, 1, redis.url, "--redis-timeout",
                     "200ms")
    os.kill(redis.proc.pid, signal.SIGSTOP)
    try:
        worst = 0.0
        for _ in range(5):
            tok = apns_token()
            t0 = time.time()
            assert p.notify(tok)[0] == 200
            worst = max(worst, time.time() - t0)
        assert worst < 0.6, worst
        wait_until(lambda: p.metric("redis_timeouts_total") >= 1, timeout=5)
        assert p.metric("redis_up") == 0
    finally:
        os.kill(redis.proc.pid, signal.SIGCONT)
    wait_until(lambda: p.metric("redis_up") == 1, timeout=10)


def test_schedule_seeded_again_when_redis_comes_back_empty(
        proxyd_factory, redis_factory, fake_apns):
    """Redis restarted without its data: each instance writes the
    registrations of its own --db back into the shared schedule, and
    they are heartbeated again, once each."""
    redis = redis_factory()
    px = instances(proxyd_factory, 2, redis.url, "--interval", "3s",
                   "--register-rate", "100000/s")
    toks = [apns_token() for _ in range(100)]
    for i, t in enumerate(toks):
        assert px[i % 2].register(t)[0] == 200
    assert redis.cli("ZCARD", "proxyd:hb") == 100
    redis.kill()
    redis.start()                       # empty: no persistence
    assert redis.cli("ZCARD", "proxyd:hb") == 0
    wait_until(lambda: redis.cli("ZCARD", "proxyd:hb") == 100, timeout=10,
               what="the schedule seeded again")
    assert sum(p.metric("redis_seeded_total") for p in px) == 100
    t_back = time.time()
    time.sleep(3 * 1.2 + 1)
    seen = heartbeat_times(fake_apns)
    for t in toks:
        after = [x for x in seen.get(t, []) if x > t_back]
        assert len(after) == 1, (t[:8], [x - t_back for x in after])
