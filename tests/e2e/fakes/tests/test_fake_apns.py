"""Tests of the fake APNs server itself (fake_apns.py) and its test PKI
(pki.py), with curl (HTTP/2, the .p12 files as libcurl would load them)
and a small python3-h2 client for what curl cannot show (SETTINGS,
GOAWAY, PING, refused streams). No Dovecot, no daemons of ours."""
import json
import os
import re
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
from collections import Counter

import h2.config
import h2.connection
import h2.events
import h2.settings
import pytest

import fake_apns
from fake_apns import FakeApns
from pki import make_pki, openssl_p12_info, sign_jwt

# docs/push-providers.md 1.3, byte for byte (apns-h2's key order).
VISIBLE = (b'{"aps":{"alert":{"title":"New messages","body":"You have new '
           b'messages","title-loc-key":"new_messages","loc-key":'
           b'"new_messages_body"},"sound":"default","mutable-content":1}}')
VISIBLE_HEADERS = ("apns-push-type: alert", "apns-priority: 10",
                   "apns-collapse-id: new_messages")
SILENT = b'{"aps":{"content-available":1}}'
SILENT_HEADERS = ("apns-push-type: background", "apns-priority: 5")
TOKEN = "5f1e" * 16                 # 64 hex characters
UUID_LOWER = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-"
                        r"[0-9a-f]{12}\Z")


@pytest.fixture(scope="module")
def pki():
    d = tempfile.mkdtemp(prefix="e2e-apns-pki-")
    yield make_pki(d)
    if not os.environ.get("E2E_KEEP_TMP"):
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def fake_factory(pki):
    fakes = []

    def make(mode="cert", **kw):
        f = FakeApns(pki, mode=mode, **kw).start()
        fakes.append(f)
        return f
    yield make
    for f in fakes:
        f.stop()
    for f in fakes:
        assert f.errors == [], f.errors


@pytest.fixture
def cert_apns(fake_factory):
    return fake_factory("cert")


@pytest.fixture
def token_apns(fake_factory):
    return fake_factory("token")


class Resp:
    def __init__(self, rc, status=None, headers=None, body=b"", err=""):
        self.rc, self.status, self.headers, self.body, self.err = \
            rc, status, headers or {}, body, err

    @property
    def json(self):
        return json.loads(self.body)

    def __repr__(self):
        return "Resp(rc=%s %s %r %r %s)" % (self.rc, self.status,
                                            self.headers, self.body,
                                            self.err.strip())


def curl(fake, token=TOKEN, body=VISIBLE, headers=VISIBLE_HEADERS, p12=None,
         password=None, jwt=None, method=None, path=None, http="--http2"):
    """One request with curl; p12 "default" is the modern client .p12."""
    args = ["curl", "-sS", "-i", http, "--max-time", "10"]
    if fake.tls:
        args += ["--cacert", fake.ca_file]
    if p12 is not None:
        if p12 == "default":
            p12 = fake.pki.client_p12
        args += ["--cert-type", "P12", "--cert",
                 "%s:%s" % (p12, password or fake.pki.p12_password)]
    if jwt is not None:
        args += ["-H", "authorization: bearer " + jwt]
    for h in headers:
        args += ["-H", h]
    if body is not None:
        args += ["-H", "content-type: application/json",
                 "--data-binary", "@-"]
    if method:
        args += ["-X", method]
    url = fake.url + (path if path is not None else "/3/device/" + token)
    r = subprocess.run(args + [url], input=body or b"", capture_output=True,
                       timeout=30)
    if r.returncode != 0:
        return Resp(r.returncode, err=r.stderr.decode(errors="replace"))
    head, _, rest = r.stdout.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    hdrs = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        hdrs[k.strip().lower()] = v.strip()
    return Resp(0, int(lines[0].split()[1]), hdrs, rest)


def cert_curl(fake, **kw):
    kw.setdefault("p12", "default")
    return curl(fake, **kw)


