"""A fake Web Push service (RFC 8030 / 8291 / 8292, UnifiedPush) for tests.

It checks what a push service checks (docs/push-providers.md §3),
and also plays the user agent: it holds each subscription's private key
and auth secret and decrypts every payload, so a test sees what the
device would see. 127.0.0.1 (or another loopback address) only:

    pki = make_pki(tmpdir)                       # pki.py, the test CA
    wp = FakeWebPush(pki).start()                # HTTPS; tls=False: http
    sub = wp.subscribe()                         # a fresh subscription
    sub.token    # webpush:https://127.0.0.1:<port>/push/<id>|<p256dh>|<auth>
    wp.set_replies(sub, 429, (429, {"Retry-After": "2"}), 201)  # last repeats
    reqs = wp.wait_for(1)                        # or wait_for(pred)
    reqs[0].payload == b"ping"; reqs[0].vapid["sub"]
    wp.unsubscribe(sub)                          # now 410
    wp.connections                               # TCP connections accepted
    wp.stop()

FakeWebPush(pki=None, tls=True, host="127.0.0.1", port=0, http2=True,
            vapid_public_key=None, default=201, max_body=4096,
            decrypt_failure_status=400, strict_record_size=False,
            exp_max=86400, public_host=None)
  pki             pki.Pki: its CA signs the fake's server certificate
                  (made here, SANs 127.0.0.1, 127.0.0.2, ::1, localhost);
                  required with tls=True; ca_file is the CA to trust
  tls             False: plain http (HTTP/1.1, or h2c with prior knowledge)
                  for --webpush-allow-private tests
  host            the address to listen on and put in endpoints: an IPv4
                  or IPv6 loopback literal, or "localhost" (listens on
                  127.0.0.1); the origin VAPID's aud must name is
                  scheme://host:port (IPv6 in brackets, lower case);
                  "0.0.0.0" listens on every IPv4 address (a container)
  public_host     the host name for endpoints, origin and VAPID's aud
                  instead of host (e.g. "fakes"); the server certificate
                  names it too
  port            0: OS-chosen, kept across stop()/start()
  http2           offer "h2" by ALPN (and accept h2c prior knowledge in
                  plain mode) besides HTTP/1.1
  vapid_public_key  the application server key (65-byte point or its
                  base64url) new subscriptions are bound to, as a browser
                  binds one to applicationServerKey; None: bound to the k
                  of the first valid push (like a subscription made with
                  that key), see subscribe()
  default         the answer for unscripted subscriptions (201)
  max_body        larger bodies get 413 (RFC 8030 §7.2: 4096 must pass)
  decrypt_failure_status  status for a body the UA cannot decrypt (400);
                  None answers 201 like a real push service (which cannot
                  read payloads) and only records decrypt_error
  strict_record_size  require rs > record length (RFC 8291 §4's "greater
                  than"); False accepts rs == record length as browsers and
                  RFC 8188 do (notifiers' rs 21 for "ping")
  exp_max         the most seconds exp may be ahead (RFC 8292 §2: 24 h)

Checks, in this order (the first failure answers; JSON error bodies in
Mozilla autopush's shape {"code", "errno", "error", "message"}):
  path /push/<id>                     else 404 (errno 102, invalid URL)
  <id> a known subscription           else 404 (errno 102); unsubscribed:
                                      410 (errno 106)
  GET                                 200 {"unifiedpush":{"version":1}}
                                      (UnifiedPush discovery)
  method POST                         else 405
  Authorization present, once, "vapid t=..., k=..." with both params
                                      else 401 (errno 109)
  k: base64url of an uncompressed P-256 point
                                      else 403 (errno 109)
  k is the subscription's key (when bound)
                                      else 401 (errno 109; push-providers
                                      §3.1: "k not the key the subscription
                                      is bound to")
  JWT: three base64url parts, header {"alg":"ES256"} ("typ" JWT if any),
  claims an object, raw r||s signature (64 bytes, DER refused) valid for
  k, aud == the fake's origin, exp an integer in (now, now + exp_max],
  sub a "mailto:" or "https:" URI       else 403 (errno 109)
  TTL present, a non-negative integer  else 400 (errno 111 / 112)
  Urgency absent or very-low|low|normal|high
                                      else 400 (errno 114)
  Topic absent or <= 32 base64url characters
                                      else 400 (errno 113)
  body <= max_body                    else 413 (errno 104)
  body non-empty: Content-Encoding aes128gcm (once)
                                      else 400 (errno 110)
  body: one aes128gcm record (RFC 8188) that the subscription's private
  key and auth decrypt (RFC 8291), idlen 65, rs >= 18, record <= rs,
  delimiter 0x02 after the zero padding
                                      else decrypt_failure_status (400,
                                      errno 110)

A request that passes is answered from, in this order: the
subscription's scripted replies (set_replies; the last one repeats),
`responder(req)` (None: go on), `default`. A reply is a status, (status,
headers), (status, headers, body) or a dict with keys status, headers,
body, delay (seconds before answering). 201 answers carry Location
(/m/<message id>) and TTL, like RFC 8030 §5. Errors scripted without a
body get the JSON body above (errno 106 for 410, 102 for 404).

Recorded per request (WebPushRequest, in `requests`): t, conn,
http_version ("1.1" or "2"), method, path, sub_id, headers (lower-case
names, last value wins; "authorization" included: these are test keys),
header_list, body, payload (decrypted bytes or None), decrypt_error, rs,
vapid (dict: k, aud, exp, sub, header, claims, or None), ttl, urgency,
topic, status, reason. Counters: connections (TCP accepts: an SSRF test
asserts this stays 0), tls_failures, alpn (per connection), errors
(exceptions inside the fake: must stay empty).

Not modelled: message storage and delivery receipts, Topic replacement,
TTL expiry, per-subscription rate limits (script 429), Prefer:
respond-async, the legacy "aesgcm" coding and "WebPush" auth scheme
(refused as above).
"""

