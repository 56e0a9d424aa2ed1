"""One HTTPS request over HTTP/2 (python3-h2) or HTTP/1.1 (http.client),
for tests that drive the fake providers without proxyd:

    r = request(url, "POST", [("content-type", "application/json")],
                b"{}", ca_file=pki.ca_cert, http="2")
    r.status, r.headers["retry-after"], r.json, r.alpn

http: "2" offers only h2 in ALPN (the request fails if the server does
not pick it), "1.1" offers only http/1.1. chunked=True (HTTP/1.1 only)
sends the body chunked instead of with a Content-Length; length=False
(HTTP/2 only) leaves content-length out.
"""

import http.client
import json
import socket
import ssl
import urllib.parse

import h2.config
import h2.connection
import h2.events


class Response:
    def __init__(self, status, headers, body, alpn):
        self.status = status
        self.headers = headers          # lowercase names
        self.body = body
        self.alpn = alpn

    @property
    def json(self):
        return json.loads(self.body)

    def __repr__(self):
        return "Response(%s %r %r)" % (self.status, self.headers,
                                       self.body[:200])


def _context(ca_file, alpn):
    ctx = ssl.create_default_context(cafile=ca_file)
    ctx.set_alpn_protocols([alpn])
    return ctx


def request(url, method="POST", headers=(), body=b"", ca_file=None,
            http="2", timeout=10, chunked=False, length=True, cert=None,
            address=None):
    """cert: (certificate file, key file) to present (HTTP/2 only);
    address: connect there instead of the URL's host, whose name is still
    the one checked (HTTP/2 only)."""
    if isinstance(body, str):
        body = body.encode()
    u = urllib.parse.urlsplit(url)
    path = (u.path or "/") + ("?" + u.query if u.query else "")
    if http == "1.1":
        return _request_h1(u, method, path, headers, body, ca_file,
                           timeout, chunked)
    ctx = _context(ca_file, "h2")
    if cert:
        ctx.load_cert_chain(*cert)
    raw = socket.create_connection((address or u.hostname, u.port),
                                   timeout=timeout)
    sock = ctx.wrap_socket(raw, server_hostname=u.hostname)
    try:
        if sock.selected_alpn_protocol() != "h2":
            raise ConnectionError("server did not pick h2")
        conn = h2.connection.H2Connection(h2.config.H2Configuration(
            client_side=True, header_encoding="utf-8"))
        conn.initiate_connection()
        hdrs = [(":method", method), (":path", path), (":scheme", "https"),
                (":authority", u.netloc)]
        hdrs += [(k.lower(), v) for k, v in headers]
        if body and length:
            hdrs.append(("content-length", str(len(body))))
        conn.send_headers(1, hdrs, end_stream=not body)
        if body:
            conn.send_data(1, body, end_stream=True)
        sock.sendall(conn.data_to_send())
        status, rh, rb = None, {}, bytearray()
        while True:
            data = sock.recv(65536)
            if not data:
                raise ConnectionError("connection closed mid-answer")
            for ev in conn.receive_data(data):
                if isinstance(ev, h2.events.ResponseReceived):
                    for k, v in ev.headers:
                        if k == ":status":
                            status = int(v)
                        else:
                            rh[k] = v
                elif isinstance(ev, h2.events.DataReceived):
                    rb.extend(ev.data)
                    conn.acknowledge_received_data(
                        ev.flow_controlled_length, ev.stream_id)
                elif isinstance(ev, h2.events.StreamEnded):
                    conn.close_connection()
                    sock.sendall(conn.data_to_send())
                    return Response(status, rh, bytes(rb), "h2")
                elif isinstance(ev, h2.events.StreamReset):
                    raise ConnectionError("stream reset")
            out = conn.data_to_send()
            if out:
                sock.sendall(out)
    finally:
        sock.close()


def _request_h1(u, method, path, headers, body, ca_file, timeout, chunked):
    c = http.client.HTTPSConnection(u.hostname, u.port, timeout=timeout,
                                    context=_context(ca_file, "http/1.1"))
    try:
        c.putrequest(method, path)
        for k, v in headers:
            c.putheader(k, v)
        if chunked:
            c.putheader("Transfer-Encoding", "chunked")
            c.endheaders()
            if body:
                c.send(b"%x\r\n%s\r\n" % (len(body), body))
            c.send(b"0\r\n\r\n")
        else:
            if body or method == "POST":
                c.putheader("Content-Length", str(len(body)))
            c.endheaders(body or None)
        r = c.getresponse()
        alpn = c.sock.selected_alpn_protocol()
        return Response(r.status, {k.lower(): v for k, v in r.getheaders()},
                        r.read(), alpn)
    finally:
        c.close()
