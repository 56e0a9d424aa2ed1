"""A fake Apple Push Notification service (HTTP/2 provider API) for tests.

It checks what Apple checks (docs/push-providers.md section 1) and
answers like Apple, on 127.0.0.1, with the test PKI of pki.py:

    pki = make_pki(tmpdir)
    apns = FakeApns(pki, mode="cert").start()   # "token" | "either"
    apns.url, apns.ca_file                      # https://127.0.0.1:<port>
    apns.set_replies(token, (410, "Unregistered"), 200)  # last repeats
    apns.default = (200, None)                  # everything else
    reqs = apns.wait_for(3)                     # or wait_for(pred)
    apns.goaway("Shutdown"); apns.stop()

FakeApns(pki, mode="cert", port=0, tls=True, max_concurrent_streams=1000,
         token_initial_streams=1, streams_after_error=None,
         min_token_interval=1200, token_max_age=3600, token_topics=None,
         strict=True, sandbox=False, default=(200, None), delay=0.0,
         validate_headers=True, host="127.0.0.1", public_host=None)
  port                  0: OS-chosen; kept across stop()/start()
  host                  the IPv4 address to listen on ("0.0.0.0" in a
                        container: tests/docker)
  public_host           the host name `url` gives (default host), e.g.
                        "fakes"; the server certificate must name it
                        (pki.make_pki(server_names=...))
  tls                   False: h2c prior knowledge (token mode only)
  max_concurrent_streams  SETTINGS_MAX_CONCURRENT_STREAMS
  token_initial_streams   the same before the first valid JWT (Apple: 1;
                        None: no such phase)
  streams_after_error   [observed] lower the limit to this after an error
                        answer, back up after the next 200 (None: off)
  min_token_interval    seconds between two new JWTs of a team (Apple: 20
                        min); token_max_age: oldest iat accepted
  token_topics          topics a JWT may push to (default pki.topic)
  strict                Apple's push-type/priority/payload consistency rules
  sandbox               add apns-unique-id to 200s, like the sandbox
  default, delay        answer and delay (s) for unscripted tokens
  validate_headers      h2's own header validation (False: ~15% faster)
Control (thread-safe, synchronous): start(), stop(), set_replies(token,
*replies), responder = fn(req) -> reply, reset(), goaway(reason,
error_code, conn_id, last_stream_id), set_max_concurrent_streams(n,
conn_id), ping(), drop_connections(), add_token_key(kid, team, public key
or .p8 path), wait_for(count | pred, timeout). url, device_url(token),
ca_file, port; conns {id: ConnInfo}, provider_tokens_for(team).

Transport: TLS >= 1.2 with ALPN "h2" only (a client that does not offer h2
completes the handshake and is disconnected at once, counted in
alpn_refused), or h2c prior knowledge with tls=False (token mode only).
One thread runs a selectors loop over non-blocking sockets; python3-h2
speaks HTTP/2 (it answers PING and acknowledges SETTINGS by itself).

Authentication, by mode:
  cert    ssl.CERT_REQUIRED against pki.ca_cert: no certificate, or one of
          another CA, fails the TLS handshake (counted in tls_failures). The
          certificate's subject UID is the connection's topic; apns-topic
          may be absent (the UID is used) or equal to it, else 400
          TopicDisallowed. An authorization header is ignored.
  token   `authorization: bearer <JWT>`: absent or not "bearer" -> 403
          MissingProviderToken; not three base64url parts, alg != ES256,
          unknown kid, iss not the kid's team, iat not an integer or more
          than 5 minutes ahead, signature not a valid raw r||s (64 bytes;
          DER is refused) -> 403 InvalidProviderToken; iat older than
          token_max_age (3600 s) -> 403 ExpiredProviderToken; another kid
          than the first one used on this connection -> 403
          UnrelatedKeyIdInToken. Per team, a JWT never seen before that
          arrives less than min_token_interval (1200 s) after the previous
          new one -> 429 TooManyProviderTokenUpdates (and it stays refused
          until the interval has passed). apns-topic is mandatory (400
          MissingTopic) and must be one of token_topics (pki.topic and its
          .voip/.complication/... variants), else 400 TopicDisallowed.
          Like Apple, a new token connection allows ONE stream
          (SETTINGS_MAX_CONCURRENT_STREAMS 1) until a request with a valid
          token, then max_concurrent_streams.
  either  client certificate optional (CERT_OPTIONAL, but one of another
          CA still fails the handshake): requests with an authorization
          header are checked as in token mode, others as in cert mode if
          the connection has a certificate, else 403 MissingProviderToken.

Request checks, in this order (first failure answers):
  :method POST                         else 405 MethodNotAllowed
  :path /3/device/<token>              else 404 BadPath; empty token 400
                                       MissingDeviceToken; token not hex
                                       of even length 400 BadDeviceToken
  apns-*/authorization headers once    else 400 DuplicateHeaders
  authentication and topic             as above (403 / 429 / 400)
  apns-id a UUID 8-4-4-4-12            else 400 BadMessageId
  apns-push-type in PUSH_TYPES         else 400 InvalidPushType
  apns-priority 1, 5 or 10             else 400 BadPriority
  apns-expiration decimal seconds      else 400 BadExpirationDate
  apns-collapse-id <= 64 bytes         else 400 BadCollapseId
  body non-empty                       else 400 PayloadEmpty
  body <= 4096 bytes (voip 5120)       else 413 PayloadTooLarge
  body a JSON object with an "aps"     else 400 PayloadEmpty (Apple has no
  object                               documented reason for bad JSON:
                                       BAD_JSON_REASON, the closest one)
  strict=True (default), rules from Apple's documentation, reasons the
  closest documented ones (Apple does not say which it sends):
  push type background: priority 5    else 400 BadPriority
    and aps content-available 1 without alert, sound, badge
                                       else 400 InvalidPushType
  push type alert: aps has an alert    else 400 InvalidPushType
  no push type, aps has only content-available (no alert/sound/badge),
    priority 10 (given or default)     400 BadPriority ("an error" per
                                       Apple's header documentation)

A request that passes is answered from, in this order: the device token's
scripted replies (set_replies; the last one repeats), `responder(req)`,
`default` (200). A reply is 200, a status (its usual reason added: 410
Unregistered with "timestamp" in ms, 429 TooManyRequests, 500
InternalServerError, ...), (status, reason), (status, reason, {"delay": s,
"timestamp": ms}), a dict with those keys, or ("goaway", reason): GOAWAY
with last-stream-id below this stream and that reason, the stream
unanswered (recorded with status 0), the connection closed once the
streams below it are answered. Error bodies are {"reason": ...}; every
answer carries `apns-id` (the request's, else a new lowercase UUID);
sandbox=True adds `apns-unique-id` to 200s, as Apple's sandbox does.
(Responses quoted in bug reports show Apple's own apns-id in upper case;
the fake makes lowercase ones.) SETTINGS: MAX_CONCURRENT_STREAMS as
configured, MAX_HEADER_LIST_SIZE 8000.

Recorded per request (ApnsRequest, in `requests`): t, conn, stream, method,
path, token, headers (lowercase names, last value wins), body, payload
(parsed JSON or None), auth ("cert" | "token" | None), topic (effective),
jwt (dict kid/iss/iat/alg, or None), status, reason, apns_id, push_type,
priority; headers include the pseudo-headers (":path", ...). Counters:
connections (TLS + h2 up), active_connections, tls_failures (list of
error strings), alpn_refused, peak_streams
(the most streams one connection had open at once, counted per read),
refused_streams (RST_STREAM REFUSED_STREAM beyond the acknowledged
SETTINGS_MAX_CONCURRENT_STREAMS), pings (received), ping_acks, goaways
(sent), protocol_errors, provider_tokens (new JWTs accepted, per team),
token_updates_refused, errors (exceptions inside the fake: must stay
empty).

Not modelled: environments (sandbox tokens on production -> BadDeviceToken:
script it), Apple's "universal" certificate topic list extension, per-
device throttling (script 429), IdleTimeout, DeviceTokenNotForTopic and
certificate expiry beyond the TLS check, the JWT "connection unusable for
a while" after a 429, HTTP/2 priority frames (ignored, as Apple does).
"""

