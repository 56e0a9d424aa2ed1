"""Several proxyd behind HAProxy (issue 15), with the configuration we
ship (deploy/haproxy/haproxy.cfg, rendered by redis_harness.py: only
ports, paths and servers differ), in embedded mode: each instance keeps
its own state, no Redis yet.

- /notify over TLS through the balancer, HTTP/1.1 and HTTP/2 (ALPN),
  reaches the fake APNs as the same visible push as without it; the
  edge answers only /notify and /register.
- Requests are spread round-robin over three instances (each one's
  direct_notifications_total).
- Every proxyd trusts HAProxy (--trusted-proxy 127.0.0.1) and counts each
  request against the client HAProxy names in X-Forwarded-For: per-client
  --register-rate buckets by the client's own loopback address, whatever
  X-Forwarded-For the client sent itself. A recording backend shows the
  header proxyd gets: exactly one, the client's address, over kept-alive
  HTTP/1.1 connections.
- A proxyd killed with SIGKILL leaves the rotation after its failed
  checks (GET /health, inter 500ms, fall 2) while every request keeps
  getting 200 (retried on another instance), and comes back after a
  restart (rise 1).
- A proxyd stopped with SIGTERM is drained: its /health says 503, the
  push it holds still gets its 200, and the requests it refuses with 503
  "shutting down" before HAProxy noticed go to another instance.

Each test takes 1-3 s.
"""
import http.server
import signal
import threading
import time

import pytest

from harness import http_get, wait_until
from test_proxyd import (APNS_K1, BY_NAME, assert_visible_push,
                         random_apns_token)

import tls_client

SANDBOX_K2 = BY_NAME["core_apns_sandbox_k2"]


def start_cluster(proxyd_factory, haproxy_factory, n=3, extra_args=(),
                  **options):
    """n proxyd (proxyd1..n) trusting HAProxy, and HAProxy in front with
    the shipped check (GET /health), every server UP."""
    ps = [proxyd_factory(name="proxyd%d" % (i + 1),
                         extra_args=["--trusted-proxy", "127.0.0.1"]
                         + list(extra_args), **options)
          for i in range(n)]
    h = haproxy_factory(ps)
    return ps, h


def pushes(ps):
    return [p.metric("direct_notifications_total") for p in ps]


def test_notify_through_the_balancer_reaches_apns(proxyd_factory,
                                                  haproxy_factory, fake_apns,
                                                  apns_pki):
    ps, h = start_cluster(proxyd_factory, haproxy_factory)
    assert h.notify(APNS_K1["input"]) == (200, b"")
    assert len(fake_apns.requests) == 1, fake_apns.requests
    assert_visible_push(fake_apns.requests[0], APNS_K1["expected"], apns_pki)

    # HTTP/2 to HAProxy (as libcurl offers it), HTTP/1.1 to proxyd.
    r = tls_client.request(h.url + "/notify", "POST", body=SANDBOX_K2[
        "input"], ca_file=apns_pki.ca_cert, http="2")
    assert (r.status, r.alpn, r.body) == (200, "h2", b""), r
    assert len(fake_apns.requests) == 2, fake_apns.requests
    assert_visible_push(fake_apns.requests[1],
                        SANDBOX_K2["expected"].split(":", 1)[1], apns_pki)
    assert sum(pushes(ps)) == 2

    # The edge answers the API only: the probes and / stay inside.
    for path in ("/", "/health", "/ready", "/metrics"):
        assert h.request("GET", path)[0] == 404, path
    assert h.request("POST", "/register", "{}")[0] == 400

    # HAProxy's own page and Prometheus metrics, on loopback.
    stats = "http://127.0.0.1:%d" % h.stats_port
    assert http_get(stats + "/stats")[0] == 200
    text = http_get(stats + "/metrics")[2]
    for name in ("proxyd1", "proxyd2", "proxyd3"):
        assert ('haproxy_server_status{proxy="proxyd",server="%s",'
                'state="UP"} 1' % name) in text, name