class H2Client:
    """A blocking HTTP/2 client on python3-h2, enough to watch frames."""

    def __init__(self, fake, cert=None, key=None, alpn=("h2",)):
        raw = socket.create_connection(("127.0.0.1", fake.port), timeout=10)
        if fake.tls:
            ctx = ssl.create_default_context(cafile=fake.ca_file)
            ctx.set_alpn_protocols(list(alpn))
            if cert:
                ctx.load_cert_chain(cert, key)
            raw = ctx.wrap_socket(raw, server_hostname="127.0.0.1")
        self.sock = raw
        self.h2 = h2.connection.H2Connection(h2.config.H2Configuration(
            client_side=True, header_encoding="utf-8"))
        self.h2.initiate_connection()
        self.responses = {}
        self.goaway = None
        self.closed = False
        self.ping_acks = 0
        self.pings = 0
        self.settings_seen = []       # remote MAX_CONCURRENT_STREAMS values
        self.flush()

    def flush(self):
        data = self.h2.data_to_send()
        if data:
            self.sock.sendall(data)

    def post(self, token=TOKEN, body=VISIBLE, headers=(), jwt=None,
             path=None, method="POST"):
        """Queue one request (sent on the next flush or pump)."""
        sid = self.h2.get_next_available_stream_id()
        hdrs = [(":method", method), (":scheme", "https"),
                (":authority", "127.0.0.1"),
                (":path", path or "/3/device/" + token)]
        hdrs += [tuple(h.split(": ", 1)) for h in headers]
        if jwt:
            hdrs.append(("authorization", "bearer " + jwt))
        self.h2.send_headers(sid, hdrs, end_stream=not body)
        if body:
            self.h2.send_data(sid, body, end_stream=True)
        self.responses[sid] = {"status": None, "headers": {}, "body": b"",
                               "done": False, "reset": None}
        return sid

    def done(self, sid):
        r = self.responses[sid]
        return r["done"] or r["reset"] is not None

    def pump(self, until, timeout=10.0):
        """Read and handle frames until until() is true (or the server
        closed the connection and until() is still false: AssertionError).
        """
        self.flush()
        deadline = time.monotonic() + timeout
        while not until():
            left = deadline - time.monotonic()
            assert left > 0 and not self.closed, "h2 client: timed out or " \
                "closed (goaway=%r)" % (self.goaway,)
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                continue
            except (ssl.SSLError, OSError):
                data = b""
            if not data:
                self.closed = True
                continue
            for ev in self.h2.receive_data(data):
                self._event(ev)
            self.flush()

    def _event(self, ev):
        E = h2.events
        if isinstance(ev, E.ResponseReceived):
            self.responses[ev.stream_id]["status"] = int(
                dict(ev.headers)[":status"])
            self.responses[ev.stream_id]["headers"] = dict(ev.headers)
        elif isinstance(ev, E.DataReceived):
            self.responses[ev.stream_id]["body"] += ev.data
            self.h2.acknowledge_received_data(ev.flow_controlled_length,
                                              ev.stream_id)
        elif isinstance(ev, E.StreamEnded):
            self.responses[ev.stream_id]["done"] = True
        elif isinstance(ev, E.StreamReset):
            self.responses[ev.stream_id]["reset"] = ev.error_code
        elif isinstance(ev, E.ConnectionTerminated):
            self.goaway = ev
        elif isinstance(ev, E.PingAckReceived):
            self.ping_acks += 1
        elif isinstance(ev, E.PingReceived):
            self.pings += 1           # h2 queues the ACK
        elif isinstance(ev, E.RemoteSettingsChanged):
            c = ev.changed_settings.get(
                h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS)
            if c is not None:
                self.settings_seen.append(c.new_value)

    def request(self, *a, **kw):
        sid = self.post(*a, **kw)
        self.pump(lambda: self.done(sid))
        return self.responses[sid]

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def reason(resp):
    return json.loads(resp["body"] if isinstance(resp, dict)
                      else resp.body)["reason"]


# ---- the PKI ---------------------------------------------------------------

def test_legacy_p12_needs_the_legacy_provider(pki):
    rc, out = openssl_p12_info(pki.client_p12_legacy, pki.p12_password,
                               legacy=True)
    assert rc == 0, out
    assert "pbeWithSHA1And40BitRC2-CBC" in out
    assert "pbeWithSHA1And3-KeyTripleDES-CBC" in out
    rc, out = openssl_p12_info(pki.client_p12_legacy, pki.p12_password,
                               legacy=False)
    assert rc != 0 and "unsupported" in out, out
    rc, out = openssl_p12_info(pki.client_p12, pki.p12_password,
                               legacy=False)
    assert rc == 0 and "AES-256-CBC" in out and "PBKDF2" in out, out