import base64
import collections
import heapq
import json
import os
import re
import selectors
import socket
import ssl
import threading
import time
import uuid

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
import h2.settings
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import \
    encode_dss_signature
from cryptography.x509.oid import NameOID
from hyperframe.frame import GoAwayFrame

from fake_wait import wait_for_requests

PUSH_TYPES = frozenset({"alert", "background", "voip", "location",
                        "complication", "fileprovider", "mdm",
                        "liveactivity", "pushtotalk"})
# Topic suffixes Apple accepts for the push types that need one.
TOPIC_SUFFIXES = (".voip", ".complication", ".pushkit.fileprovider",
                  ".push-type.liveactivity", ".voip-ptt")
MAX_PAYLOAD = 4096
MAX_PAYLOAD_VOIP = 5120
MAX_COLLAPSE_ID = 64
BAD_JSON_REASON = "PayloadEmpty"
DEFAULT_REASONS = {400: "BadDeviceToken", 403: "Forbidden", 404: "BadPath",
                   405: "MethodNotAllowed", 410: "Unregistered",
                   413: "PayloadTooLarge", 429: "TooManyRequests",
                   500: "InternalServerError", 503: "ServiceUnavailable"}
AUTH_FAILURES = frozenset({"MissingProviderToken", "InvalidProviderToken",
                           "ExpiredProviderToken", "UnrelatedKeyIdInToken",
                           "TooManyProviderTokenUpdates"})
_UUID_RE = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-"
                      r"[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\Z")
_HEX_RE = re.compile(r"(?:[0-9a-fA-F]{2})+\Z")
_B64URL_RE = re.compile(r"[A-Za-z0-9_-]*\Z")
_MAX_BODY_KEPT = 65536
_JWT_CACHE_MAX = 10000
_FUTURE_IAT_SKEW = 300


class ApnsWaitTimeout(AssertionError):
    pass


class ApnsRequest:
    """One request that reached the fake (see the module docstring)."""
    __slots__ = ("t", "conn", "stream", "method", "path", "token", "headers",
                 "body", "payload", "auth", "topic", "jwt", "status",
                 "reason", "apns_id", "push_type", "priority")

    def __init__(self, **kw):
        for k in self.__slots__:
            setattr(self, k, kw.get(k))

    def __repr__(self):
        return ("ApnsRequest(conn=%s stream=%s %s %s token=%s auth=%s "
                "topic=%s -> %s %s)" % (self.conn, self.stream, self.method,
                                        self.path, self.token, self.auth,
                                        self.topic, self.status,
                                        self.reason or ""))


