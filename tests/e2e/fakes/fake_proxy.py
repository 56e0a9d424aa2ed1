"""A scriptable stand-in for the push proxy (notifications.delta.chat).

notifierd POSTs a device token as the raw body of `POST /notify`; the proxy
answers 200 (delivered), 410 (token gone) or anything else (retry). This
fake listens on 127.0.0.1 on an OS-chosen port, speaks HTTP/1.1 with
keep-alive, records every request with its arrival time and answers from a
script:

    proxy = FakeProxy(default=200).start()
    proxy.url                       # http://127.0.0.1:<port>/notify
    proxy.set_status(tok, 500, 200) # per-token sequence; the last repeats
    proxy.responder = fn            # fn(token, nth) -> status | (status, s)
    proxy.default = 410             # everything else
    proxy.delay = 0.3               # seconds before each answer
    proxy.reply_body = b"x" * 2**20 # body of every answer (default none)
    proxy.wait_for(count=2)         # or pred=lambda reqs: ...
    proxy.stop(); proxy.start()     # down (connection refused), up again
                                    # on the same port
    proxy.mode = "close"            # accept and close at once (counted in
                                    # proxy.connections), never answer
    proxy.connects                  # [(time.monotonic(), mode)] per
                                    # accepted TCP connection
    proxy.drop_connections()        # close every open connection

Precedence of the answer: a per-token sequence, then `responder`, then
`default`. `nth` counts the requests that carried this token before (0 for
the first).

The request parsing is a small fast path (no email-header parser, one write
per answer, no logging): a 10,000-job test spends its time in notifierd,
not here. Only what notifierd sends is supported: Content-Length bodies,
keep-alive, `Expect: 100-continue`.
"""

import collections
import http
import http.server
import socket
import threading
import time

Request = collections.namedtuple(
    "Request", "body t status conn path")
"""One POST /notify: body (str), t (time.monotonic() at arrival, after the
body was read), status answered, conn (serial of the TCP connection),
path."""

_REASONS = {s.value: s.phrase for s in http.HTTPStatus}
_MAX_LINE = 65536
_MAX_BODY = 1 << 20


class ProxyWaitTimeout(AssertionError):
    pass


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "fake-proxy"

    def setup(self):
        super().setup()
        try:
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY,
                                       1)
        except OSError:
            pass

    def log_message(self, *args):       # no logging: speed, and no tokens
        pass

    def _answer(self, status, close=False, body=b""):
        reason = _REASONS.get(status, "Status")
        head = ("HTTP/1.1 %d %s\r\nContent-Length: %d\r\n%s\r\n"
                % (status, reason, len(body),
                   "Connection: close\r\n" if close else ""))
        self.wfile.write(head.encode("latin-1") + body)

    def handle_one_request(self):
        proxy = self.server.proxy
        rfile = self.rfile
        self.close_connection = True
        try:
            line = rfile.readline(_MAX_LINE + 1)
            if not line:
                return
            parts = line.split()
            if len(parts) != 3 or not parts[2].startswith(b"HTTP/1."):
                self._answer(400, close=True)
                return
            method, path, version = parts
            keep_alive = version == b"HTTP/1.1"
            length = 0
            expect_continue = False
            chunked = False
            while True:
                h = rfile.readline(_MAX_LINE + 1)
                if not h:
                    return
                if h in (b"\r\n", b"\n"):
                    break
                name, _, value = h.partition(b":")
                name = name.strip().lower()
                value = value.strip()
                if name == b"content-length":
                    length = int(value)
                elif name == b"connection":
                    v = value.lower()
                    if v == b"close":
                        keep_alive = False
                    elif v == b"keep-alive":
                        keep_alive = True
                elif name == b"expect":
                    expect_continue = value.lower() == b"100-continue"
                elif name == b"transfer-encoding":
                    chunked = True
            if chunked or length < 0 or length > _MAX_BODY:
                self._answer(411 if chunked else 413, close=True)
                return
            if expect_continue:
                self.wfile.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            body = rfile.read(length) if length else b""
            if len(body) != length:
                return
            t = time.monotonic()
            path = path.decode("latin-1")
            if method != b"POST" or path.split("?", 1)[0] != proxy.path:
                proxy._other(method.decode("latin-1"), path, t)
                self._answer(404 if method == b"POST" else 405,
                             close=not keep_alive)
                self.close_connection = not keep_alive
                return
            token = body.decode("utf-8", "surrogateescape")
            status, delay = proxy._decide(token)
            proxy._record(Request(token, t, status, self._conn, path))
            if delay > 0:
                time.sleep(delay)   # a slow proxy: the answer itself waits
            self._answer(status, close=not keep_alive,
                         body=proxy.reply_body)
            self.close_connection = not keep_alive
        except (OSError, ValueError):
            self.close_connection = True

    def handle(self):
        self._conn = self.server.proxy._conn_opened(self.connection)
        try:
            super().handle()
        finally:
            self.server.proxy._conn_closed(self.connection)


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 1024       # notifierd opens up to 256 at once

    def __init__(self, addr, proxy):
        self.proxy = proxy
        super().__init__(addr, _Handler)

    def process_request(self, request, client_address):
        if self.proxy.mode == "close":
            self.proxy._count_connect()
            try:
                request.close()
            except OSError:
                pass
            return
        super().process_request(request, client_address)