def test_pki_identities(pki):
    out = subprocess.run(["openssl", "x509", "-noout", "-subject", "-in",
                          pki.client_cert], capture_output=True, text=True,
                         check=True).stdout
    assert "UID = chat.delta.test" in out
    assert "CN = Apple Push Services: chat.delta.test" in out
    assert len(pki.key_id) == 10 and len(pki.team_id) == 10
    with open(pki.token_key) as f:
        assert f.read().startswith("-----BEGIN PRIVATE KEY-----")
    assert make_pki(pki.directory) == pki       # reused, not regenerated


def test_legacy_p12_breaks_plain_openssl3_curl(cert_apns):
    # What a libcurl client meets with an old Keychain export unless it
    # loads OpenSSL's legacy provider (docs/push-providers.md 1.4).
    r = cert_curl(cert_apns, p12=cert_apns.pki.client_p12_legacy)
    assert r.rc == 58 and "unsupported" in r.err, r
    assert cert_apns.requests == []


# ---- certificate auth ------------------------------------------------------

def test_visible_push_with_client_certificate(cert_apns):
    r = cert_curl(cert_apns)
    assert r.status == 200 and r.body == b"", r
    assert UUID_LOWER.match(r.headers["apns-id"])
    (req,) = cert_apns.wait_for(1)
    assert req.status == 200 and req.auth == "cert"
    assert req.topic == "chat.delta.test"       # from the certificate UID
    assert req.token == TOKEN and req.body == VISIBLE
    assert req.payload["aps"]["alert"]["loc-key"] == "new_messages_body"
    assert req.headers["apns-push-type"] == "alert"
    assert req.headers["apns-collapse-id"] == "new_messages"
    assert "apns-topic" not in req.headers
    assert req.apns_id == r.headers["apns-id"] and req.jwt is None
    assert cert_apns.connections == 1


def test_silent_heartbeat(cert_apns):
    r = cert_curl(cert_apns, body=SILENT, headers=SILENT_HEADERS)
    assert r.status == 200, r
    # notifiers' own heartbeat: no push type, priority 5
    r = cert_curl(cert_apns, body=b'{"aps":{"content-available":1,'
                  b'"mutable-content":0}}', headers=("apns-priority: 5",))
    assert r.status == 200, r
    reqs = cert_apns.wait_for(2)
    assert [q.push_type for q in reqs] == ["background", None]
    assert reqs[0].priority == "5" and reqs[0].payload == json.loads(SILENT)


def test_apns_id_echoed_and_sandbox_unique_id(fake_factory):
    f = fake_factory("cert", sandbox=True)
    aid = "9f3c1a2e-1b2c-4d5e-8f90-0123456789ab"
    r = cert_curl(f, headers=VISIBLE_HEADERS + ("apns-id: " + aid,))
    assert r.status == 200 and r.headers["apns-id"] == aid, r
    assert UUID_LOWER.match(r.headers["apns-unique-id"])


def test_topic_must_be_the_certificates(cert_apns):
    r = cert_curl(cert_apns, headers=VISIBLE_HEADERS +
                  ("apns-topic: chat.delta.test",))
    assert r.status == 200, r
    r = cert_curl(cert_apns, headers=VISIBLE_HEADERS +
                  ("apns-topic: com.example.other",))
    assert r.status == 400 and r.json == {"reason": "TopicDisallowed"}, r
    assert UUID_LOWER.match(r.headers["apns-id"])


@pytest.mark.parametrize("who", ["other-ca", "none"])
def test_client_certificate_refused_in_tls(cert_apns, who):
    if who == "other-ca":
        r = cert_curl(cert_apns, p12=cert_apns.pki.other_client_p12)
    else:
        r = curl(cert_apns)
    assert r.rc != 0 and r.status is None, r    # 35, 16, 55, 56: timing
    cert_apns.wait_for(lambda _: cert_apns.tls_failures)
    assert cert_apns.requests == [] and cert_apns.connections == 0
    expect = "certificate verify failed" if who == "other-ca" else \
        "did not return a certificate"
    assert expect in cert_apns.tls_failures[0], cert_apns.tls_failures


def test_alpn_h2_only(cert_apns):
    r = cert_curl(cert_apns, http="--http1.1")
    assert r.rc != 0, r
    cert_apns.wait_for(lambda _: cert_apns.alpn_refused == 1)
    assert cert_apns.requests == []