import base64
import datetime
import http.server
import ipaddress
import json
import os
import re
import secrets
import selectors
import shutil
import socket
import ssl
import tempfile
import threading
import time

import h2.config
import h2.connection
import h2.events
import h2.exceptions
from cryptography import x509
from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import \
    encode_dss_signature
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from fake_wait import wait_for_requests

H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
URGENCIES = frozenset({"very-low", "low", "normal", "high"})
HEADER_BYTES = 16 + 4 + 1 + 65
TAG_BYTES = 16
_B64URL_RE = re.compile(r"[A-Za-z0-9_-]*\Z")
_PATH_RE = re.compile(r"/push/([A-Za-z0-9_-]{1,128})\Z")
_MAX_READ = 1 << 20
_IDLE_TIMEOUT = 30.0
_PHRASES = {200: "OK", 201: "Created", 400: "Bad Request",
            401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
            405: "Method Not Allowed", 410: "Gone",
            413: "Payload Too Large", 429: "Too Many Requests",
            500: "Internal Server Error", 502: "Bad Gateway",
            503: "Service Unavailable"}
_DEFAULT_ERRNO = {404: 102, 410: 106, 413: 104, 429: 201, 500: 999,
                  503: 202}


class WebPushWaitTimeout(AssertionError):
    pass


class DecryptError(ValueError):
    pass


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(s):
    if isinstance(s, bytes):
        s = s.decode("ascii")
    if not _B64URL_RE.match(s) or len(s) % 4 == 1:
        raise ValueError("not base64url")
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def point_bytes(public_key):
    return public_key.public_bytes(serialization.Encoding.X962,
                                   serialization.PublicFormat.
                                   UncompressedPoint)


def point_key(data):
    """An EllipticCurvePublicKey from a 65-byte uncompressed P-256 point
    (ValueError otherwise: compressed and hybrid forms too)."""
    if len(data) != 65 or data[0] != 4:
        raise ValueError("not an uncompressed P-256 point")
    return ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(),
                                                        data)


def _hkdf(salt, ikm, info, length):
    return HKDF(hashes.SHA256(), length, salt, info).derive(ikm)


