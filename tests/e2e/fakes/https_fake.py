"""A small HTTPS server for fake push providers (fake_fcm.py,
fake_ubports.py): TLS on 127.0.0.1 with ALPN, HTTP/2 through python3-h2
and HTTP/1.1 by hand, one thread per connection. A subclass says what a
request means; this records it and answers.

    class FakeX(HttpsFake):
        def handle(self, req):          # req: Request, under self.lock
            return Reply(200, body=b"{}")

    fake = FakeX(pki.server_cert, pki.server_key).start()
    fake.url                            # https://127.0.0.1:<port>
    fake.wait_for(3)                    # or wait_for(pred), kind="send"
    fake.stop()

HttpsFake(cert, key, port=0, alpn=("h2", "http/1.1"), name="fake",
          max_body=1 MiB, host="127.0.0.1", public_host=None)
  alpn      what the server offers; a client that offers none of it still
            gets a connection (no ALPN: HTTP/1.1), like most servers
  port      0: OS-chosen; kept across stop()/start()
  host      the IPv4 address to listen on ("0.0.0.0" in a container)
  public_host  the host name `url` gives (default host), e.g. "fakes";
            the certificate must name it
Recorded, readable from the test thread (change only under `lock`):
  requests       every Request, in arrival order (Request.kind is what
                 the subclass set: "token", "send", ...)
  connections    TLS connections that completed the handshake
  alpn           the protocol of each ("h2", "http/1.1" or None)
  tls_failures   handshake errors (strings)
  errors         exceptions raised inside the fake (must stay empty)
  violations     what a subclass found wrong with a client beyond what the
                 real service checks (must stay empty in tests that expect
                 a well-behaved client)

HTTP/1.1 side: keep-alive, Content-Length or chunked request bodies
(Request.chunked tells which; neither on a POST gives length=None, so a
subclass can answer 411 like Go's net/http servers), a header section of
at most 64 KiB (431 otherwise). HTTP/2 side: one stream per request,
answers with content-length, flow control acknowledged as data arrives.
A reply can be delayed (Reply.delay seconds) without blocking the
connection's other streams (HTTP/2) or at all (HTTP/1.1: the connection
waits, as it would).
"""

import socket
import ssl
import threading
import time

import h2.config
import h2.connection
import h2.events
import h2.exceptions

from fake_wait import wait_for_requests

MAX_HEADER_BYTES = 65536
REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized",
           403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed",
           411: "Length Required", 413: "Payload Too Large",
           415: "Unsupported Media Type", 429: "Too Many Requests",
           431: "Request Header Fields Too Large",
           500: "Internal Server Error", 502: "Bad Gateway",
           503: "Service Unavailable", 505: "HTTP Version Not Supported"}


class FakeWaitTimeout(AssertionError):
    pass


class Request:
    """One request that reached the fake. headers: lowercase names, the
    last value wins (header_list has them all, in order); http: "2" or
    "1.1"; length: the declared Content-Length (None if absent); status,
    reply_body: what the fake answered. Subclasses add their own fields
    through `info` (a dict)."""

    def __init__(self, conn, stream, http):
        self.t = time.time()
        self.conn = conn
        self.stream = stream
        self.http = http
        self.method = None
        self.path = None
        self.header_list = []
        self.headers = {}
        self.body = b""
        self.length = None
        self.chunked = False
        self.too_large = False
        self.kind = None
        self.status = None
        self.reply_body = b""
        self.info = {}

    def _set_headers(self, pairs):
        self.header_list = pairs
        for k, v in pairs:
            self.headers[k.lower()] = v

    def __repr__(self):
        return "Request(conn=%s %s %s %s http/%s -> %s)" % (
            self.conn, self.kind, self.method, self.path, self.http,
            self.status)


class Reply:
    def __init__(self, status, body=b"", headers=None, delay=0.0,
                 content_type="application/json; charset=UTF-8"):
        self.status = status
        self.body = body if isinstance(body, bytes) else body.encode()
        self.headers = list(headers or [])
        self.delay = delay
        self.content_type = content_type