def test_requests_are_spread_round_robin(proxyd_factory, haproxy_factory,
                                         fake_apns):
    ps, h = start_cluster(proxyd_factory, haproxy_factory)
    for _ in range(30):
        assert h.notify(random_apns_token()) == (200, b"")
    got = pushes(ps)
    assert sum(got) == 30 and len(fake_apns.requests) == 30
    # HAProxy balances each request, also on one kept-alive connection.
    assert max(got) - min(got) <= 1, got
    assert h.server_sessions() == {"proxyd%d" % (i + 1): int(v)
                                   for i, v in enumerate(got)}


def test_proxyd_counts_the_client_that_haproxy_names(proxyd_factory,
                                                     haproxy_factory,
                                                     fake_apns):
    """--register-rate 2/min per client on each instance: a client behind
    HAProxy gets 2 registrations per instance, then 429, while clients on
    other addresses keep their own buckets. Each sends X-Forwarded-For:
    192.0.2.66 itself: were that believed, or were HAProxy's own address
    counted, the later clients would find the bucket empty."""
    ps, h = start_cluster(proxyd_factory, haproxy_factory,
                          extra_args=["--register-rate", "2/min"],
                          interval="1h")
    forged = {"X-Forwarded-For": "192.0.2.66", "Content-Type":
              "application/json"}

    def register(source):
        return h.request("POST", "/register",
                         '{"token": "%s"}' % random_apns_token(),
                         headers=forged, source=source)[0]

    got = [register("127.0.0.20") for _ in range(9)]
    assert sorted(got) == [200] * 6 + [429] * 3, got
    got = {s: register(s) for s in ("127.0.0.%d" % i for i in range(21, 27))}
    assert set(got.values()) == {200}, got
    assert sum(p.metric("registrations_rate_limited_total")
               for p in ps) == 3
    # Clients with a bucket: 127.0.0.20 at each instance, and each of the
    # six others at one (a gauge proxyd refreshes on its own timer).
    wait_until(lambda: sum(p.metric("register_clients") for p in ps) == 9,
               what="9 register clients in all")
    assert sum(len(p.db_rows()) for p in ps) == 12


class _Recorder(http.server.BaseHTTPRequestHandler):
    """A backend that answers 200 and records what HAProxy sends."""
    protocol_version = "HTTP/1.1"
    seen = None         # set per server: [(peer, path, version, xff list)]

    def _answer(self):
        n = int(self.headers.get("Content-Length") or 0)
        if n:
            self.rfile.read(n)
        self.server.seen.append((self.client_address, self.path,
                                 self.request_version,
                                 self.headers.get_all("X-Forwarded-For")
                                 or []))
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    do_GET = do_POST = _answer

    def log_message(self, *args):
        pass


class _RecorderServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        pass            # HAProxy ends each check with a reset


@pytest.fixture
def recorder():
    srv = _RecorderServer(("127.0.0.1", 0), _Recorder)
    srv.seen = []
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield srv
    srv.shutdown()
    srv.server_close()
    t.join()


def test_haproxy_replaces_x_forwarded_for_and_keeps_alive(haproxy_factory,
                                                          recorder):
    """What proxyd receives: exactly one X-Forwarded-For, the client's
    address, whatever the client sent; HTTP/1.1, several requests on one
    kept-alive connection to the backend."""
    h = haproxy_factory([("rec", "127.0.0.1:%d" % recorder.server_port)])
    for xff in (None, "192.0.2.66", "192.0.2.66, 10.0.0.1"):
        headers = {"X-Forwarded-For": xff} if xff else {}
        for _ in range(3):
            assert h.request("POST", "/notify", "x", headers=headers,
                             source="127.0.0.30")[0] == 200
    api = [s for s in recorder.seen if s[1] == "/notify"]
    assert len(api) == 9, recorder.seen
    assert {tuple(s[3]) for s in api} == {("127.0.0.30",)}, api
    assert {s[2] for s in api} == {"HTTP/1.1"}, api
    # One client connection, one server connection (the health checks
    # open their own).
    assert len({s[0] for s in api}) == 1, api
    checks = [s for s in recorder.seen if s[1] == "/health"]
    assert checks and all(s[3] == [] for s in checks), checks