def decrypt_aes128gcm(body, ua_private, auth, strict_record_size=False):
    """Decrypt an RFC 8291 body as a user agent does: returns (plaintext,
    rs) or raises DecryptError. One record only (RFC 8291 §4)."""
    if len(body) < HEADER_BYTES + 1 + TAG_BYTES:
        raise DecryptError("body of %d bytes is shorter than a header and "
                           "one record" % len(body))
    salt, rs, idlen = body[:16], int.from_bytes(body[16:20], "big"), body[20]
    if idlen != 65:
        raise DecryptError("idlen %d, want 65 (the sender's P-256 key)"
                           % idlen)
    keyid, record = body[21:86], body[86:]
    if rs < 18:
        raise DecryptError("rs %d below RFC 8188's 18" % rs)
    if len(record) > rs:
        raise DecryptError("%d-byte record exceeds rs %d: more than one "
                           "record" % (len(record), rs))
    if strict_record_size and len(record) >= rs:
        raise DecryptError("rs %d not greater than the %d-byte record "
                           "(RFC 8291 §4)" % (rs, len(record)))
    try:
        as_public = point_key(keyid)
    except ValueError as e:
        raise DecryptError("keyid: %s" % e)
    ua_public = point_bytes(ua_private.public_key())
    secret = ua_private.exchange(ec.ECDH(), as_public)
    ikm = _hkdf(auth, secret, b"WebPush: info\x00" + ua_public + keyid, 32)
    cek = _hkdf(salt, ikm, b"Content-Encoding: aes128gcm\x00", 16)
    nonce = _hkdf(salt, ikm, b"Content-Encoding: nonce\x00", 12)
    try:
        padded = AESGCM(cek).decrypt(nonce, bytes(record), None)
    except InvalidTag:
        raise DecryptError("AES-GCM tag mismatch (wrong keys or corrupted "
                           "ciphertext)")
    end = len(padded)
    while end > 0 and padded[end - 1] == 0:
        end -= 1
    if end == 0 or padded[end - 1] != 2:
        raise DecryptError("no last-record delimiter 0x02")
    return padded[:end - 1], rs


class Subscription:
    """A push subscription as a browser or distributor makes it."""

    def __init__(self, fake, sub_id, app_server_key):
        self.id = sub_id
        self.private_key = ec.generate_private_key(ec.SECP256R1())
        self.ua_public = point_bytes(self.private_key.public_key())
        self.auth = secrets.token_bytes(16)
        self.app_server_key = app_server_key    # bytes, None: first k
        self.endpoint = "%s/push/%s" % (fake.origin, sub_id)
        self.active = True

    @property
    def p256dh(self):
        return b64url(self.ua_public)

    @property
    def auth_b64(self):
        return b64url(self.auth)

    @property
    def token(self):
        """The decrypted chatmail token (docs/push-providers.md §5.1)."""
        return "webpush:%s|%s|%s" % (self.endpoint, self.p256dh,
                                      self.auth_b64)

    def __repr__(self):
        return "Subscription(%s active=%s)" % (self.id, self.active)


class WebPushRequest:
    """One request that reached the fake (see the module docstring)."""
    __slots__ = ("t", "conn", "http_version", "method", "path", "sub_id",
                 "headers", "header_list", "body", "payload",
                 "decrypt_error", "rs", "vapid", "ttl", "urgency", "topic",
                 "status", "reason")

    def __init__(self, **kw):
        for k in self.__slots__:
            setattr(self, k, kw.get(k))

    def __repr__(self):
        return ("WebPushRequest(conn=%s HTTP/%s %s %s -> %s %s)" %
                (self.conn, self.http_version, self.method, self.path,
                 self.status, self.reason or ""))


class ConnInfo:
    __slots__ = ("id", "peer", "opened", "closed", "tls", "alpn",
                 "http_version", "requests")

    def __init__(self, cid, peer, tls):
        self.id = cid
        self.peer = peer
        self.opened = time.time()
        self.closed = None
        self.tls = tls
        self.alpn = None
        self.http_version = None
        self.requests = 0

    def __repr__(self):
        return "ConnInfo(%s)" % ", ".join(
            "%s=%r" % (k, getattr(self, k)) for k in self.__slots__)


class _Reject(Exception):
    def __init__(self, status, errno, message):
        super().__init__(message)
        self.status = status
        self.errno = errno
        self.message = message


def _error_body(status, errno, message):
    return json.dumps({"code": status, "errno": errno,
                       "error": _PHRASES.get(status, "Error"),
                       "message": message}).encode()


