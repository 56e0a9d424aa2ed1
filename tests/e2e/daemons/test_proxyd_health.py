"""proxyd behind a load balancer (docs/proxyd.md, "Health and
readiness"): GET /health and /ready, and --reuse-port.

- /health says ok (HEAD too), /ready says ready once the credentials are
  in: at once without FCM; with FCM only once its access token has come
  (the token endpoint held back by a relay here), and not while the key
  is refused, with renewals retried without any push;
- a graceful stop (SIGTERM) with a push in flight: both answer 503
  "stopping" while that push is answered;
- two instances with --reuse-port on one port both start and both get
  connections, and the second serves alone once the first is stopped;
  without --reuse-port the second cannot bind, and says why.
"""
import os
import secrets
import select
import signal
import socket
import threading
import urllib.parse

import pytest

from harness import http_request, register_secret, wait_until

PACKAGE = "chat.delta"


def get(p, path, method="GET", port=None):
    return http_request(port or p.port, method, path, timeout=5.0)


def fcm_token():
    """(registration token, the token a relay sends)."""
    reg = secrets.token_urlsafe(120).replace("-", "_")
    t = "fcm-%s:%s" % (PACKAGE, reg)
    register_secret(t)
    register_secret(reg)
    return reg, t


def fcm_args(fake_fcm, tmpdir, token_url=None):
    key = os.path.join(tmpdir, "service-account-%d.json" %
                       secrets.randbelow(10 ** 9))
    fake_fcm.write_key_file(key)
    args = ["--fcm-key-path", key, "--fcm-api-url", fake_fcm.api_url]
    if token_url is not None:
        args += ["--fcm-token-url", token_url]
    return args


class HeldRelay:
    """A TCP relay to (host, port) that takes connections at once but
    passes no byte either way until release(): a token endpoint that is
    slow to answer (TLS goes through it untouched)."""

    def __init__(self, host, port):
        self.target = (host, port)
        self.released = threading.Event()
        self.closing = threading.Event()
        self.connections = 0
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.threads = [threading.Thread(target=self._accept, daemon=True)]
        self.threads[0].start()

    def release(self):
        self.released.set()

    def close(self):
        self.closing.set()
        self.released.set()
        self.sock.close()
        for t in self.threads:
            t.join(5)

    def _accept(self):
        while not self.closing.is_set():
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            t = threading.Thread(target=self._pump, args=(c,), daemon=True)
            self.threads.append(t)
            t.start()

    def _pump(self, c):
        self.released.wait()
        if self.closing.is_set():
            c.close()
            return
        up = socket.create_connection(self.target)
        peer = {c: up, up: c}
        try:
            while not self.closing.is_set():
                ready, _, _ = select.select([c, up], [], [], 0.2)
                for s in ready:
                    data = s.recv(65536)
                    if not data:
                        return
                    peer[s].sendall(data)
        except OSError:
            pass
        finally:
            c.close()
            up.close()


# ---- health and readiness ----------------------------------------------------


def test_health_and_ready(proxyd_factory):
    """No credential comes over the network: ready at once. HEAD has the
    status without the body; other methods are no probe."""
    p = proxyd_factory()
    assert get(p, "/health") == (200, b"ok\n")
    assert get(p, "/health", "HEAD") == (200, b"")
    assert get(p, "/ready") == (200, b"ready\n")
    assert get(p, "/ready", "HEAD") == (200, b"")
    assert http_request(p.port, "POST", "/health", b"")[0] == 404
    assert get(p, "/") == (200, b"Hello, world!")
    assert "proxy ready" in p.log_text()


def test_ready_waits_for_the_fcm_token(proxyd_factory, fake_fcm, tmpdir):
    """FCM's access token is fetched at start, without a push: /ready is
    503 while the token endpoint has not answered (health is ok all the
    while), then 200, and the first push needs no token request of its
    own."""
    u = urllib.parse.urlsplit(fake_fcm.token_url)
    relay = HeldRelay(u.hostname, u.port)
    try:
        url = "https://127.0.0.1:%d%s" % (relay.port, u.path)
        p = proxyd_factory(extra_args=fcm_args(fake_fcm, tmpdir, url))
        wait_until(lambda: relay.connections > 0, what="the token request")
        for _ in range(5):
            assert get(p, "/ready") == (503, b"not ready\n")
            assert get(p, "/health") == (200, b"ok\n")
        assert fake_fcm.token_requests == []
        relay.release()
        wait_until(lambda: get(p, "/ready") == (200, b"ready\n"),
                   what="/ready 200 once the token came")
        assert len(fake_fcm.token_requests) == 1
        reg, t = fcm_token()
        assert p.notify(t) == (200, b"")
        assert len(fake_fcm.token_requests) == 1
        assert [s.info["token"] for s in fake_fcm.sends] == [reg]
    finally:
        relay.close()