class ConnInfo:
    """What the fake knows about one connection (fake.conns[id])."""
    __slots__ = ("id", "opened", "closed", "alpn", "cert_topic", "kid",
                 "requests", "peak_streams", "refused_streams",
                 "max_streams")

    def __init__(self, cid):
        self.id = cid
        self.opened = time.time()
        self.closed = None
        self.alpn = None
        self.cert_topic = None
        self.kid = None
        self.requests = 0
        self.peak_streams = 0
        self.refused_streams = 0
        self.max_streams = None     # MAX_CONCURRENT_STREAMS acknowledged

    def __repr__(self):
        return "ConnInfo(%s)" % ", ".join(
            "%s=%r" % (k, getattr(self, k)) for k in self.__slots__)


class _Reject(Exception):
    def __init__(self, status, reason):
        super().__init__(reason)
        self.status = status
        self.reason = reason


class _LooseSettings(h2.settings.Settings):
    """Local settings whose MAX_CONCURRENT_STREAMS h2 does not enforce (it
    would kill the connection); the fake refuses excess streams itself with
    RST_STREAM REFUSED_STREAM, as RFC 9113 5.1.2 allows."""
    @property
    def max_concurrent_streams(self):
        return 2 ** 31


class _Stream:
    __slots__ = ("headers", "body", "size", "refused")

    def __init__(self, headers):
        self.headers = headers
        self.body = bytearray()
        self.size = 0
        self.refused = False


class _Conn:
    __slots__ = ("sock", "info", "h2", "ready", "out", "streams", "pending",
                 "closing", "goaway_last", "limit", "token_ok", "cert_topic",
                 "mask", "dead", "lowered")

    def __init__(self, sock, info):
        self.sock = sock
        self.info = info
        self.h2 = None
        self.ready = False          # TLS done, h2 up
        self.out = bytearray()
        self.streams = {}           # id -> _Stream, until answered
        self.pending = set()        # stream ids answered later (delay)
        self.closing = False        # close once answered and flushed
        self.goaway_last = None     # last-stream-id of a GOAWAY we sent
        self.limit = None           # acknowledged MAX_CONCURRENT_STREAMS
        self.token_ok = False
        self.cert_topic = None
        self.mask = 0
        self.dead = False
        self.lowered = False        # streams_after_error in force


def _b64url_decode(s):
    if not _B64URL_RE.match(s):
        raise ValueError("not base64url")
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def _cert_topic(der):
    if not der:
        return None
    cert = x509.load_der_x509_certificate(der)
    uids = cert.subject.get_attributes_for_oid(NameOID.USER_ID)
    return uids[0].value if uids else None