def make_server_cert(pki, directory, hosts=("127.0.0.1", "127.0.0.2",
                                            "::1", "localhost")):
    """A server certificate signed by pki's CA for the loopback names;
    returns (cert path, key path) in directory."""
    with open(pki.ca_cert, "rb") as f:
        ca_cert = x509.load_pem_x509_certificate(f.read())
    with open(pki.ca_key, "rb") as f:
        ca_key = serialization.load_pem_private_key(f.read(), None)
    key = ec.generate_private_key(ec.SECP256R1())
    san = []
    for h in hosts:
        try:
            san.append(x509.IPAddress(ipaddress.ip_address(h)))
        except ValueError:
            san.append(x509.DNSName(h))
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(
                NameOID.COMMON_NAME, "fake web push")]))
            .issuer_name(ca_cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None),
                           True)
            .add_extension(x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH]), False)
            .add_extension(x509.SubjectAlternativeName(san), False)
            .sign(ca_key, hashes.SHA256()))
    cert_path = os.path.join(directory, "webpush-server.pem")
    key_path = os.path.join(directory, "webpush-server-key.pem")
    with open(cert_path, "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    with open(key_path, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM,
                                  serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    return cert_path, key_path


class FakeWebPush:
    """See the module docstring. Attributes may be read from the test
    thread; change scripting attributes (default, responder) between
    requests."""

    def __init__(self, pki=None, tls=True, host="127.0.0.1", port=0,
                 http2=True, vapid_public_key=None, default=201,
                 max_body=4096, decrypt_failure_status=400,
                 strict_record_size=False, exp_max=86400, public_host=None):
        if tls and pki is None:
            raise ValueError("TLS needs the test PKI (pki.make_pki)")
        self.pki = pki
        self.tls = tls
        self.host = host
        self.public_host = public_host
        self.port = port
        self.http2 = http2
        if isinstance(vapid_public_key, str):
            vapid_public_key = b64url_decode(vapid_public_key)
        self.vapid_public_key = vapid_public_key
        self.default = default
        self.responder = None
        self.max_body = max_body
        self.decrypt_failure_status = decrypt_failure_status
        self.strict_record_size = strict_record_size
        self.exp_max = exp_max
        self.subscriptions = {}
        self._replies = {}
        self._lock = threading.Condition()
        self._thread = None
        self._certdir = None
        self._reset_stats()

    # ---- public ------------------------------------------------------------

    @property
    def scheme(self):
        return "https" if self.tls else "http"

    @property
    def url_host(self):
        h = (self.public_host or self.host).lower()
        return "[%s]" % h if ":" in h else h

    @property
    def origin(self):
        """What VAPID's aud must be (RFC 6454 serialisation)."""
        if self.port == 0:
            raise RuntimeError("start() first: the port is not known")
        return "%s://%s:%d" % (self.scheme, self.url_host, self.port)

    url = origin

    @property
    def ca_file(self):
        return self.pki.ca_cert if self.pki else None

    def subscribe(self, app_server_key="default", restricted=True):
        """A new subscription. app_server_key: the VAPID key (65-byte
        point or base64url) it is bound to; "default" takes the fake's
        vapid_public_key, and if that is None the k of the first push that
        passes is bound (restricted=False: never bound, any valid k)."""
        if self._thread is None:
            raise RuntimeError("start() first: endpoints need the port")
        if app_server_key == "default":
            app_server_key = self.vapid_public_key
        if isinstance(app_server_key, str):
            app_server_key = b64url_decode(app_server_key)
        if app_server_key is not None:
            point_key(app_server_key)       # ValueError if not a point
        sub = Subscription(self, secrets.token_urlsafe(20), app_server_key)
        sub.restricted = restricted
        with self._lock:
            self.subscriptions[sub.id] = sub
        return sub

    def unsubscribe(self, sub):
        """From now on pushes to sub get 410 Gone."""
        with self._lock:
            self.subscriptions[sub.id].active = False

    def set_replies(self, sub, *replies):
        """Answers for sub's next requests that pass the checks, in order;
        the last one repeats."""
        with self._lock:
            self._replies[sub.id] = list(replies)

    def reset(self):
        """Forget requests, counters and scripts (subscriptions stay)."""
        with self._lock:
            self._replies.clear()
            self._reset_stats()

    def received(self, sub=None, status=None):
        """Requests (for sub, with status) recorded so far."""
        with self._lock:
            return [r for r in self.requests
                    if (sub is None or r.sub_id == sub.id) and
                    (status is None or r.status == status)]

    def payloads(self, sub):
        """Decrypted payloads delivered to sub (2xx answers)."""
        return [r.payload for r in self.received(sub)
                if r.status is not None and 200 <= r.status < 300]

    def wait_for(self, count=None, pred=None, timeout=10.0):
        """Wait until `count` requests are recorded (returns the first
        count) or pred(requests) is truthy (returns its value); pred runs on
        every change. Raises WebPushWaitTimeout."""
        return wait_for_requests(
            self._lock, lambda: self.requests, count, pred, timeout,
            timed_out=lambda t: WebPushWaitTimeout(
                "fake Web Push: timed out after %.1fs (%d requests, "
                "%d connections, TLS failures %r)" % (
                    t, len(self.requests), self.connections,
                    self.tls_failures[-3:])))

    def start(self):
        """Listen (again on the same port after a stop) and serve."""
        if self._thread is not None:
            raise RuntimeError("already running")
        bind = "127.0.0.1" if self.host == "localhost" else self.host
        family = socket.AF_INET6 if ":" in bind else socket.AF_INET
        ls = socket.socket(family, socket.SOCK_STREAM)
        ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        ls.bind((bind, self.port))
        ls.listen(128)
        self.port = ls.getsockname()[1]
        self._ctx = None
        if self.tls:
            if self._certdir is None:
                self._certdir = tempfile.mkdtemp(prefix="fake-webpush-")
                hosts = ("127.0.0.1", "127.0.0.2", "::1", "localhost")
                if self.public_host:
                    hosts += (self.public_host,)
                self._cert = make_server_cert(self.pki, self._certdir, hosts)
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.minimum_version = ssl.TLSVersion.TLSv1_2
            ctx.load_cert_chain(*self._cert)
            ctx.set_alpn_protocols(["h2", "http/1.1"] if self.http2
                                   else ["http/1.1"])
            self._ctx = ctx
        self._lsock = ls
        self._live = {}
        self._workers = []
        self._stopping = False
        self._wake_r, self._wake_w = socket.socketpair()
        self._thread = threading.Thread(target=self._accept_loop,
                                        name="fake-webpush", daemon=True)
        self._thread.start()
        return self

    def stop(self):
        """Close the listener and every connection; wait for the threads."""
        if self._thread is None:
            return
        self._stopping = True
        self._wake_w.send(b"x")
        self._thread.join(timeout=10)
        if self._thread.is_alive():
            raise RuntimeError("fake Web Push accept loop did not stop")
        self._thread = None
        with self._lock:
            live = list(self._live.values())
        for s in live:
            try:
                # The plain socket's shutdown, also for an SSLSocket (whose
                # own would unwrap it under the worker's feet): the worker's
                # next read sees EOF and the thread ends.
                socket.socket.shutdown(s, socket.SHUT_RDWR)
            except OSError:
                pass
        for w in self._workers:
            w.join(timeout=10)
        for s in (self._lsock, self._wake_r, self._wake_w):
            s.close()

    def close(self):
        """stop() and remove the certificate directory."""
        self.stop()
        if self._certdir is not None:
            shutil.rmtree(self._certdir, ignore_errors=True)
            self._certdir = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.close()

    # ---- internals: connections --------------------------------------------

    def _reset_stats(self):
        self.requests = []
        self.conns = {}
        self.connections = 0
        self.tls_failures = []
        self.protocol_errors = 0
        self.errors = []
        self._next_conn = 1

    def _notify(self):
        with self._lock:
            self._lock.notify_all()

    def _accept_loop(self):
        sel = selectors.DefaultSelector()
        sel.register(self._lsock, selectors.EVENT_READ, "listen")
        sel.register(self._wake_r, selectors.EVENT_READ, "wake")
        try:
            while not self._stopping:
                for key, _ in sel.select():
                    if key.data == "wake" or self._stopping:
                        return
                    try:
                        sock, peer = self._lsock.accept()
                    except OSError:
                        continue
                    with self._lock:
                        cid = self._next_conn
                        self._next_conn += 1
                        info = ConnInfo(cid, peer, self.tls)
                        self.conns[cid] = info
                        self.connections += 1
                        self._live[cid] = sock
                        self._lock.notify_all()
                    w = threading.Thread(target=self._serve,
                                         args=(sock, info), daemon=True,
                                         name="fake-webpush-%d" % cid)
                    self._workers.append(w)
                    w.start()
        finally:
            sel.close()

    def _serve(self, sock, info):
        try:
            sock.settimeout(_IDLE_TIMEOUT)
            if self.tls:
                try:
                    sock = self._ctx.wrap_socket(sock, server_side=True)
                except (ssl.SSLError, OSError) as e:
                    with self._lock:
                        self.tls_failures.append(str(e))
                        self._lock.notify_all()
                    return
                with self._lock:
                    self._live[info.id] = sock
                info.alpn = sock.selected_alpn_protocol()
                h2_wanted = info.alpn == "h2"
            else:
                h2_wanted = self.http2 and self._peek_preface(sock)
            info.http_version = "2" if h2_wanted else "1.1"
            if h2_wanted:
                self._serve_h2(sock, info)
            else:
                _Http1Handler(sock, info.peer, (self, info))
        except Exception as e:      # noqa: BLE001 - recorded, test fails
            if not self._stopping and not isinstance(e, (OSError,
                                                         socket.timeout)):
                with self._lock:
                    self.errors.append(repr(e))
        finally:
            info.closed = time.time()
            with self._lock:
                self._live.pop(info.id, None)
                self._lock.notify_all()
            try:
                sock.close()
            except OSError:
                pass

    @staticmethod
    def _peek_preface(sock):
        """Whether a plain connection starts with the HTTP/2 preface."""
        got = b""
        while len(got) < len(H2_PREFACE):
            got = sock.recv(len(H2_PREFACE), socket.MSG_PEEK)
            if not got or not H2_PREFACE.startswith(got):
                return False
            if len(got) < len(H2_PREFACE):
                time.sleep(0.001)   # the rest of the preface is in flight
        return True

    def _serve_h2(self, sock, info):
        conn = h2.connection.H2Connection(h2.config.H2Configuration(
            client_side=False, header_encoding=None))
        send_lock = threading.Lock()
        streams = {}

        def flush():
            out = conn.data_to_send()
            if out:
                sock.sendall(out)

        def answer(sid, reply):
            status, headers, body = reply
            with send_lock:
                try:
                    hs = [(":status", str(status))] + [
                        (k.lower(), str(v)) for k, v in headers]
                    hs.append(("content-length", str(len(body))))
                    conn.send_headers(sid, hs, end_stream=not body)
                    if body:
                        conn.send_data(sid, body, end_stream=True)
                    flush()
                except (h2.exceptions.H2Error, OSError):
                    pass    # the client reset the stream or went away

        with send_lock:
            conn.initiate_connection()
            flush()
        while not self._stopping:
            data = sock.recv(65536)
            if not data:
                return
            with send_lock:
                try:
                    events = conn.receive_data(data)
                except h2.exceptions.ProtocolError:
                    self.protocol_errors += 1
                    flush()
                    return
                flush()
            for ev in events:
                if isinstance(ev, h2.events.RequestReceived):
                    streams[ev.stream_id] = (ev.headers, bytearray())
                elif isinstance(ev, h2.events.DataReceived):
                    st = streams.get(ev.stream_id)
                    if st is not None and len(st[1]) < _MAX_READ:
                        st[1].extend(ev.data)
                    with send_lock:
                        conn.acknowledge_received_data(
                            ev.flow_controlled_length, ev.stream_id)
                        flush()
                elif isinstance(ev, h2.events.StreamEnded):
                    st = streams.pop(ev.stream_id, None)
                    if st is None:
                        continue
                    hdrs = [(k.decode("latin-1").lower(),
                             v.decode("latin-1")) for k, v in st[0]]
                    pseudo = dict(h for h in hdrs if h[0].startswith(":"))
                    reply, delay = self._handle(
                        info, "2", pseudo.get(":method", ""),
                        pseudo.get(":path", ""),
                        [h for h in hdrs if not h[0].startswith(":")],
                        bytes(st[1]))
                    if delay:
                        t = threading.Timer(delay, answer,
                                            (ev.stream_id, reply))
                        t.daemon = True
                        t.start()
                    else:
                        answer(ev.stream_id, reply)
                elif isinstance(ev, h2.events.StreamReset):
                    streams.pop(ev.stream_id, None)
                elif isinstance(ev, h2.events.ConnectionTerminated):
                    return

    # ---- internals: requests -----------------------------------------------

    def _handle(self, info, version, method, path, header_list, body):
        """Check and answer one request: ((status, headers, body), delay)."""
        headers = {}
        for k, v in header_list:
            headers[k] = v
        req = WebPushRequest(t=time.time(), conn=info.id,
                             http_version=version, method=method, path=path,
                             headers=headers, header_list=header_list,
                             body=body)
        info.requests += 1
        delay = 0
        try:
            sub = self._check(req, header_list, headers, body)
            if method == "GET":
                reply = (200, [("content-type", "application/json")],
                         b'{"unifiedpush":{"version":1}}')
            else:
                reply, delay = self._choose(req, sub)
        except _Reject as r:
            req.reason = r.message
            reply = (r.status, [("content-type", "application/json")],
                     _error_body(r.status, r.errno, r.message))
        req.status = reply[0]
        with self._lock:
            self.requests.append(req)
            self._lock.notify_all()
        return reply, delay

    def _check(self, req, header_list, headers, body):
        m = _PATH_RE.match(req.path.split("?", 1)[0])
        if not m:
            raise _Reject(404, 102, "invalid URL endpoint")
        req.sub_id = m.group(1)
        with self._lock:
            sub = self.subscriptions.get(req.sub_id)
        if sub is None:
            raise _Reject(404, 102, "invalid URL endpoint")
        if not sub.active:
            raise _Reject(410, 106, "subscription expired or unsubscribed")
        if req.method == "GET":
            return sub
        if req.method != "POST":
            raise _Reject(405, 0, "only POST")
        self._check_vapid(req, sub, header_list, headers)
        ttl = headers.get("ttl")
        if ttl is None:
            raise _Reject(400, 111, "missing TTL header")
        if not re.fullmatch(r"[0-9]{1,10}", ttl):
            raise _Reject(400, 112, "invalid TTL header")
        req.ttl = int(ttl)
        req.urgency = headers.get("urgency")
        if req.urgency is not None and req.urgency not in URGENCIES:
            raise _Reject(400, 114, "invalid Urgency header")
        req.topic = headers.get("topic")
        if req.topic is not None and (len(req.topic) > 32 or
                                      not _B64URL_RE.match(req.topic)):
            raise _Reject(400, 113, "invalid Topic header")
        if len(body) > self.max_body:
            raise _Reject(413, 104, "payload of %d bytes, at most %d" %
                          (len(body), self.max_body))
        if not body:
            return sub
        encodings = [v for k, v in header_list if k == "content-encoding"]
        if encodings != ["aes128gcm"]:
            raise _Reject(400, 110, "Content-Encoding %r, want aes128gcm" %
                          encodings)
        try:
            req.payload, req.rs = decrypt_aes128gcm(
                body, sub.private_key, sub.auth, self.strict_record_size)
        except DecryptError as e:
            req.decrypt_error = str(e)
            if self.decrypt_failure_status is not None:
                raise _Reject(self.decrypt_failure_status, 110,
                              "undecryptable: %s" % e)
        return sub

    def _check_vapid(self, req, sub, header_list, headers):
        auths = [v for k, v in header_list if k == "authorization"]
        if len(auths) != 1:
            raise _Reject(401, 109, "want one Authorization header, got %d"
                          % len(auths))
        scheme, _, rest = auths[0].strip().partition(" ")
        if scheme.lower() != "vapid":
            raise _Reject(401, 109, "Authorization scheme %r, want vapid" %
                          scheme[:20])
        params = {}
        for part in rest.split(","):
            name, eq, value = part.strip().partition("=")
            if eq:
                params[name.strip().lower()] = value.strip()
        if "t" not in params or "k" not in params:
            raise _Reject(401, 109, "vapid without t= and k=")
        try:
            k = b64url_decode(params["k"])
            key = point_key(k)
        except ValueError:
            raise _Reject(403, 109, "k is not a base64url P-256 point")
        req.vapid = {"k": params["k"], "header": None, "claims": None}
        header, claims = self._verify_jwt(params["t"], key)
        req.vapid.update(header=header, claims=claims, aud=claims.get("aud"),
                         exp=claims.get("exp"), sub=claims.get("sub"))
        with self._lock:
            if sub.app_server_key is None and sub.restricted:
                sub.app_server_key = k      # bound by its first push
            bound = sub.app_server_key
        if sub.restricted and bound != k:
            raise _Reject(401, 109, "k is not the key the subscription was "
                          "made with")

    def _verify_jwt(self, jwt, key):
        parts = jwt.split(".")
        if len(parts) != 3:
            raise _Reject(403, 109, "JWT is not three parts")
        try:
            header = json.loads(b64url_decode(parts[0]))
            claims = json.loads(b64url_decode(parts[1]))
            sig = b64url_decode(parts[2])
        except ValueError:
            raise _Reject(403, 109, "JWT parts are not base64url JSON")
        if not isinstance(header, dict) or header.get("alg") != "ES256" or \
                header.get("typ", "JWT") != "JWT":
            raise _Reject(403, 109, "JWT header %r, want alg ES256" %
                          (header,))
        if not isinstance(claims, dict):
            raise _Reject(403, 109, "JWT claims are not an object")
        if len(sig) != 64:
            raise _Reject(403, 109, "JWT signature of %d bytes, want raw "
                          "r||s (64)" % len(sig))
        der = encode_dss_signature(int.from_bytes(sig[:32], "big"),
                                   int.from_bytes(sig[32:], "big"))
        try:
            key.verify(der, (parts[0] + "." + parts[1]).encode("ascii"),
                       ec.ECDSA(hashes.SHA256()))
        except InvalidSignature:
            raise _Reject(403, 109, "JWT signature does not verify with k")
        if claims.get("aud") != self.origin:
            raise _Reject(403, 109, "JWT aud %r, want %r" %
                          (claims.get("aud"), self.origin))
        exp, now = claims.get("exp"), time.time()
        if not isinstance(exp, int) or isinstance(exp, bool):
            raise _Reject(403, 109, "JWT exp is not an integer")
        if exp <= now:
            raise _Reject(403, 109, "JWT expired")
        if exp > now + self.exp_max:
            raise _Reject(403, 109, "JWT exp more than %d s ahead" %
                          self.exp_max)
        sub = claims.get("sub")
        if not isinstance(sub, str) or not (
                sub.startswith("mailto:") and len(sub) > 7 or
                sub.startswith("https:") and len(sub) > 6):
            raise _Reject(403, 109, "JWT sub %r is not a mailto: or https: "
                          "URI" % (sub,))
        return header, claims

    def _choose(self, req, sub):
        with self._lock:
            script = self._replies.get(sub.id)
            reply = None
            if script:
                reply = script.pop(0) if len(script) > 1 else script[0]
        if reply is None and self.responder is not None:
            reply = self.responder(req)
        if reply is None:
            reply = self.default
        delay = 0
        if isinstance(reply, dict):
            delay = reply.get("delay", 0)
            reply = (reply.get("status", 201), reply.get("headers") or {},
                     reply.get("body"))
        if isinstance(reply, int):
            reply = (reply,)
        status = reply[0]
        headers = list((reply[1] if len(reply) > 1 and reply[1] else
                        {}).items())
        body = reply[2] if len(reply) > 2 else None
        if isinstance(body, str):
            body = body.encode()
        if status == 201:
            headers.append(("Location", "%s/m/%s" % (
                self.origin, secrets.token_urlsafe(12))))
            headers.append(("TTL", str(req.ttl)))
        if body is None:
            body = b"" if status < 400 else _error_body(
                status, _DEFAULT_ERRNO.get(status, 999),
                _PHRASES.get(status, "scripted"))
            if status >= 400:
                headers.append(("Content-Type", "application/json"))
        req.reason = "scripted" if script else None
        return (status, headers, body), delay


class _Http1Handler(http.server.BaseHTTPRequestHandler):
    """HTTP/1.1 with keep-alive on one accepted socket; the fake's checks
    in FakeWebPush._handle. `server` is (fake, ConnInfo)."""
    protocol_version = "HTTP/1.1"
    server_version = "fake-webpush"

    def log_message(self, *args):
        pass

    def _read_body(self):
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            body = bytearray()
            while True:
                size = int(self.rfile.readline(64).split(b";")[0], 16)
                if size == 0:
                    while self.rfile.readline(8192) not in (b"\r\n", b"\n",
                                                            b""):
                        pass
                    return bytes(body)
                if len(body) + size > _MAX_READ:
                    raise ValueError("chunked body too large")
                body += self.rfile.read(size)
                self.rfile.readline(8)
        n = int(self.headers.get("Content-Length", "0"))
        if n < 0 or n > _MAX_READ:
            raise ValueError("Content-Length %d" % n)
        return self.rfile.read(n)

    def _dispatch(self):
        fake, info = self.server
        try:
            body = self._read_body()
        except ValueError:
            self.send_error(413)
            self.close_connection = True
            return
        header_list = [(k.lower(), v) for k, v in self.headers.items()]
        (status, headers, rbody), delay = fake._handle(
            info, "1.1", self.command, self.path, header_list, body)
        if delay:
            time.sleep(delay)
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(rbody)))
        self.end_headers()
        if rbody and self.command != "HEAD":
            self.wfile.write(rbody)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = \
        do_OPTIONS = _dispatch