def test_refused_key_is_not_ready_and_retried(proxyd_factory, fake_fcm,
                                              tmpdir):
    """The token endpoint refuses the key from the start: logged at start,
    not ready (health ok: the other providers push), and tried again after
    the back-off (1 s, 2 s) without any push; ready once it is taken."""
    fake_fcm.script_token_endpoint(("invalid_grant", "Invalid JWT "
                                    "Signature."), "invalid_grant")
    p = proxyd_factory(extra_args=fcm_args(fake_fcm, tmpdir))
    wait_until(lambda: "error=invalid_grant" in p.log_text(),
               what="the refusal logged")
    assert get(p, "/ready") == (503, b"not ready\n")
    assert get(p, "/health") == (200, b"ok\n")
    wait_until(lambda: get(p, "/ready") == (200, b"ready\n"), timeout=15,
               what="/ready after the third token request")
    assert [r.status for r in fake_fcm.token_requests] == [400, 400, 200]
    assert fake_fcm.sends == []


def test_graceful_stop_drains(proxyd_factory, fake_fcm, tmpdir):
    """SIGTERM with a push in flight (FCM answers after 2 s): /health and
    /ready answer 503 "stopping" at once, a new /notify 503, and the push
    in flight still gets its 200; then proxyd exits 0."""
    p = proxyd_factory(extra_args=fcm_args(fake_fcm, tmpdir))
    wait_until(lambda: get(p, "/ready") == (200, b"ready\n"))
    reg, t = fcm_token()
    fake_fcm.set_replies(reg, {"status": 200, "delay": 2.0})
    got = []
    th = threading.Thread(target=lambda: got.append(
        http_request(p.port, "POST", "/notify", t, timeout=10.0)))
    th.start()
    try:
        wait_until(lambda: len(fake_fcm.sends) == 1, what="the push sent")
        p.proc.send_signal(signal.SIGTERM)
        wait_until(lambda: get(p, "/health") == (503, b"stopping\n"),
                   timeout=1.5, what="/health 503 after SIGTERM")
        assert get(p, "/ready") == (503, b"stopping\n")
        assert get(p, "/health", "HEAD") == (503, b"")
        assert http_request(p.port, "POST", "/notify", fcm_token()[1]) == \
            (503, b"shutting down\n")
        assert p.running        # still answering the push in flight
    finally:
        th.join(10)
    assert got == [(200, b"")]
    assert p.stop() == 0


# ---- several instances on one port -----------------------------------------


def second_on_port(proxyd_factory, port, *extra):
    """A second proxyd (own database, log and metrics port) on `port`: the
    last --port wins."""
    p = proxyd_factory(start=False, name="proxyd-b",
                       extra_args=list(extra) + ["--port", str(port)])
    p.port = port
    return p


def undecryptable():
    return "openpgp:" + secrets.token_urlsafe(90)


def test_reuse_port_two_instances(proxyd_factory):
    """Both start on one port and both get connections (the kernel spreads
    them by the peer's address and port); stopping one leaves the other
    serving every new connection."""
    a = proxyd_factory(extra_args=["--reuse-port"])
    b = second_on_port(proxyd_factory, a.port, "--reuse-port").start()
    assert "(shared: --reuse-port)" in b.log_text()
    n = 64
    for _ in range(n):
        # A new connection each: an undecryptable token, counted where
        # it went.
        assert http_request(a.port, "POST", "/notify",
                            undecryptable())[0] == 410
    fa = a.metric("openpgp_decryption_failures_total")
    fb = b.metric("openpgp_decryption_failures_total")
    assert fa + fb == n
    assert fa > 0 and fb > 0, (fa, fb)  # 2^-63 that one got them all
    a.stop()
    for _ in range(16):
        assert get(b, "/health") == (200, b"ok\n")
    assert b.metric("openpgp_decryption_failures_total") == fb
    assert http_request(b.port, "POST", "/notify", undecryptable())[0] == 410
    assert b.metric("openpgp_decryption_failures_total") == fb + 1


@pytest.mark.parametrize("first", [[], ["--reuse-port"]])
def test_port_taken_without_reuse_port(proxyd_factory, first):
    """Without --reuse-port on both, the second cannot listen, and says so
    (and what would share the port)."""
    a = proxyd_factory(extra_args=first)
    b = second_on_port(proxyd_factory, a.port)
    status, out = b.run_to_exit()
    assert status == 1
    assert "cannot listen on 127.0.0.1:%d: Address already in use" % \
        a.port in out
    assert "--reuse-port" in out
    assert get(a, "/health") == (200, b"ok\n")