class FakeProxy:
    def __init__(self, default=200, delay=0.0, path="/notify", port=0):
        self.default = default
        self.delay = delay
        self.path = path
        self.port = port
        self.responder = None
        self.reply_body = b""       # body of every answer to a POST
        self.mode = "serve"         # or "close"
        self._seq = {}              # token -> [status, ...]
        self._seen = collections.Counter()
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._requests = []
        self._others = []
        self._conns = set()
        self._conn_serial = 0
        self.connections = 0        # TCP connections accepted (any mode)
        self._connects = []         # (monotonic, mode) per connection
        self._server = None
        self._thread = None

    # -- life cycle -------------------------------------------------------

    @property
    def url(self):
        return "http://127.0.0.1:%d%s" % (self.port, self.path)

    @property
    def running(self):
        return self._server is not None

    def start(self):
        """Listen (again) on 127.0.0.1:self.port (OS-chosen the first
        time) and serve in a thread."""
        assert self._server is None, "fake proxy already running"
        self._server = _Server(("127.0.0.1", self.port), self)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
            name="fake-proxy:%d" % self.port, daemon=True)
        self._thread.start()
        return self

    def stop(self):
        """Close the listening socket (new connections are refused) and
        every open connection; wait for the handler threads."""
        srv, self._server = self._server, None
        if srv is None:
            return
        srv.shutdown()
        self._thread.join()
        srv.socket.close()
        self.drop_connections()
        srv.server_close()          # joins the handler threads

    def __enter__(self):
        return self.start() if self._server is None else self

    def __exit__(self, *exc):
        self.stop()

    # -- script -----------------------------------------------------------

    def set_status(self, token, *statuses):
        """Answers for this token, one per request, the last repeating.
        An entry is a status or (status, delay in seconds)."""
        assert statuses
        with self._lock:
            self._seq[token] = list(statuses)

    def _decide(self, token):
        with self._lock:
            nth = self._seen[token]
            self._seen[token] += 1
            seq = self._seq.get(token)
            responder = self.responder
        if seq is not None:
            ans = seq[min(nth, len(seq) - 1)]
        elif responder is not None:
            ans = responder(token, nth)
        else:
            ans = self.default
        if isinstance(ans, tuple):
            return int(ans[0]), float(ans[1])
        return int(ans), float(self.delay)

    # -- records ----------------------------------------------------------

    def _record(self, req):
        with self._cond:
            self._requests.append(req)
            self._cond.notify_all()

    def _other(self, method, path, t):
        with self._cond:
            self._others.append((method, path, t))
            self._cond.notify_all()

    def _count_connect(self):
        t = time.monotonic()
        with self._cond:
            self.connections += 1
            self._connects.append((t, "close"))
            self._cond.notify_all()

    def _conn_opened(self, sock):
        t = time.monotonic()
        with self._cond:
            self.connections += 1
            self._connects.append((t, "serve"))
            self._cond.notify_all()
            self._conn_serial += 1
            self._conns.add(sock)
            return self._conn_serial

    def _conn_closed(self, sock):
        with self._lock:
            self._conns.discard(sock)

    @property
    def requests(self):
        """A copy of every POST /notify so far, in arrival order."""
        with self._lock:
            return list(self._requests)

    @property
    def other_requests(self):
        """(method, path, t) of requests that were not POST /notify."""
        with self._lock:
            return list(self._others)

    @property
    def count(self):
        with self._lock:
            return len(self._requests)

    def bodies(self):
        return [r.body for r in self.requests]

    def requests_for(self, token):
        return [r for r in self.requests if r.body == token]

    def open_connections(self):
        with self._lock:
            return len(self._conns)

    @property
    def connects(self):
        """[(time.monotonic(), mode)] of every accepted TCP connection;
        mode "close" for those closed unanswered."""
        with self._lock:
            return list(self._connects)

    def drop_connections(self):
        """Shut down every open connection (the client sees them close);
        the listener stays."""
        with self._lock:
            conns = list(self._conns)
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def wait_for(self, count=None, pred=None, timeout=10.0, what=None):
        """Block until `count` requests arrived and/or pred(requests) is
        truthy; returns the requests so far (a copy). Raises
        ProxyWaitTimeout (an AssertionError) after `timeout` seconds."""
        assert count is not None or pred is not None
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                reqs = list(self._requests)
                ok = count is None or len(reqs) >= count
                if ok and pred is not None:
                    ok = bool(pred(reqs))
                if ok:
                    return reqs
                left = deadline - time.monotonic()
                if left <= 0:
                    raise ProxyWaitTimeout(
                        "fake proxy: timed out after %.1fs waiting for %s "
                        "(%d requests so far)" % (
                            timeout, what or ("%s requests" % count
                                              if pred is None else
                                              "a condition"),
                            len(self._requests)))
                self._cond.wait(min(left, 0.5))

    def wait_connects(self, count, timeout=10.0):
        """Block until `count` TCP connections were accepted; returns
        connects. Raises ProxyWaitTimeout after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self._connects) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise ProxyWaitTimeout(
                        "fake proxy: timed out after %.1fs waiting for %d "
                        "connections (%d so far)"
                        % (timeout, count, len(self._connects)))
                self._cond.wait(min(left, 0.5))
            return list(self._connects)