# ---- request checks --------------------------------------------------------

BAD_REQUESTS = [
    # (name, curl keyword arguments, status, reason)
    ("bad path", dict(path="/3/devices/" + TOKEN), 404, "BadPath"),
    ("old path", dict(path="/2/device/" + TOKEN), 404, "BadPath"),
    ("empty token", dict(path="/3/device/"), 400, "MissingDeviceToken"),
    ("token not hex", dict(token="xyz123"), 400, "BadDeviceToken"),
    ("odd token", dict(token="abc"), 400, "BadDeviceToken"),
    ("GET", dict(method="GET", body=None), 405, "MethodNotAllowed"),
    ("push type", dict(headers=("apns-push-type: banner",)), 400,
     "InvalidPushType"),
    ("priority", dict(headers=("apns-priority: 7",)), 400, "BadPriority"),
    ("collapse id", dict(headers=("apns-collapse-id: " + "c" * 65,)), 400,
     "BadCollapseId"),
    ("apns-id", dict(headers=("apns-id: 1234",)), 400, "BadMessageId"),
    ("expiration", dict(headers=("apns-expiration: tomorrow",)), 400,
     "BadExpirationDate"),
    ("empty body", dict(body=b""), 400, "PayloadEmpty"),
    ("too large", dict(body=b'{"aps":{"alert":"x"},"p":"' + b"x" * 4080 +
                       b'"}'), 413, "PayloadTooLarge"),
    ("not JSON", dict(body=b"{aps"), 400, "PayloadEmpty"),
    ("no aps", dict(body=b'{"alert":"x"}'), 400, "PayloadEmpty"),
    ("background at 10", dict(body=SILENT, headers=(
        "apns-push-type: background", "apns-priority: 10")), 400,
     "BadPriority"),
    ("background with alert", dict(body=VISIBLE, headers=SILENT_HEADERS),
     400, "InvalidPushType"),
    ("alert without alert", dict(body=SILENT, headers=(
        "apns-push-type: alert",)), 400, "InvalidPushType"),
    ("silent at default priority", dict(body=SILENT, headers=()), 400,
     "BadPriority"),
]


@pytest.mark.parametrize("name,kw,status,why", BAD_REQUESTS,
                         ids=[b[0] for b in BAD_REQUESTS])
def test_request_checks(cert_apns, name, kw, status, why):
    r = cert_curl(cert_apns, **kw)
    assert (r.status, r.json) == (status, {"reason": why}), (name, r)
    (req,) = cert_apns.wait_for(1)
    assert (req.status, req.reason) == (status, why)


def test_limits_are_inclusive(cert_apns):
    pad = 4096 - len(b'{"aps":{"alert":"x"},"p":""}')
    body = b'{"aps":{"alert":"x"},"p":"' + b"x" * pad + b'"}'
    assert len(body) == 4096
    r = cert_curl(cert_apns, body=body, headers=(
        "apns-push-type: alert", "apns-collapse-id: " + "c" * 64))
    assert r.status == 200, r
    # VoIP pushes may carry 5120 bytes
    body = b'{"aps":{},"p":"' + b"x" * (5120 - 17) + b'"}'
    assert len(body) == 5120
    r = cert_curl(cert_apns, body=body, headers=("apns-push-type: voip",))
    assert r.status == 200, r


def test_duplicate_headers(cert_apns):
    pki = cert_apns.pki
    c = H2Client(cert_apns, pki.client_cert, pki.client_key)
    try:
        r = c.request(headers=VISIBLE_HEADERS + ("apns-priority: 10",))
    finally:
        c.close()
    assert r["status"] == 400 and reason(r) == "DuplicateHeaders"


# ---- scripted replies ------------------------------------------------------

def test_scripted_410_with_timestamp(cert_apns):
    cert_apns.set_replies(TOKEN, 410, 200)
    t0 = int(time.time() * 1000)
    r = cert_curl(cert_apns)
    assert r.status == 410, r
    assert r.json["reason"] == "Unregistered"
    assert t0 - 1000 <= r.json["timestamp"] <= int(time.time() * 1000) + 1000
    assert cert_curl(cert_apns).status == 200       # the last one repeats
    assert cert_curl(cert_apns).status == 200
    cert_apns.set_replies(TOKEN, (410, "ExpiredToken", {"timestamp": 42}))
    r = cert_curl(cert_apns)
    assert (r.status, r.json) == (410, {"reason": "ExpiredToken",
                                        "timestamp": 42}), r
    assert [q.status for q in cert_apns.wait_for(4)] == [410, 200, 200, 410]