class FakeApns:
    """See the module docstring. All attributes may be read from the test
    thread; change scripting attributes (default, responder, delay, ...)
    between requests."""

    def __init__(self, pki, mode="cert", port=0, tls=True,
                 max_concurrent_streams=1000, token_initial_streams=1,
                 streams_after_error=None, min_token_interval=20 * 60,
                 token_max_age=3600, token_topics=None, strict=True,
                 sandbox=False, default=(200, None), delay=0.0,
                 validate_headers=True, host="127.0.0.1", public_host=None):
        if mode not in ("cert", "token", "either"):
            raise ValueError("mode must be cert, token or either")
        if not tls and mode != "token":
            raise ValueError("without TLS there is no client certificate")
        self.pki = pki
        self.mode = mode
        self.host = host
        self.public_host = public_host
        self.port = port
        self.tls = tls
        self.max_concurrent_streams = max_concurrent_streams
        self.token_initial_streams = token_initial_streams
        self.streams_after_error = streams_after_error
        self.min_token_interval = min_token_interval
        self.token_max_age = token_max_age
        self.strict = strict
        self.sandbox = sandbox
        self.validate_headers = validate_headers
        self.default = default
        self.delay = delay
        self.responder = None
        self.push_types = set(PUSH_TYPES)
        topics = {pki.topic} if token_topics is None else set(token_topics)
        self.token_topics = topics | {t + s for t in topics
                                      for s in TOPIC_SUFFIXES}
        self.token_keys = {}            # kid -> (team, public key)
        self.add_token_key(pki.key_id, pki.team_id, pki.token_public_key())

        self._lock = threading.Condition()
        self._replies = {}
        self._reset_stats()
        self._thread = None
        self._live = {}
        self._sel = None
        self._lsock = None
        self._wake_r = self._wake_w = None
        self._control = collections.deque()
        self._stopping = False
        self._ctx = self._make_ctx() if tls else None

    # ---- public API ------------------------------------------------------

    @property
    def url(self):
        return "%s://%s:%d" % ("https" if self.tls else "http",
                               self.public_host or self.host, self.port)

    @property
    def ca_file(self):
        return self.pki.ca_cert

    def device_url(self, token):
        return "%s/3/device/%s" % (self.url, token)

    def add_token_key(self, key_id, team_id, public_key):
        """Accept provider tokens signed by public_key (an EC P-256 public
        key object or a PEM .p8 path of the private key) as key_id of
        team_id."""
        if isinstance(public_key, str):
            with open(public_key, "rb") as f:
                public_key = serialization.load_pem_private_key(
                    f.read(), None).public_key()
        self.token_keys[key_id] = (team_id, public_key)

    def set_replies(self, token, *replies):
        """Scripted replies for token, in order; the last one repeats.
        No replies: forget the script."""
        with self._lock:
            if replies:
                self._replies[token] = [_norm_reply(r) for r in replies]
            else:
                self._replies.pop(token, None)

    def reset(self):
        """Forget requests, counters, token history and scripts; live
        connections stay (and stay counted in active_connections)."""
        def do():
            with self._lock:
                self._replies.clear()
                self._reset_stats()
                for c in self._live.values():
                    if c.ready:
                        self.conns[c.info.id] = c.info
                        self.active_connections += 1
        if self._thread is None:
            do()
        else:
            self._call(do)

    def start(self):
        """Listen (again on the same port after a stop) and serve."""
        if self._thread is not None:
            raise RuntimeError("already running")
        ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        ls.bind((self.host, self.port))
        ls.listen(1024)
        ls.setblocking(False)
        self.port = ls.getsockname()[1]
        self._lsock = ls
        self._live = {}
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._sel = selectors.DefaultSelector()
        self._sel.register(ls, selectors.EVENT_READ, "listen")
        self._sel.register(self._wake_r, selectors.EVENT_READ, "wake")
        self._stopping = False
        self._timers = []
        self._ready = []        # connections with data left to read
        self._thread = threading.Thread(target=self._run, name="fake-apns",
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self):
        """Close the listener and every connection (no GOAWAY: use goaway()
        first for a polite shutdown)."""
        if self._thread is None:
            return
        self._stopping = True
        self._wake()
        self._thread.join(timeout=10)
        if self._thread.is_alive():
            raise RuntimeError("fake APNs loop did not stop")
        self._thread = None
        for s in (self._lsock, self._wake_r, self._wake_w):
            s.close()
        self._sel.close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def wait_for(self, count=None, pred=None, timeout=10.0):
        """Wait until `count` requests are recorded (returns the first
        count) or pred(requests) is truthy (returns its value); pred is
        evaluated on every change (request, connection, GOAWAY, TLS
        failure). Raises ApnsWaitTimeout."""
        return wait_for_requests(
            self._lock, lambda: self.requests, count, pred, timeout,
            timed_out=lambda t: ApnsWaitTimeout(
                "fake APNs: timed out after %.1fs (%d requests, %d "
                "connections, TLS failures %r)" % (
                    t, len(self.requests), self.connections,
                    self.tls_failures[-3:])))

    def goaway(self, reason="Shutdown", error_code=0, conn_id=None,
               last_stream_id=None):
        """Send GOAWAY with {"reason": reason} on every live connection (or
        conn_id), answer what is already pending, then close. last-stream-id
        defaults to the highest stream received. Returns the number of
        connections told."""
        return self._call(lambda: sum(
            self._goaway(c, reason, error_code, last_stream_id)
            for c in list(self._live.values())
            if conn_id is None or c.info.id == conn_id))

    def set_max_concurrent_streams(self, n, conn_id=None):
        """New SETTINGS_MAX_CONCURRENT_STREAMS for new connections and, sent
        at once, for live ones (enforced once the client acknowledges)."""
        def do():
            if conn_id is None:
                self.max_concurrent_streams = n
            for c in list(self._live.values()):
                if c.ready and (conn_id is None or c.info.id == conn_id):
                    self._settings(c, n)
                    self._flush(c)
        self._call(do)

    def ping(self):
        """Send a PING on every live connection; acks counted in ping_acks.
        Returns the number of connections pinged."""
        def do():
            n = 0
            for c in list(self._live.values()):
                if c.ready and not c.closing:
                    c.h2.ping(os.urandom(8))
                    self._flush(c)
                    n += 1
            return n
        return self._call(do)

    def drop_connections(self):
        """Close every connection at the TCP level, no GOAWAY."""
        self._call(lambda: [self._close(c) for c in list(self._live.values())])

    def provider_tokens_for(self, team_id=None):
        team_id = team_id or self.pki.team_id
        return list(self.provider_tokens.get(team_id, []))

    # ---- internals: setup --------------------------------------------------

    def _reset_stats(self):
        self.requests = []
        self.conns = {}
        self.connections = 0
        self.active_connections = 0
        self.tls_failures = []
        self.alpn_refused = 0
        self.peak_streams = 0
        self.refused_streams = 0
        self.pings = 0
        self.ping_acks = 0
        self.goaways = []
        self.protocol_errors = []
        self.provider_tokens = {}       # team -> [{"kid","iat","t"}]
        self._team_last_new = {}
        self._team_seen = {}
        self.token_updates_refused = 0
        self.errors = []
        self._jwt_cache = {}
        self._next_conn = getattr(self, "_next_conn", 0)

    def _make_ctx(self):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.load_cert_chain(self.pki.server_cert, self.pki.server_key)
        ctx.set_alpn_protocols(["h2"])
        if self.mode == "cert":
            ctx.verify_mode = ssl.CERT_REQUIRED
        elif self.mode == "either":
            ctx.verify_mode = ssl.CERT_OPTIONAL
        if self.mode != "token":
            ctx.load_verify_locations(self.pki.ca_cert)
        return ctx

    def _notify(self):
        with self._lock:
            self._lock.notify_all()

    def _wake(self):
        try:
            self._wake_w.send(b"x")
        except (BlockingIOError, OSError):
            pass

    def _call(self, fn):
        """Run fn in the loop thread; return its result."""
        if self._thread is None:
            raise RuntimeError("not running")
        done = threading.Event()
        box = []

        def run():
            try:
                box.append(fn())
            finally:
                done.set()
        self._control.append(run)
        self._wake()
        if not done.wait(10):
            raise RuntimeError("fake APNs loop did not answer")
        return box[0] if box else None

    # ---- internals: the loop ---------------------------------------------

    def _run(self):
        sel = self._sel
        try:
            while not self._stopping:
                timeout = None
                if self._ready:
                    timeout = 0.0
                elif self._timers:
                    timeout = max(0.0, self._timers[0][0] - time.monotonic())
                for key, mask in sel.select(timeout):
                    d = key.data
                    if d == "listen":
                        self._accept()
                    elif d == "wake":
                        try:
                            while self._wake_r.recv(4096):
                                pass
                        except (BlockingIOError, OSError):
                            pass
                        while self._control:
                            self._control.popleft()()
                    elif not d.dead:
                        try:
                            self._io(d, mask)
                        except Exception as e:      # a bug in the fake
                            self.errors.append(repr(e))
                            self._close(d)
                ready, self._ready = self._ready, []
                for c in ready:
                    if not c.dead:
                        self._read(c)
                now = time.monotonic()
                while self._timers and self._timers[0][0] <= now:
                    _, _, fn = heapq.heappop(self._timers)
                    fn()
        finally:
            for c in list(self._live.values()):
                self._close(c)
            self._notify()

    def _accept(self):
        while True:
            try:
                s, _ = self._lsock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            s.setblocking(False)
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._next_conn += 1
            info = ConnInfo(self._next_conn)
            if self.tls:
                s = self._ctx.wrap_socket(s, server_side=True,
                                          do_handshake_on_connect=False)
            c = _Conn(s, info)
            self._live[info.id] = c
            c.mask = selectors.EVENT_READ
            self._sel.register(s, c.mask, c)
            if self.tls:
                self._handshake(c)
            else:
                self._h2_up(c)

    def _set_mask(self, c, mask):
        if mask != c.mask and not c.dead:
            c.mask = mask
            self._sel.modify(c.sock, mask, c)

    def _io(self, c, mask):
        if not c.ready:
            self._handshake(c)
            return
        if mask & selectors.EVENT_WRITE:
            self._flush(c)
        if mask & selectors.EVENT_READ and not c.dead:
            self._read(c)

    def _handshake(self, c):
        try:
            c.sock.do_handshake()
        except ssl.SSLWantReadError:
            self._set_mask(c, selectors.EVENT_READ)
            return
        except ssl.SSLWantWriteError:
            self._set_mask(c, selectors.EVENT_WRITE)
            return
        except (ssl.SSLError, OSError) as e:
            self.tls_failures.append(str(e))
            self._close(c)          # notifies waiters
            return
        alpn = c.sock.selected_alpn_protocol()
        c.info.alpn = alpn
        if alpn != "h2":
            self.alpn_refused += 1
            self._close(c)
            return
        try:
            c.cert_topic = _cert_topic(c.sock.getpeercert(binary_form=True))
        except ValueError as e:
            self.tls_failures.append("client certificate: %s" % e)
            self._close(c)
            return
        c.info.cert_topic = c.cert_topic
        self._set_mask(c, selectors.EVENT_READ)
        self._h2_up(c)

    def _h2_up(self, c):
        cfg = h2.config.H2Configuration(
            client_side=False, header_encoding="utf-8",
            validate_inbound_headers=self.validate_headers,
            normalize_inbound_headers=self.validate_headers)
        conn = h2.connection.H2Connection(config=cfg)
        initial = self.max_concurrent_streams
        if self._token_conn(c) and self.token_initial_streams:
            initial = self.token_initial_streams
        else:
            c.token_ok = True
        conn.local_settings = _LooseSettings(client=False, initial_values={
            h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: initial,
            h2.settings.SettingCodes.MAX_HEADER_LIST_SIZE: 8000,
        })
        conn.decoder.max_header_list_size = 8000
        conn.initiate_connection()
        c.h2 = conn
        c.ready = True
        self.connections += 1
        self.active_connections += 1
        self.conns[c.info.id] = c.info
        self._notify()
        self._flush(c)
        if not c.dead:
            self._read(c)       # TLS may hold application data already

    def _token_conn(self, c):
        return self.mode == "token" or (self.mode == "either" and
                                        c.cert_topic is None)

    def _settings(self, c, n):
        try:
            c.h2.update_settings({
                h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: n})
        except h2.exceptions.ProtocolError:
            pass                # the client sent GOAWAY: nothing to tune

    def _close(self, c):
        if c.dead:
            return
        c.dead = True
        try:
            self._sel.unregister(c.sock)
        except (KeyError, ValueError):
            pass
        try:
            c.sock.close()
        except OSError:
            pass
        self._live.pop(c.info.id, None)
        c.info.closed = time.time()
        if c.ready:
            self.active_connections -= 1
        self._notify()

    def _read(self, c):
        # Everything the socket has, then one pass through h2: a TLS
        # recv() returns one record, and batching the whole read gives one
        # write per batch and an honest count of concurrent streams.
        sock = c.sock
        chunks = []
        eof = False
        while True:
            try:
                data = sock.recv(262144)
            except (ssl.SSLWantReadError, BlockingIOError,
                    InterruptedError):
                break
            except ssl.SSLWantWriteError:
                self._set_mask(c, selectors.EVENT_READ |
                               selectors.EVENT_WRITE)
                break
            except (ssl.SSLError, OSError):
                eof = True
                break
            if not data:
                eof = True
                break
            chunks.append(data)
            if len(chunks) >= 256:
                break           # fairness; the rest on the next pass
        if chunks:
            self._feed(c, b"".join(chunks))
        if eof:
            self._close(c)
            return
        if c.dead:
            return
        if len(chunks) >= 256 or (self.tls and sock.pending()):
            self._ready.append(c)
        self._flush(c)

    def _flush(self, c):
        if c.dead:
            return
        data = c.h2.data_to_send() if c.h2 is not None else b""
        if data:
            c.out += data
        sock = c.sock
        while c.out:
            try:
                n = sock.send(c.out[:262144])
            except (ssl.SSLWantWriteError, BlockingIOError,
                    InterruptedError):
                self._set_mask(c, selectors.EVENT_READ |
                               selectors.EVENT_WRITE)
                return
            except ssl.SSLWantReadError:
                return
            except (ssl.SSLError, OSError):
                self._close(c)
                return
            del c.out[:n]
        if c.closing and not c.streams:
            self._close(c)
            return
        self._set_mask(c, selectors.EVENT_READ)

    # ---- internals: HTTP/2 -----------------------------------------------

    def _feed(self, c, data):
        h = c.h2
        try:
            events = h.receive_data(data)
        except (h2.exceptions.ProtocolError, UnicodeDecodeError) as e:
            # h2 has queued GOAWAY (PROTOCOL_ERROR etc.) where it can.
            self.protocol_errors.append("conn %d: %r" % (c.info.id, e))
            c.closing = True
            c.streams.clear()
            c.pending.clear()
            self._flush(c)
            return
        E = h2.events
        ended = []
        for ev in events:
            t = type(ev)
            if t is E.RequestReceived:
                sid = ev.stream_id
                st = _Stream(ev.headers)
                if c.goaway_last is not None and sid > c.goaway_last:
                    st.refused = True
                elif c.limit is not None and \
                        len(c.streams) >= c.limit:
                    st.refused = True
                    c.info.refused_streams += 1
                    self.refused_streams += 1
                if st.refused:
                    h.reset_stream(sid, h2.errors.ErrorCodes.REFUSED_STREAM)
                else:
                    c.streams[sid] = st
            elif t is E.DataReceived:
                st = c.streams.get(ev.stream_id)
                if st is not None:
                    st.size += len(ev.data)
                    if st.size <= _MAX_BODY_KEPT:
                        st.body += ev.data
                if ev.flow_controlled_length:
                    try:
                        h.acknowledge_received_data(
                            ev.flow_controlled_length, ev.stream_id)
                    except h2.exceptions.StreamClosedError:
                        pass
            elif t is E.StreamEnded:
                if ev.stream_id in c.streams:
                    ended.append(ev.stream_id)
            elif t is E.StreamReset:
                c.streams.pop(ev.stream_id, None)
                c.pending.discard(ev.stream_id)
            elif t is E.SettingsAcknowledged:
                c.limit = c.info.max_streams = h.local_settings[
                    h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS]
                self._notify()
            elif t is E.PingReceived:
                self.pings += 1
                self._notify()
            elif t is E.PingAckReceived:
                self.ping_acks += 1
                self._notify()
            elif t is E.ConnectionTerminated:
                c.closing = True
        n_open = len(c.streams)
        if n_open > c.info.peak_streams:
            c.info.peak_streams = n_open
            if n_open > self.peak_streams:
                self.peak_streams = n_open
        for sid in ended:
            if not c.dead and sid in c.streams:
                self._request(c, sid)

    def _request(self, c, sid):
        st = c.streams[sid]
        req = ApnsRequest(t=time.time(), conn=c.info.id, stream=sid,
                          body=bytes(st.body))
        c.info.requests += 1
        try:
            self._check(c, st, req)
            reply = self._choose(req)
        except _Reject as r:
            reply = {"status": r.status, "reason": r.reason}
        if "goaway" in reply:
            req.status, req.reason = 0, reply["reason"]
            self._record(req)
            c.streams.pop(sid, None)
            self._goaway(c, reply["reason"], 0, sid - 2 if sid > 2 else 0)
            return
        req.status, req.reason = reply["status"], reply.get("reason")
        if req.status != 200 and req.reason is None:
            req.reason = DEFAULT_REASONS.get(req.status)
        if req.auth == "token" and req.reason not in AUTH_FAILURES and \
                not c.token_ok:
            # Apple: one stream until a request with a valid token.
            c.token_ok = True
            self._settings(c, self.max_concurrent_streams)
        if self.streams_after_error:
            # [observed] down to few streams after a rejected push, back
            # up after the next success.
            if req.status == 200 and c.lowered:
                c.lowered = False
                self._settings(c, self.max_concurrent_streams)
            elif req.status != 200 and not c.lowered and c.token_ok:
                c.lowered = True
                self._settings(c, self.streams_after_error)
        self._record(req)
        delay = reply.get("delay", self.delay)
        if delay:
            c.pending.add(sid)
            heapq.heappush(self._timers, (time.monotonic() + delay,
                                          id(req), lambda: self._answer_later(
                                              c, sid, req, reply)))
        else:
            self._answer(c, sid, req, reply)

    def _record(self, req):
        with self._lock:
            self.requests.append(req)
            self._lock.notify_all()

    def _answer_later(self, c, sid, req, reply):
        if c.dead or sid not in c.pending:
            return
        c.pending.discard(sid)
        self._answer(c, sid, req, reply)
        self._flush(c)

    def _answer(self, c, sid, req, reply):
        if c.streams.pop(sid, None) is None:
            return                      # reset by the client meanwhile
        headers = [(":status", str(req.status)), ("apns-id", req.apns_id)]
        body = b""
        if req.status == 200:
            if self.sandbox:
                headers.append(("apns-unique-id", str(uuid.uuid4())))
        else:
            doc = {"reason": req.reason}
            if req.status == 410:
                ts = reply.get("timestamp")
                doc["timestamp"] = int(time.time() * 1000) if ts is None \
                    else ts
            body = json.dumps(doc, separators=(",", ":")).encode()
        h = c.h2
        try:
            if body:
                h.send_headers(sid, headers)
                h.send_data(sid, body, end_stream=True)
            else:
                h.send_headers(sid, headers, end_stream=True)
        except (h2.exceptions.StreamClosedError,
                h2.exceptions.ProtocolError,
                h2.exceptions.FlowControlError) as e:
            self.protocol_errors.append("conn %d stream %d answer: %r"
                                        % (c.info.id, sid, e))

    def _goaway(self, c, reason, error_code, last_stream_id):
        if c.dead or not c.ready or c.goaway_last is not None:
            return 0
        if last_stream_id is None:
            last_stream_id = c.h2.highest_inbound_stream_id
        # Written by hand, not through h2.close_connection(): h2 would then
        # refuse to answer the streams at or below last_stream_id.
        c.out += c.h2.data_to_send()
        f = GoAwayFrame(0, last_stream_id=last_stream_id,
                        error_code=error_code,
                        additional_data=json.dumps(
                            {"reason": reason}).encode())
        c.out += f.serialize()
        c.goaway_last = last_stream_id
        c.closing = True
        for sid in [s for s in c.streams if s > last_stream_id]:
            c.streams.pop(sid)
            c.pending.discard(sid)
        self.goaways.append((c.info.id, last_stream_id, reason))
        self._notify()
        self._flush(c)
        return 1

    # ---- internals: what Apple checks ------------------------------------

    def _check(self, c, st, req):
        hdrs = {}
        dup = False
        for k, v in st.headers:
            if k in hdrs and (k.startswith("apns-") or
                              k == "authorization"):
                dup = True
            hdrs[k] = v
        req.headers = hdrs
        req.method = hdrs.get(":method")
        req.path = hdrs.get(":path", "")
        req.push_type = hdrs.get("apns-push-type")
        req.priority = hdrs.get("apns-priority")
        aid = hdrs.get("apns-id")
        req.apns_id = aid if aid and _UUID_RE.match(aid) else \
            str(uuid.uuid4())

        if req.method != "POST":
            raise _Reject(405, "MethodNotAllowed")
        path = req.path
        if not path.startswith("/3/device/") and path != "/3/device":
            raise _Reject(404, "BadPath")
        token = path[len("/3/device/"):]
        if "/" in token or "?" in token or "#" in token:
            raise _Reject(404, "BadPath")
        req.token = token
        if not token:
            raise _Reject(400, "MissingDeviceToken")
        if not _HEX_RE.match(token):
            raise _Reject(400, "BadDeviceToken")
        if dup:
            raise _Reject(400, "DuplicateHeaders")

        topic = hdrs.get("apns-topic")
        auth = hdrs.get("authorization")
        use_token = self.mode == "token" or (
            self.mode == "either" and (auth is not None or
                                       c.cert_topic is None))
        if use_token:
            req.auth = "token"
            self._check_token(c, req, auth)
            if topic is None:
                raise _Reject(400, "MissingTopic")
            if topic == "":
                raise _Reject(400, "BadTopic")
            if topic not in self.token_topics:
                raise _Reject(400, "TopicDisallowed")
            req.topic = topic
        else:
            req.auth = "cert"
            if topic is None:
                topic = c.cert_topic
                if topic is None:
                    raise _Reject(400, "MissingTopic")
            elif topic == "":
                raise _Reject(400, "BadTopic")
            elif topic != c.cert_topic:
                raise _Reject(400, "TopicDisallowed")
            req.topic = topic

        if aid is not None and not _UUID_RE.match(aid):
            raise _Reject(400, "BadMessageId")
        ptype = req.push_type
        if ptype is not None and ptype not in self.push_types:
            raise _Reject(400, "InvalidPushType")
        prio = req.priority
        if prio is not None and prio not in ("1", "5", "10"):
            raise _Reject(400, "BadPriority")
        exp = hdrs.get("apns-expiration")
        if exp is not None and not exp.isdigit():
            raise _Reject(400, "BadExpirationDate")
        cid = hdrs.get("apns-collapse-id")
        if cid is not None and len(cid.encode()) > MAX_COLLAPSE_ID:
            raise _Reject(400, "BadCollapseId")

        if st.size == 0:
            raise _Reject(400, "PayloadEmpty")
        if st.size > (MAX_PAYLOAD_VOIP if ptype == "voip" else MAX_PAYLOAD):
            raise _Reject(413, "PayloadTooLarge")
        try:
            payload = json.loads(req.body)
        except ValueError:
            raise _Reject(400, BAD_JSON_REASON)
        req.payload = payload
        if not isinstance(payload, dict) or \
                not isinstance(payload.get("aps"), dict):
            raise _Reject(400, BAD_JSON_REASON)
        if self.strict:
            self._check_semantics(payload["aps"], ptype, prio or "10")

    @staticmethod
    def _check_semantics(aps, ptype, prio):
        visible = any(k in aps for k in ("alert", "sound", "badge"))
        if ptype == "background":
            if prio != "5":
                raise _Reject(400, "BadPriority")
            if aps.get("content-available") != 1 or visible:
                raise _Reject(400, "InvalidPushType")
        elif ptype == "alert":
            if not aps.get("alert"):
                raise _Reject(400, "InvalidPushType")
        elif ptype is None and not visible and \
                aps.get("content-available") == 1 and prio == "10":
            raise _Reject(400, "BadPriority")

    def _check_token(self, c, req, auth):
        if not auth:
            raise _Reject(403, "MissingProviderToken")
        parts = auth.split(None, 1)
        if len(parts) != 2 or parts[0].lower() != "bearer":
            raise _Reject(403, "MissingProviderToken")
        jwt = parts[1].strip()
        info = self._jwt_cache.get(jwt)
        if info is None:
            info = self._verify_jwt(jwt)
            if len(self._jwt_cache) >= _JWT_CACHE_MAX:
                self._jwt_cache.clear()
            self._jwt_cache[jwt] = info
        req.jwt = info["claims"]
        if info["error"]:
            raise _Reject(403, info["error"])
        kid, iss, iat = info["kid"], info["iss"], info["iat"]
        if c.info.kid is None:
            c.info.kid = kid
        elif c.info.kid != kid:
            raise _Reject(403, "UnrelatedKeyIdInToken")
        now = time.time()
        if iat > now + _FUTURE_IAT_SKEW:
            raise _Reject(403, "InvalidProviderToken")
        if now - iat > self.token_max_age:
            raise _Reject(403, "ExpiredProviderToken")
        seen = self._team_seen.setdefault(iss, set())
        if jwt not in seen:
            last = self._team_last_new.get(iss)
            if last is not None and now - last < self.min_token_interval:
                self.token_updates_refused += 1
                raise _Reject(429, "TooManyProviderTokenUpdates")
            seen.add(jwt)
            self._team_last_new[iss] = now
            self.provider_tokens.setdefault(iss, []).append(
                {"kid": kid, "iat": iat, "t": now})

    def _verify_jwt(self, jwt):
        info = {"error": "InvalidProviderToken", "claims": None,
                "kid": None, "iss": None, "iat": None}
        parts = jwt.split(".")
        if len(parts) != 3:
            return info
        try:
            header = json.loads(_b64url_decode(parts[0]))
            claims = json.loads(_b64url_decode(parts[1]))
            sig = _b64url_decode(parts[2])
        except ValueError:
            return info
        if not isinstance(header, dict) or not isinstance(claims, dict):
            return info
        kid, iss, iat = header.get("kid"), claims.get("iss"), \
            claims.get("iat")
        info.update(kid=kid, iss=iss, iat=iat,
                    claims={"kid": kid, "iss": iss, "iat": iat,
                            "alg": header.get("alg")})
        if header.get("alg") != "ES256" or kid not in self.token_keys:
            return info
        team, pub = self.token_keys[kid]
        if iss != team or type(iat) is not int or len(sig) != 64:
            return info
        der = encode_dss_signature(int.from_bytes(sig[:32], "big"),
                                   int.from_bytes(sig[32:], "big"))
        try:
            pub.verify(der, (parts[0] + "." + parts[1]).encode("ascii"),
                       ec.ECDSA(hashes.SHA256()))
        except InvalidSignature:
            return info
        info["error"] = None
        return info

    def _choose(self, req):
        with self._lock:
            seq = self._replies.get(req.token)
            if seq:
                return seq.pop(0) if len(seq) > 1 else seq[0]
        if self.responder is not None:
            return _norm_reply(self.responder(req))
        return _norm_reply(self.default)


def _norm_reply(r):
    """200 | status | (status, reason[, opts]) | ("goaway", reason) | dict
    -> dict with status, reason and options."""
    if isinstance(r, dict):
        return dict(r)
    if isinstance(r, int):
        return {"status": r, "reason": None}
    if r is None:
        return {"status": 200, "reason": None}
    r = tuple(r)
    if r[0] == "goaway":
        return {"goaway": True, "reason": r[1] if len(r) > 1 else "Shutdown"}
    d = {"status": int(r[0]), "reason": r[1] if len(r) > 1 else None}
    if len(r) > 2 and r[2]:
        d.update(r[2])
    return d