class _H1Error(Exception):
    def __init__(self, status, why):
        super().__init__(why)
        self.status = status


class HttpsFake:
    """See the module docstring."""

    def __init__(self, cert, key, port=0, alpn=("h2", "http/1.1"),
                 name="fake", max_body=1 << 20, host="127.0.0.1",
                 public_host=None):
        self.cert = cert
        self.key = key
        self.host = host
        self.public_host = public_host
        self.port = port
        self.alpn_offer = list(alpn)
        self.name = name
        self.max_body = max_body
        self.lock = threading.Condition()
        self._thread = None
        self._sock = None
        self._conns = set()
        self._threads = []
        self._stopping = False
        self._next_conn = 0
        self.reset_records()

    # ---- for subclasses ---------------------------------------------------

    def handle(self, req):
        """Classify and answer req (a Request); called with self.lock
        held. Return a Reply."""
        return Reply(404, b"")

    # ---- public API ------------------------------------------------------

    @property
    def url(self):
        return "https://%s:%d" % (self.public_host or self.host, self.port)

    def reset_records(self):
        with self.lock:
            self.requests = []
            self.connections = 0
            self.alpn = []
            self.tls_failures = []
            self.errors = []
            self.violations = []

    def start(self):
        if self._thread is not None:
            raise RuntimeError("already running")
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.load_cert_chain(self.cert, self.key)
        ctx.set_alpn_protocols(self.alpn_offer)
        self._ctx = ctx
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((self.host, self.port))
        s.listen(128)
        s.settimeout(0.1)       # accept() wakes up to notice stop()
        self.port = s.getsockname()[1]
        self._sock = s
        self._stopping = False
        self._thread = threading.Thread(target=self._accept, daemon=True,
                                        name=self.name + "-accept")
        self._thread.start()
        return self

    def stop(self):
        """Close the listener and every connection."""
        if self._thread is None:
            return
        self._stopping = True
        self._thread.join(timeout=5)
        try:
            self._sock.close()
        except OSError:
            pass
        for c in list(self._conns):
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        for t in self._threads:
            t.join(timeout=5)
        self._threads = []
        self._thread = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def drop_connections(self):
        """Close every open connection (no GOAWAY)."""
        for c in list(self._conns):
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def wait_for(self, count=None, pred=None, timeout=10.0, kind=None):
        """Wait until `count` requests (of `kind`, if given) are recorded
        and return them, or until pred(requests) is truthy and return its
        value. Raises FakeWaitTimeout."""
        return wait_for_requests(
            self.lock, lambda: self.requests, count, pred, timeout, kind,
            timed_out=lambda t: FakeWaitTimeout(
                "%s: timed out after %.1fs (%d requests, %d "
                "connections, TLS failures %r)" % (
                    self.name, t, len(self.requests),
                    self.connections, self.tls_failures[-3:])))

    def _accept(self):
        while not self._stopping:
            try:
                raw, _ = self._sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            raw.settimeout(None)
            t = threading.Thread(target=self._serve, args=(raw,),
                                 daemon=True, name=self.name + "-conn")
            self._threads.append(t)
            t.start()

    def _serve(self, raw):
        self._conns.add(raw)
        try:
            raw.settimeout(10)
            try:
                tls = self._ctx.wrap_socket(raw, server_side=True)
            except (ssl.SSLError, OSError) as e:
                with self.lock:
                    self.tls_failures.append(str(e))
                    self.lock.notify_all()
                return
            with self.lock:
                self._next_conn += 1
                cid = self._next_conn
                self.connections += 1
                proto = tls.selected_alpn_protocol()
                self.alpn.append(proto)
                self.lock.notify_all()
            tls.settimeout(0.2)
            try:
                if proto == "h2":
                    self._serve_h2(tls, cid)
                else:
                    self._serve_h1(tls, cid)
            except (ssl.SSLError, OSError):
                pass
            except Exception as e:          # a bug in the fake
                with self.lock:
                    self.errors.append("%s conn %d: %r" % (self.name, cid,
                                                           e))
                    self.lock.notify_all()
            try:
                tls.close()
            except OSError:
                pass
        finally:
            self._conns.discard(raw)
            try:
                raw.close()
            except OSError:
                pass

    def _dispatch(self, req):
        with self.lock:
            try:
                reply = self.handle(req)
            except Exception as e:          # a bug in the fake
                self.errors.append("%s handle %r: %r" % (self.name, req, e))
                reply = Reply(500, b'{"fake":"exception"}')
            req.status = reply.status
            req.reply_body = reply.body
            self.requests.append(req)
            self.lock.notify_all()
        return reply

    # HTTP/2 ----------------------------------------------------------------

    def _serve_h2(self, tls, cid):
        conn = h2.connection.H2Connection(config=h2.config.H2Configuration(
            client_side=False, header_encoding="utf-8"))
        wlock = threading.Lock()
        conn.initiate_connection()
        tls.sendall(conn.data_to_send())
        streams = {}
        while not self._stopping:
            try:
                data = tls.recv(65536)
            except socket.timeout:
                continue
            if not data:
                return
            with wlock:
                try:
                    events = conn.receive_data(data)
                except h2.exceptions.ProtocolError as e:
                    with self.lock:
                        self.violations.append("%s conn %d: HTTP/2 "
                                               "protocol error %r"
                                               % (self.name, cid, e))
                    tls.sendall(conn.data_to_send())
                    return
                ended = []
                for ev in events:
                    if isinstance(ev, h2.events.RequestReceived):
                        req = Request(cid, ev.stream_id, "2")
                        req._set_headers(list(ev.headers))
                        req.method = req.headers.get(":method")
                        req.path = req.headers.get(":path")
                        cl = req.headers.get("content-length")
                        req.length = int(cl) if cl and cl.isdigit() else None
                        streams[ev.stream_id] = (req, bytearray())
                        if ev.stream_ended is not None:
                            ended.append(ev.stream_id)
                    elif isinstance(ev, h2.events.DataReceived):
                        st = streams.get(ev.stream_id)
                        if st is not None:
                            if len(st[1]) + len(ev.data) > self.max_body:
                                st[0].too_large = True
                            else:
                                st[1].extend(ev.data)
                        if ev.flow_controlled_length:
                            conn.acknowledge_received_data(
                                ev.flow_controlled_length, ev.stream_id)
                    elif isinstance(ev, h2.events.StreamEnded):
                        if ev.stream_id in streams and \
                                ev.stream_id not in ended:
                            ended.append(ev.stream_id)
                    elif isinstance(ev, h2.events.StreamReset):
                        streams.pop(ev.stream_id, None)
                    elif isinstance(ev, h2.events.ConnectionTerminated):
                        tls.sendall(conn.data_to_send())
                        return
                out = conn.data_to_send()
                if out:
                    tls.sendall(out)
            for sid in ended:
                req, body = streams.pop(sid)
                req.body = bytes(body)
                reply = self._dispatch(req)
                if reply.delay:
                    threading.Timer(reply.delay, self._h2_answer,
                                    (tls, conn, wlock, sid, reply)).start()
                else:
                    self._h2_answer(tls, conn, wlock, sid, reply)

    def _h2_answer(self, tls, conn, wlock, sid, reply):
        headers = [(":status", str(reply.status)),
                   ("content-length", str(len(reply.body)))]
        if reply.body:
            headers.append(("content-type", reply.content_type))
        headers += [(k.lower(), v) for k, v in reply.headers]
        with wlock:
            try:
                conn.send_headers(sid, headers, end_stream=not reply.body)
                if reply.body:
                    conn.send_data(sid, reply.body, end_stream=True)
                tls.sendall(conn.data_to_send())
            except (h2.exceptions.StreamClosedError,
                    h2.exceptions.ProtocolError, ssl.SSLError, OSError):
                pass        # the client reset the stream or went away

    # HTTP/1.1 --------------------------------------------------------------

    def _recv_more(self, tls, buf):
        while not self._stopping:
            try:
                data = tls.recv(65536)
            except socket.timeout:
                continue
            if not data:
                return False
            buf.extend(data)
            return True
        return False

    def _read_line(self, tls, buf):
        while True:
            i = buf.find(b"\r\n")
            if i >= 0:
                line = bytes(buf[:i])
                del buf[:i + 2]
                return line
            if len(buf) > MAX_HEADER_BYTES:
                raise _H1Error(431, "line too long")
            if not self._recv_more(tls, buf):
                return None

    def _read_exact(self, tls, buf, n):
        while len(buf) < n:
            if not self._recv_more(tls, buf):
                return None
        data = bytes(buf[:n])
        del buf[:n]
        return data

    def _read_chunked(self, tls, buf):
        body = bytearray()
        while True:
            line = self._read_line(tls, buf)
            if line is None:
                return None
            try:
                size = int(line.split(b";")[0], 16)
            except ValueError:
                raise _H1Error(400, "bad chunk size")
            if size == 0:
                while True:             # trailers, then the empty line
                    line = self._read_line(tls, buf)
                    if line is None or line == b"":
                        return bytes(body)
            chunk = self._read_exact(tls, buf, size + 2)
            if chunk is None:
                return None
            if len(body) + size > self.max_body:
                raise _H1Error(413, "body too large")
            body.extend(chunk[:size])

    def _serve_h1(self, tls, cid):
        buf = bytearray()
        seq = 0
        while not self._stopping:
            try:
                line = self._read_line(tls, buf)
                while line == b"":          # tolerated before a request
                    line = self._read_line(tls, buf)
                if line is None:
                    return
                seq += 1
                req = Request(cid, seq, "1.1")
                parts = line.decode("latin-1").split(" ")
                if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
                    raise _H1Error(400, "bad request line")
                req.method, req.path = parts[0], parts[1]
                pairs, size = [], len(line)
                while True:
                    h = self._read_line(tls, buf)
                    if h is None:
                        return
                    if h == b"":
                        break
                    size += len(h)
                    if size > MAX_HEADER_BYTES:
                        raise _H1Error(431, "headers too large")
                    k, sep, v = h.decode("latin-1").partition(":")
                    if not sep or k != k.strip():
                        raise _H1Error(400, "bad header line")
                    pairs.append((k.lower(), v.strip()))
                req._set_headers(pairs)
                te = req.headers.get("transfer-encoding", "").lower()
                cl = req.headers.get("content-length")
                if te:
                    if te != "chunked":
                        raise _H1Error(400, "bad transfer-encoding")
                    req.chunked = True
                    body = self._read_chunked(tls, buf)
                elif cl is not None:
                    if not cl.isdigit():
                        raise _H1Error(400, "bad content-length")
                    req.length = int(cl)
                    if req.length > self.max_body:
                        raise _H1Error(413, "body too large")
                    body = self._read_exact(tls, buf, req.length)
                else:
                    body = b""
                if body is None:
                    return
                req.body = body
            except _H1Error as e:
                self._h1_send(tls, Reply(e.status, b""), close=True)
                return
            reply = self._dispatch(req)
            if reply.delay:
                time.sleep(reply.delay)     # this connection waits
            close = req.headers.get("connection", "").lower() == "close"
            self._h1_send(tls, reply, close)
            if close:
                return

    def _h1_send(self, tls, reply, close):
        head = ["HTTP/1.1 %d %s" % (reply.status,
                                    REASONS.get(reply.status, "Status")),
                "Content-Length: %d" % len(reply.body)]
        if reply.body:
            head.append("Content-Type: " + reply.content_type)
        if close:
            head.append("Connection: close")
        head += ["%s: %s" % (k, v) for k, v in reply.headers]
        tls.sendall(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") +
                    reply.body)