def test_scripted_errors_default_and_responder(cert_apns):
    other = "00" * 32
    cert_apns.set_replies(TOKEN, (400, "BadDeviceToken"))
    cert_apns.default = (503, "ServiceUnavailable")
    r = cert_curl(cert_apns)
    assert (r.status, r.json) == (400, {"reason": "BadDeviceToken"}), r
    r = cert_curl(cert_apns, token=other)
    assert (r.status, r.json) == (503, {"reason": "ServiceUnavailable"})
    cert_apns.responder = lambda req: 429 if req.token == other else 200
    r = cert_curl(cert_apns, token=other)
    assert (r.status, r.json) == (429, {"reason": "TooManyRequests"}), r
    # validation comes before the script: a bad request gets its error
    r = cert_curl(cert_apns, headers=("apns-priority: 3",))
    assert r.json == {"reason": "BadPriority"}, r
    cert_apns.reset()                   # requests and scripts forgotten
    assert cert_apns.requests == [] and cert_apns.connections == 0
    cert_apns.responder = None
    assert cert_curl(cert_apns).status == 503       # the default stays


# ---- token auth ------------------------------------------------------------

def token_headers(pki, topic=True):
    return VISIBLE_HEADERS + (("apns-topic: " + pki.topic,) if topic
                              else ())


def test_token_auth_accepts_a_valid_jwt(token_apns):
    pki = token_apns.pki
    jwt = sign_jwt(pki)
    r = curl(token_apns, jwt=jwt, headers=token_headers(pki))
    assert r.status == 200, r
    (req,) = token_apns.wait_for(1)
    assert req.auth == "token" and req.topic == pki.topic
    assert req.jwt["kid"] == pki.key_id and req.jwt["iss"] == pki.team_id
    assert abs(req.jwt["iat"] - time.time()) < 60
    assert len(token_apns.provider_tokens_for()) == 1
    # the same JWT again, even on a new connection, is no update
    assert curl(token_apns, jwt=jwt, headers=token_headers(pki)).status == 200
    assert len(token_apns.provider_tokens_for()) == 1


def test_token_auth_missing_jwt_and_topic(token_apns):
    pki = token_apns.pki
    jwt = sign_jwt(pki)     # one: each signature differs (random nonce)
    r = curl(token_apns, headers=token_headers(pki))
    assert (r.status, r.json) == (403, {"reason": "MissingProviderToken"})
    r = curl(token_apns, headers=token_headers(pki) +
             ("authorization: basic abc",))
    assert (r.status, r.json) == (403, {"reason": "MissingProviderToken"})
    r = curl(token_apns, jwt=jwt, headers=token_headers(pki, False))
    assert (r.status, r.json) == (400, {"reason": "MissingTopic"}), r
    r = curl(token_apns, jwt=jwt, headers=VISIBLE_HEADERS +
             ("apns-topic: com.example.other",))
    assert (r.status, r.json) == (400, {"reason": "TopicDisallowed"}), r


def _other_key():
    from cryptography.hazmat.primitives.asymmetric import ec
    return ec.generate_private_key(ec.SECP256R1())


@pytest.mark.parametrize("what", ["signature", "der", "kid", "team", "alg",
                                  "iat type", "garbage"])
def test_token_auth_invalid_jwt(token_apns, what):
    pki = token_apns.pki
    jwt = {
        "signature": lambda: sign_jwt(pki, key=_other_key()),
        "der": lambda: sign_jwt(pki, der=True),
        "kid": lambda: sign_jwt(pki, kid="ABCDEFGHIJ"),
        "team": lambda: sign_jwt(pki, iss="ABCDEFGHIJ"),
        "alg": lambda: sign_jwt(pki, alg="HS256"),
        "iat type": lambda: sign_jwt(pki, iat=str(int(time.time()))),
        "garbage": lambda: "not.a.jwt",
    }[what]()
    r = curl(token_apns, jwt=jwt, headers=token_headers(pki))
    assert (r.status, r.json) == (403, {"reason": "InvalidProviderToken"}), r
    assert token_apns.provider_tokens_for() == []