def test_killed_instance_leaves_rotation_balancer_keeps_answering(
        proxyd_factory, haproxy_factory, fake_apns):
    ps, h = start_cluster(proxyd_factory, haproxy_factory)
    for _ in range(6):
        assert h.notify(random_apns_token()) == (200, b"")
    assert pushes(ps) == [2, 2, 2]

    # A client sending all the while, each request on a connection of
    # its own as well as on a kept-alive one.
    statuses, stop = [], threading.Event()

    def client():
        while not stop.is_set():
            for keep in (True, False):
                t0 = time.monotonic()
                try:
                    s = h.notify(random_apns_token(), keep_alive=keep)[0]
                except OSError as e:
                    s = repr(e)
                statuses.append((s, time.monotonic() - t0))
    t = threading.Thread(target=client)
    t.start()
    try:
        wait_until(lambda: len(statuses) >= 10, what="traffic flowing")
        t_kill = time.monotonic()
        ps[1].kill()
        h.wait_servers(proxyd2="DOWN", timeout=5.0)
        took = time.monotonic() - t_kill
        n = len(statuses)
        wait_until(lambda: len(statuses) >= n + 20,
                   what="traffic after the instance left")
    finally:
        stop.set()
        t.join()
    bad = [s for s in statuses if s[0] != 200]
    assert not bad, bad
    print("taken out after %.2f s; %d requests, slowest %.3f s"
          % (took, len(statuses), max(d for _, d in statuses)))
    assert took < 3.0, took
    assert h.server_states() == {"proxyd1": "UP", "proxyd2": "DOWN",
                                 "proxyd3": "UP"}

    before = [pushes([ps[0]])[0], pushes([ps[2]])[0]]
    for _ in range(10):
        assert h.notify(random_apns_token()) == (200, b"")
    after = [pushes([ps[0]])[0], pushes([ps[2]])[0]]
    assert [a - b for a, b in zip(after, before)] == [5, 5], (before, after)

    # Restarted on the same port: back in after one good check.
    ps[1].start()
    h.wait_servers(proxyd2="UP", timeout=5.0)
    for _ in range(6):
        assert h.notify(random_apns_token()) == (200, b"")
    assert ps[1].metric("direct_notifications_total") == 2


def test_stopping_instance_is_drained(proxyd_factory, haproxy_factory,
                                      fake_apns):
    """SIGTERM to the instance holding a push in flight (APNs answers it
    after 1.5 s): its check says 503 "stopping" and HAProxy takes it out,
    the push in flight gets its 200, it exits 0, and meanwhile every
    other request gets 200: the ones it refuses with 503 "shutting down"
    before HAProxy noticed are sent to another instance."""
    ps, h = start_cluster(proxyd_factory, haproxy_factory)
    slow = random_apns_token()
    fake_apns.set_replies(slow, (200, None, {"delay": 1.5}))
    slow_got = []
    ts = threading.Thread(target=lambda: slow_got.append(
        h.notify(slow, keep_alive=False)))
    ts.start()
    holder = wait_until(lambda: [p for p in ps
                                 if p.metric("pushes_in_flight") == 1],
                        what="the slow push in flight")[0]
    name = "proxyd%d" % (ps.index(holder) + 1)

    statuses, stop = [], threading.Event()

    def client():
        while not stop.is_set():
            try:
                s = h.notify(random_apns_token())
            except OSError as e:
                s = repr(e)
            statuses.append(s)
    t = threading.Thread(target=client)
    t.start()
    try:
        wait_until(lambda: len(statuses) >= 10, what="traffic flowing")
        holder.proc.send_signal(signal.SIGTERM)
        h.wait_servers(timeout=5.0, **{name: "DOWN"})
        n = len(statuses)
        wait_until(lambda: len(statuses) >= n + 20,
                   what="traffic after the instance left")
    finally:
        stop.set()
        t.join()
        ts.join(10)
    assert slow_got == [(200, b"")]
    assert holder.stop() == 0
    bad = [s for s in statuses if s != (200, b"")]
    assert not bad, (len(statuses), bad)