def test_token_auth_expired_iat(token_apns):
    pki = token_apns.pki
    r = curl(token_apns, jwt=sign_jwt(pki, iat=int(time.time()) - 3601),
             headers=token_headers(pki))
    assert (r.status, r.json) == (403, {"reason": "ExpiredProviderToken"})
    r = curl(token_apns, jwt=sign_jwt(pki, iat=int(time.time()) - 3500),
             headers=token_headers(pki))
    assert r.status == 200, r


def test_token_updates_faster_than_the_interval(fake_factory):
    fast = fake_factory("token")
    pki = fast.pki
    first = sign_jwt(pki)
    second = sign_jwt(pki, iat=int(time.time()) - 1)  # another, valid JWT
    assert first != second
    assert curl(fast, jwt=first, headers=token_headers(pki)).status == 200
    r = curl(fast, jwt=second, headers=token_headers(pki))
    assert (r.status, r.json) == (429, {"reason":
                                        "TooManyProviderTokenUpdates"}), r
    r = curl(fast, jwt=second, headers=token_headers(pki))
    assert r.status == 429, r                   # still refused
    assert curl(fast, jwt=first, headers=token_headers(pki)).status == 200
    assert fast.token_updates_refused == 2
    assert len(fast.provider_tokens_for()) == 1
    # With the interval configured down, the new token is accepted.
    lax = fake_factory("token", min_token_interval=0)
    assert curl(lax, jwt=first, headers=token_headers(pki)).status == 200
    assert curl(lax, jwt=second, headers=token_headers(pki)).status == 200
    assert len(lax.provider_tokens_for()) == 2


def test_token_connection_one_stream_until_a_valid_token(token_apns):
    pki = token_apns.pki
    c = H2Client(token_apns)
    try:
        c.pump(lambda: c.settings_seen)
        assert c.settings_seen == [1]           # Apple: one stream at first
        r = c.request(jwt=sign_jwt(pki), headers=token_headers(pki))
        assert r["status"] == 200
        c.pump(lambda: c.settings_seen[-1] == 1000)
    finally:
        c.close()


def test_token_unrelated_key_on_the_same_connection(token_apns):
    pki = token_apns.pki
    key = _other_key()
    token_apns.add_token_key("KEY2KEY2KE", pki.team_id, key.public_key())
    c = H2Client(token_apns)
    try:
        r = c.request(jwt=sign_jwt(pki), headers=token_headers(pki))
        assert r["status"] == 200
        r = c.request(jwt=sign_jwt(pki, kid="KEY2KEY2KE", key=key),
                      headers=token_headers(pki))
        assert r["status"] == 403 and reason(r) == "UnrelatedKeyIdInToken"
    finally:
        c.close()


def test_either_mode_and_cleartext(fake_factory, pki):
    f = fake_factory("either")
    assert cert_curl(f).status == 200
    r = curl(f, jwt=sign_jwt(pki), headers=token_headers(pki))
    assert r.status == 200, r
    r = curl(f)
    assert (r.status, r.json) == (403, {"reason": "MissingProviderToken"})
    assert [q.auth for q in f.wait_for(3)] == ["cert", "token", "token"]
    plain = fake_factory("token", tls=False)
    assert plain.url.startswith("http://")
    r = curl(plain, jwt=sign_jwt(pki), headers=token_headers(pki),
             http="--http2-prior-knowledge")
    assert r.status == 200, r


# ---- connections -----------------------------------------------------------

def test_concurrent_streams_settings_and_refusal(fake_factory, pki):
    f = fake_factory("cert", max_concurrent_streams=8, delay=0.3)
    c = H2Client(f, pki.client_cert, pki.client_key)
    try:
        c.pump(lambda: c.settings_seen)
        assert c.settings_seen == [8]
        sids = [c.post(token="%064x" % i) for i in range(8)]
        c.pump(lambda: all(c.done(s) for s in sids))
        assert f.peak_streams == 8
        assert all(c.responses[s]["status"] == 200 for s in sids)
        # Lowered at run time; once acknowledged the fake refuses streams
        # beyond it. (The client is made to ignore the limit.)
        f.set_max_concurrent_streams(2)
        c.pump(lambda: c.settings_seen[-1] == 2)
        f.wait_for(lambda _: f.conns[1].max_streams == 2)
        c.h2.remote_settings.__class__ = fake_apns._LooseSettings
        sids = [c.post(token="%064x" % i) for i in range(4)]
        c.pump(lambda: all(c.done(s) for s in sids))
        assert [c.responses[s]["reset"] for s in sids] == [None, None, 7, 7]
        assert f.refused_streams == 2 and len(f.requests) == 10
    finally:
        c.close()


def test_goaway_on_demand_and_ping(cert_apns):
    pki = cert_apns.pki
    c = H2Client(cert_apns, pki.client_cert, pki.client_key)
    try:
        assert c.request()["status"] == 200
        c.h2.ping(b"12345678")
        c.pump(lambda: c.ping_acks == 1)
        assert cert_apns.ping() == 1
        c.pump(lambda: c.pings == 1)
        cert_apns.wait_for(lambda _: cert_apns.pings == 1 and
                           cert_apns.ping_acks == 1)
        assert cert_apns.goaway("Shutdown") == 1
        c.pump(lambda: c.goaway is not None and c.closed)
        assert json.loads(c.goaway.additional_data) == {"reason": "Shutdown"}
        assert c.goaway.last_stream_id == 1 and c.goaway.error_code == 0
    finally:
        c.close()
    cert_apns.wait_for(lambda _: cert_apns.active_connections == 0)


def test_scripted_goaway_mid_stream(cert_apns):
    pki = cert_apns.pki
    cert_apns.set_replies(TOKEN, 200, ("goaway", "Shutdown"))
    c = H2Client(cert_apns, pki.client_cert, pki.client_key)
    try:
        assert c.request()["status"] == 200
        sid = c.post()
        c.pump(lambda: c.goaway is not None)
        assert c.goaway.last_stream_id < sid
        assert json.loads(c.goaway.additional_data)["reason"] == "Shutdown"
        assert not c.done(sid)
    finally:
        c.close()
    assert [q.status for q in cert_apns.wait_for(2)] == [200, 0]


def test_drop_stop_and_start_on_the_same_port(cert_apns):
    pki = cert_apns.pki
    c = H2Client(cert_apns, pki.client_cert, pki.client_key)
    try:
        assert c.request()["status"] == 200
        cert_apns.drop_connections()
        c.pump(lambda: c.closed)
        assert c.goaway is None                 # no GOAWAY, just gone
    finally:
        c.close()
    assert cert_apns.active_connections == 0
    port = cert_apns.port
    cert_apns.stop()
    assert cert_curl(cert_apns).rc == 7         # connection refused
    cert_apns.start()
    assert cert_apns.port == port and cert_curl(cert_apns).status == 200


# ---- its own ceiling -------------------------------------------------------

@pytest.mark.parametrize("mode", ["cert", "token"])
def test_throughput_ceiling(fake_factory, pki, capsys, mode):
    """curl --parallel (one connection, 100 streams; token mode: curl opens
    more connections while the fake allows one stream per connection
    before a valid token). Prints requests/s."""
    n = 5000
    f = fake_factory(mode)
    body = os.path.join(pki.directory, "visible.json")
    with open(body, "wb") as fh:
        fh.write(VISIBLE)
    args = ["curl", "-sS", "--http2", "--cacert", f.ca_file, "-Z",
            "--parallel-max", "100", "--no-progress-meter", "-o", "/dev/null",
            "-w", "%{http_code}\n", "--data-binary", "@" + body]
    for h in token_headers(pki):
        args += ["-H", h]
    if mode == "cert":
        args += ["--cert-type", "P12", "--cert",
                 "%s:%s" % (pki.client_p12, pki.p12_password)]
    else:
        args += ["-H", "authorization: bearer " + sign_jwt(pki)]
    args.append("%s/3/device/[%08d-%08d]" % (f.url, 10 ** 7,
                                             10 ** 7 + n - 1))
    t0 = time.monotonic()
    r = subprocess.run(args, capture_output=True, text=True, timeout=120)
    elapsed = time.monotonic() - t0
    assert Counter(r.stdout.split()) == {"200": n}, r.stderr[-500:]
    assert len(f.requests) == n
    with capsys.disabled():
        print("\nfake APNs (%s): %d requests in %.2f s = %.0f requests/s, "
              "%d connection(s), peak %d streams" % (
                  mode, n, elapsed, n / elapsed, f.connections,
                  f.peak_streams))
    assert n / elapsed > 1000
