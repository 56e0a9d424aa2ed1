"""Self-tests of fake_webpush.py: it must accept what a correct sender
sends and refuse what a push service refuses, or proxyd's Web Push tests
would prove nothing.

Senders here are independent of the fake's own code: an RFC 8291
encryptor written below on python3-cryptography (checked byte for byte
against RFC 8291 Appendix A first), VAPID JWTs signed with PyJWT
(python3-jwt), and, where node is installed, the web-push library
(webpush_js/, its own http_ece encryption and jws signing). Requests go
over HTTP/1.1 (http.client) and HTTP/2 (curl, ALPN h2 and h2c prior
knowledge), to 127.0.0.0/8 and [::1] only.

    /usr/bin/python3 -m pytest -q tests/e2e/fakes/tests/test_fake_webpush.py
"""

import base64
import http.client
import json
import os
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
import urllib.parse

import jwt as pyjwt
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from fake_webpush import FakeWebPush, decrypt_aes128gcm, DecryptError
from pki import make_pki

HERE = os.path.dirname(os.path.abspath(__file__))
WEBPUSH_JS_DIR = os.path.join(HERE, "webpush_js")
SUBJECT = "mailto:ops@example.org"

# RFC 8291 Appendix A and the "ping" vector (docs/push-providers.md §3.3).
RFC = {
    "plaintext": b"When I grow up, I want to be a watermelon",
    "as_private": "yfWPiYE-n46HLnH0KqZOF1fJJU3MYrct3AELtAQ-oRw",
    "ua_private": "q1dXpw3UpT5VOmu_cf_v6ih07Aems3njxI-JWgLcM94",
    "ua_public": "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBH"
                 "m4bjyPjs7Vd8pZGH6SRpkNtoIAiw4",
    "auth": "BTBZMqHH6r4Tts7J_aSIgg",
    "salt": "DGv6ra1nlYgDCS1FRnbzlw",
    "body": "DGv6ra1nlYgDCS1FRnbzlwAAEABBBP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27m"
            "lmlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8wEqKK6PBru3jl7A_yl95bQpu6cVP"
            "TpK4Mqgkf1CXztLVBSt2Ks3oZwbuwXPXLWyouBWLVWGNWQexSgSxsj_Qulcy4a-"
            "fN",
    "ping_body": "DGv6ra1nlYgDCS1FRnbzlwAAABVBBP4z9KsN6nGRTbVYI_c7VJSPQTBtkg"
                 "cy27mlmlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8wEqKK6PBru3jl7A_V"
                 "ltVSYNUyTD4YwQ4tDR_WJDLw0xw",
}


def b64u(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64u(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def p256_private(raw):
    return ec.derive_private_key(int.from_bytes(raw, "big"), ec.SECP256R1())


def point(key):
    return key.public_key().public_bytes(
        serialization.Encoding.X962,
        serialization.PublicFormat.UncompressedPoint)


# ---- an independent sender --------------------------------------------------

def encrypt(ua_public, auth, plaintext, as_private=None, salt=None,
            rs=4096):
    """RFC 8291 §3.4 + RFC 8188 §2, one record, written out here."""
    as_private = as_private or ec.generate_private_key(ec.SECP256R1())
    salt = salt if salt is not None else os.urandom(16)
    as_public = point(as_private)
    ua_key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(),
                                                          ua_public)
    shared = as_private.exchange(ec.ECDH(), ua_key)
    prk_key = HKDF(hashes.SHA256(), 32, auth,
                   b"WebPush: info\0" + ua_public + as_public).derive(shared)
    cek = HKDF(hashes.SHA256(), 16, salt,
               b"Content-Encoding: aes128gcm\0").derive(prk_key)
    nonce = HKDF(hashes.SHA256(), 12, salt,
                 b"Content-Encoding: nonce\0").derive(prk_key)
    record = AESGCM(cek).encrypt(nonce, plaintext + b"\x02", None)
    return (salt + rs.to_bytes(4, "big") + bytes([65]) + as_public +
            record)


class Vapid:
    """An application server key; JWTs signed by PyJWT."""

    def __init__(self):
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.public = b64u(point(self.key))
        self.private_raw = b64u(
            self.key.private_numbers().private_value.to_bytes(32, "big"))

    def header(self, aud, exp=None, sub=SUBJECT, claims=None, key=None,
               k=None, alg="ES256"):
        if claims is None:
            claims = {"aud": aud, "exp": int(time.time()) + 12 * 3600
                      if exp is None else exp}
            if sub is not None:
                claims["sub"] = sub
        pem = (key or self.key).private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption())
        if alg == "HS256":
            token = pyjwt.encode(claims, "secret", algorithm="HS256")
        else:
            token = pyjwt.encode(claims, pem, algorithm=alg,
                                 headers={"typ": "JWT"})
        return "vapid t=%s, k=%s" % (token, k or self.public)


# ---- fixtures --------------------------------------------------------------

@pytest.fixture(scope="module")
def pki():
    d = tempfile.mkdtemp(prefix="e2e-webpush-pki-")
    yield make_pki(d)
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def factory(pki):
    fakes = []

    def make(**kw):
        kw.setdefault("pki", pki)
        f = FakeWebPush(**kw).start()
        fakes.append(f)
        return f
    yield make
    for f in fakes:
        f.close()
    for f in fakes:
        assert f.errors == [], f.errors


@pytest.fixture
def fake(factory):
    return factory()


@pytest.fixture
def vapid():
    return Vapid()


def post(fake, sub, body=None, headers=None, path=None, method="POST",
         vapid=None, drop=(), plaintext=b"ping"):
    """One HTTP/1.1 request with correct defaults; returns (status,
    headers, body). drop: header names to leave out."""
    if body is None:
        body = encrypt(sub.ua_public, sub.auth, plaintext)
    h = {"TTL": "60", "Urgency": "high",
         "Content-Encoding": "aes128gcm",
         "Content-Type": "application/octet-stream"}
    if vapid is not None:
        h["Authorization"] = vapid.header(fake.origin)
    h.update(headers or {})
    for name in drop:
        h.pop(name, None)
    if fake.tls:
        ctx = ssl.create_default_context(cafile=fake.ca_file)
        c = http.client.HTTPSConnection(fake.host, fake.port, context=ctx,
                                        timeout=10)
    else:
        c = http.client.HTTPConnection(fake.host, fake.port, timeout=10)
    try:
        c.request(method, path or urllib.parse.urlsplit(sub.endpoint).path,
                  body=body, headers=h)
        r = c.getresponse()
        return r.status, dict(r.getheaders()), r.read()
    finally:
        c.close()


def curl(fake, sub, vapid, args, body=None):
    """The same push with curl (HTTP/2 variants); returns the status."""
    if body is None:
        body = encrypt(sub.ua_public, sub.auth, b"ping")
    cmd = ["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code} "
           "%{http_version}", "--max-time", "10", "-X", "POST",
           "-H", "TTL: 60", "-H", "Content-Encoding: aes128gcm",
           "-H", "Authorization: " + vapid.header(fake.origin),
           "--data-binary", "@-"] + args
    if fake.tls:
        cmd += ["--cacert", fake.ca_file]
    r = subprocess.run(cmd + [sub.endpoint], input=body, capture_output=True,
                       timeout=30)
    assert r.returncode == 0, r.stderr
    code, version = r.stdout.decode().split()
    return int(code), version


# ---- the decryptor on known vectors ----------------------------------------

def test_rfc8291_vectors():
    ua = p256_private(unb64u(RFC["ua_private"]))
    assert b64u(point(ua)) == RFC["ua_public"]
    auth, salt = unb64u(RFC["auth"]), unb64u(RFC["salt"])
    as_key = p256_private(unb64u(RFC["as_private"]))
    # The sender of this file reproduces the RFC byte for byte...
    assert encrypt(point(ua), auth, RFC["plaintext"], as_key, salt) == \
        unb64u(RFC["body"])
    assert encrypt(point(ua), auth, b"ping", as_key, salt, rs=21) == \
        unb64u(RFC["ping_body"])
    # ...and the fake's decryptor reads both.
    assert decrypt_aes128gcm(unb64u(RFC["body"]), ua, auth) == \
        (RFC["plaintext"], 4096)
    assert decrypt_aes128gcm(unb64u(RFC["ping_body"]), ua, auth) == \
        (b"ping", 21)
    # RFC 8291 §4 wants rs greater than the record: notifiers' rs 21 for
    # "ping" is exactly the record, fine for browsers, not strictly.
    with pytest.raises(DecryptError, match="not greater"):
        decrypt_aes128gcm(unb64u(RFC["ping_body"]), ua, auth, True)
    bad = bytearray(unb64u(RFC["body"]))
    bad[-20] ^= 1
    with pytest.raises(DecryptError, match="tag"):
        decrypt_aes128gcm(bytes(bad), ua, auth)
    with pytest.raises(DecryptError, match="tag"):
        decrypt_aes128gcm(unb64u(RFC["body"]), ua, bytes(16))


def test_padding_and_delimiters():
    ua = ec.generate_private_key(ec.SECP256R1())
    auth = os.urandom(16)
    salt = os.urandom(16)
    as_key = ec.generate_private_key(ec.SECP256R1())
    ua_key = ua.public_key()
    shared = as_key.exchange(ec.ECDH(), ua_key)
    prk = HKDF(hashes.SHA256(), 32, auth, b"WebPush: info\0" + point(ua) +
               point(as_key)).derive(shared)
    cek = HKDF(hashes.SHA256(), 16, salt,
               b"Content-Encoding: aes128gcm\0").derive(prk)
    nonce = HKDF(hashes.SHA256(), 12, salt,
                 b"Content-Encoding: nonce\0").derive(prk)
    head = salt + (4096).to_bytes(4, "big") + b"\x41" + point(as_key)

    def body(padded):
        return head + AESGCM(cek).encrypt(nonce, padded, None)
    assert decrypt_aes128gcm(body(b"hi\x02\0\0\0"), ua, auth)[0] == b"hi"
    with pytest.raises(DecryptError, match="delimiter"):
        decrypt_aes128gcm(body(b"hi\x01"), ua, auth)     # not the last
    with pytest.raises(DecryptError, match="delimiter"):
        decrypt_aes128gcm(body(b"\0\0"), ua, auth)
    with pytest.raises(DecryptError, match="idlen"):
        decrypt_aes128gcm(head[:20] + b"\x20" + head[21:] + b"x" * 40, ua,
                          auth)
    with pytest.raises(DecryptError, match="more than one record"):
        decrypt_aes128gcm(head[:16] + (18).to_bytes(4, "big") + head[20:] +
                          AESGCM(cek).encrypt(nonce, b"hi\x02", None) +
                          b"x", ua, auth)


# ---- accepted --------------------------------------------------------------

def test_good_push_http1(fake, vapid):
    sub = fake.subscribe()
    assert sub.token == "webpush:%s/push/%s|%s|%s" % (
        fake.origin, sub.id, b64u(sub.ua_public), b64u(sub.auth))
    assert fake.origin == "https://127.0.0.1:%d" % fake.port
    status, headers, _ = post(fake, sub, vapid=vapid)
    assert status == 201
    assert headers["Location"].startswith(fake.origin + "/m/")
    assert headers["TTL"] == "60"
    (r,) = fake.wait_for(1)
    assert (r.http_version, r.status, r.payload, r.rs) == \
        ("1.1", 201, b"ping", 4096)
    assert r.vapid["aud"] == fake.origin and r.vapid["sub"] == SUBJECT
    assert r.vapid["k"] == vapid.public
    assert (r.ttl, r.urgency) == (60, "high")
    assert fake.payloads(sub) == [b"ping"]
    # http.client offers no ALPN: HTTP/1.1 by default.
    assert fake.connections == 1 and fake.conns[1].alpn is None
    # Bound to the first k: the same key keeps working; the largest
    # payload in a 4096-byte body passes.
    assert post(fake, sub, vapid=vapid, plaintext=b"x" * 3993)[0] == 201
    assert fake.payloads(sub)[-1] == b"x" * 3993


def test_http1_keep_alive(fake, vapid):
    sub = fake.subscribe()
    ctx = ssl.create_default_context(cafile=fake.ca_file)
    c = http.client.HTTPSConnection(fake.host, fake.port, context=ctx,
                                    timeout=10)
    try:
        for _ in range(3):
            c.request("POST", urllib.parse.urlsplit(sub.endpoint).path,
                      body=encrypt(sub.ua_public, sub.auth, b"ping"),
                      headers={"TTL": "0", "Content-Encoding": "aes128gcm",
                               "Authorization": vapid.header(fake.origin)})
            r = c.getresponse()
            r.read()
            assert r.status == 201
    finally:
        c.close()
    assert fake.connections == 1 and fake.conns[1].requests == 3


def test_good_push_h2_alpn(fake, vapid):
    sub = fake.subscribe()
    assert curl(fake, sub, vapid, ["--http2"]) == (201, "2")
    (r,) = fake.wait_for(1)
    assert (r.http_version, r.payload) == ("2", b"ping")
    assert fake.conns[1].alpn == "h2"


def test_plain_http_and_h2c(factory, vapid):
    fake = factory(tls=False, pki=None)
    assert fake.origin == "http://127.0.0.1:%d" % fake.port
    sub = fake.subscribe()
    assert sub.token.startswith("webpush:http://127.0.0.1:")
    assert post(fake, sub, vapid=vapid)[0] == 201
    assert curl(fake, sub, vapid, ["--http2-prior-knowledge"]) == (201, "2")
    assert [r.http_version for r in fake.wait_for(2)] == ["1.1", "2"]
    assert fake.payloads(sub) == [b"ping", b"ping"]


def test_other_loopback_hosts(factory, vapid):
    fake = factory(host="127.0.0.2")
    sub = fake.subscribe()
    assert fake.origin.startswith("https://127.0.0.2:")
    assert post(fake, sub, vapid=vapid)[0] == 201
    fake = factory(host="localhost")
    sub = fake.subscribe()
    assert sub.endpoint.startswith("https://localhost:")
    assert post(fake, sub, vapid=vapid)[0] == 201
    if not socket.has_ipv6:
        return
    try:
        fake = factory(host="::1")
    except OSError:
        pytest.skip("no IPv6 loopback")
    sub = fake.subscribe()
    assert sub.endpoint.startswith("https://[::1]:")
    assert curl(fake, sub, vapid, ["--http2"]) == (201, "2")
    assert fake.received(sub)[0].vapid["aud"] == "https://[::1]:%d" % \
        fake.port


def test_get_is_unifiedpush_discovery(fake):
    sub = fake.subscribe()
    status, _, body = post(fake, sub, method="GET", body=b"")
    assert status == 200
    assert json.loads(body) == {"unifiedpush": {"version": 1}}


def test_listener_counts_connections_without_requests(factory):
    fake = factory(tls=False, pki=None, host="127.0.0.2")
    assert fake.connections == 0
    with socket.create_connection(("127.0.0.2", fake.port), timeout=5):
        pass
    fake.wait_for(lambda _: fake.connections == 1)
    assert fake.requests == []


def test_stop_start_same_port(fake, vapid):
    sub = fake.subscribe()
    port = fake.port
    fake.stop()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    fake.start()
    assert fake.port == port
    assert post(fake, sub, vapid=vapid)[0] == 201


# ---- refused ---------------------------------------------------------------

def _now():
    return int(time.time())


REFUSALS = [
    # (name, how to build the request, status, reason fragment)
    ("no-authorization", lambda f, s, v: {"drop": ["Authorization"]},
     401, "one Authorization"),
    ("webpush-scheme", lambda f, s, v: {"headers": {
        "Authorization": "WebPush " + v.header(f.origin)[6:]}},
     401, "scheme"),
    ("no-k", lambda f, s, v: {"headers": {
        "Authorization": v.header(f.origin).split(", k=")[0]}}, 401, "t="),
    ("k-not-a-point", lambda f, s, v: {"headers": {
        "Authorization": v.header(f.origin, k=b64u(b"\x04" + bytes(64)))}},
     403, "point"),
    ("signed-by-another-key", lambda f, s, v: {"headers": {
        "Authorization": v.header(
            f.origin, key=ec.generate_private_key(ec.SECP256R1()))}},
     403, "signature"),
    ("der-signature", lambda f, s, v: {"headers": {
        "Authorization": der_header(f, v)}}, 403, "r||s"),
    ("hs256", lambda f, s, v: {"headers": {
        "Authorization": v.header(f.origin, alg="HS256")}}, 403, "ES256"),
    ("aud-without-port", lambda f, s, v: {"headers": {
        "Authorization": v.header("https://127.0.0.1")}}, 403, "aud"),
    ("aud-http", lambda f, s, v: {"headers": {
        "Authorization": v.header(f.origin.replace("https", "http"))}},
     403, "aud"),
    ("aud-with-path", lambda f, s, v: {"headers": {
        "Authorization": v.header(s.endpoint)}}, 403, "aud"),
    ("expired", lambda f, s, v: {"headers": {
        "Authorization": v.header(f.origin, exp=_now() - 5)}},
     403, "expired"),
    ("exp-over-24h", lambda f, s, v: {"headers": {
        "Authorization": v.header(f.origin, exp=_now() + 86400 + 120)}},
     403, "ahead"),
    ("exp-string", lambda f, s, v: {"headers": {
        "Authorization": v.header(f.origin, claims={
            "aud": f.origin, "exp": str(_now() + 60), "sub": SUBJECT})}},
     403, "integer"),
    ("no-sub", lambda f, s, v: {"headers": {
        "Authorization": v.header(f.origin, sub=None)}}, 403, "sub"),
    ("sub-http", lambda f, s, v: {"headers": {
        "Authorization": v.header(f.origin, sub="http://example.org")}},
     403, "sub"),
    ("no-ttl", lambda f, s, v: {"drop": ["TTL"]}, 400, "TTL"),
    ("negative-ttl", lambda f, s, v: {"headers": {"TTL": "-1"}}, 400,
     "TTL"),
    ("bad-urgency", lambda f, s, v: {"headers": {"Urgency": "urgent"}},
     400, "Urgency"),
    ("bad-topic", lambda f, s, v: {"headers": {"Topic": "a" * 33}}, 400,
     "Topic"),
    ("aesgcm", lambda f, s, v: {"headers": {"Content-Encoding": "aesgcm"}},
     400, "Content-Encoding"),
    ("no-content-encoding", lambda f, s, v: {"drop": ["Content-Encoding"]},
     400, "Content-Encoding"),
    ("corrupted-ciphertext", lambda f, s, v: {"body": flip(
        encrypt(s.ua_public, s.auth, b"ping"), -3)}, 400, "tag"),
    ("corrupted-salt", lambda f, s, v: {"body": flip(
        encrypt(s.ua_public, s.auth, b"ping"), 0)}, 400, "tag"),
    ("other-auth-secret", lambda f, s, v: {"body": encrypt(
        s.ua_public, os.urandom(16), b"ping")}, 400, "tag"),
    ("to-another-ua-key", lambda f, s, v: {"body": encrypt(
        point(ec.generate_private_key(ec.SECP256R1())), s.auth, b"ping")},
     400, "tag"),
    ("two-records", lambda f, s, v: {"body": encrypt(
        s.ua_public, s.auth, b"x" * 100, rs=64)}, 400, "record"),
    ("too-large", lambda f, s, v: {"body": encrypt(
        s.ua_public, s.auth, b"x" * 3994)}, 413, "at most 4096"),
    ("unknown-subscription", lambda f, s, v: {"path": "/push/nobody"},
     404, "invalid URL"),
    ("not-a-push-path", lambda f, s, v: {"path": "/other"}, 404,
     "invalid URL"),
    ("put", lambda f, s, v: {"method": "PUT"}, 405, "POST"),
]


def flip(body, i):
    b = bytearray(body)
    b[i] ^= 0x20
    return bytes(b)


def der_header(fake, vapid):
    """A VAPID header whose JWT carries the DER signature (what a naive
    EVP_DigestSign user sends), not raw r||s."""
    signing = "%s.%s" % (
        b64u(b'{"typ":"JWT","alg":"ES256"}'),
        b64u(json.dumps({"aud": fake.origin, "exp": _now() + 3600,
                         "sub": SUBJECT}).encode()))
    sig = vapid.key.sign(signing.encode(), ec.ECDSA(hashes.SHA256()))
    return "vapid t=%s.%s, k=%s" % (signing, b64u(sig), vapid.public)


@pytest.mark.parametrize("name,build,status,reason", REFUSALS,
                         ids=[r[0] for r in REFUSALS])
def test_refused(fake, vapid, name, build, status, reason):
    sub = fake.subscribe()
    got, _, body = post(fake, sub, vapid=vapid, **build(fake, sub, vapid))
    assert got == status, body
    (r,) = fake.wait_for(1)
    assert r.status == status and reason in r.reason, r.reason
    assert json.loads(body)["code"] == status
    assert fake.payloads(sub) == []
    # The same subscription still takes a correct push afterwards.
    assert post(fake, sub, vapid=vapid)[0] == 201


def test_bound_to_its_application_server_key(factory, vapid):
    other = Vapid()
    fake = factory(vapid_public_key=vapid.public)
    sub = fake.subscribe()
    status, _, body = post(fake, sub, vapid=other)
    assert status == 401 and b"subscription was made with" in body
    assert post(fake, sub, vapid=vapid)[0] == 201
    # Bound by its first push when the fake has no key configured.
    fake = factory()
    sub = fake.subscribe()
    assert post(fake, sub, vapid=other)[0] == 201
    assert post(fake, sub, vapid=vapid)[0] == 401
    free = fake.subscribe(restricted=False)
    assert post(fake, free, vapid=vapid)[0] == 201
    assert post(fake, free, vapid=other)[0] == 201


def test_lenient_decrypt_like_a_real_push_service(factory, vapid):
    fake = factory(decrypt_failure_status=None)
    sub = fake.subscribe()
    body = flip(encrypt(sub.ua_public, sub.auth, b"ping"), -3)
    assert post(fake, sub, vapid=vapid, body=body)[0] == 201
    (r,) = fake.wait_for(1)
    assert r.payload is None and "tag" in r.decrypt_error


def test_strict_record_size(factory, vapid):
    fake = factory(strict_record_size=True)
    sub = fake.subscribe()
    tight = encrypt(sub.ua_public, sub.auth, b"ping", rs=21)
    assert post(fake, sub, vapid=vapid, body=tight)[0] == 400
    assert post(fake, sub, vapid=vapid)[0] == 201


def test_unsubscribed_is_gone(fake, vapid):
    sub = fake.subscribe()
    fake.unsubscribe(sub)
    status, _, body = post(fake, sub, vapid=vapid)
    assert status == 410 and json.loads(body)["errno"] == 106


# ---- scripted answers ------------------------------------------------------

def test_scripted_replies(fake, vapid):
    sub, other = fake.subscribe(), fake.subscribe()
    fake.set_replies(sub, 404, (429, {"Retry-After": "3"}), 413, 401,
                     (500, {}, "oops"), {"status": 503, "delay": 0.2}, 201)
    got = []
    for _ in range(8):
        status, headers, body = post(fake, sub, vapid=vapid)
        got.append((status, headers.get("Retry-After"), body))
    assert [g[0] for g in got] == [404, 429, 413, 401, 500, 503, 201, 201]
    assert got[1][1] == "3"
    assert json.loads(got[0][2])["errno"] == 102
    assert got[4][2] == b"oops"
    assert post(fake, other, vapid=vapid)[0] == 201   # not scripted
    fake.default = 202
    assert post(fake, other, vapid=vapid)[0] == 202
    fake.responder = lambda req: 410 if req.payload == b"bye" else None
    assert post(fake, other, vapid=vapid, plaintext=b"bye")[0] == 410
    assert post(fake, other, vapid=vapid)[0] == 202
    # Scripted answers still come only after the checks pass.
    fake.set_replies(other, 201)
    assert post(fake, other, drop=["Authorization"])[0] == 401


def test_delayed_answer_over_h2_does_not_block_other_streams(fake, vapid):
    slow, quick = fake.subscribe(), fake.subscribe()
    fake.set_replies(slow, {"status": 201, "delay": 1.0})
    body = encrypt(slow.ua_public, slow.auth, b"ping")
    qbody = encrypt(quick.ua_public, quick.auth, b"ping")
    with tempfile.TemporaryDirectory() as d:
        for name, b in (("slow", body), ("quick", qbody)):
            with open(os.path.join(d, name), "wb") as f:
                f.write(b)
        common = ["-sS", "-o", "/dev/null", "-w", "%{http_code} "
                  "%{url_effective}\n", "--max-time", "10", "--http2",
                  "--cacert", fake.ca_file, "-X", "POST",
                  "-H", "TTL: 60", "-H", "Content-Encoding: aes128gcm",
                  "-H", "Authorization: " + vapid.header(fake.origin)]
        # --parallel without --parallel-immediate: curl waits for the
        # first connection and multiplexes the second stream on it.
        r = subprocess.run(
            ["curl", "--parallel"] + common +
            ["--data-binary", "@" + os.path.join(d, "slow"), slow.endpoint,
             "--next"] + common +
            ["--data-binary", "@" + os.path.join(d, "quick"),
             quick.endpoint], capture_output=True, timeout=30)
        assert r.returncode == 0, r.stderr
    # Both on one connection, and the quick stream answered first.
    assert r.stdout.decode().split() == ["201", quick.endpoint, "201",
                                         slow.endpoint]
    assert fake.connections == 1
    assert fake.payloads(slow) == [b"ping"] and fake.payloads(quick) == \
        [b"ping"]


# ---- a second implementation: the web-push library (Node.js) ----------------

@pytest.fixture(scope="module")
def webpush_js():
    if shutil.which("node") is None:
        pytest.skip("node is not installed")
    if not os.path.isdir(os.path.join(WEBPUSH_JS_DIR, "node_modules")):
        r = subprocess.run(["npm", "ci", "--no-audit", "--no-fund"],
                           cwd=WEBPUSH_JS_DIR, capture_output=True,
                           timeout=300)
        assert r.returncode == 0, r.stderr.decode(errors="replace")

    def request(sub, vapid, payload, ttl=60, urgency="high"):
        spec = {"endpoint": sub.endpoint, "p256dh": b64u(sub.ua_public),
                "auth": b64u(sub.auth), "payload": payload,
                "subject": SUBJECT, "vapid_public": vapid.public,
                "vapid_private": vapid.private_raw, "ttl": ttl,
                "urgency": urgency}
        r = subprocess.run(["node", os.path.join(WEBPUSH_JS_DIR,
                                                 "request.mjs")],
                           input=json.dumps(spec).encode(),
                           capture_output=True, timeout=60)
        assert r.returncode == 0, r.stderr.decode(errors="replace")
        return json.loads(r.stdout)
    return request


def test_web_push_library_accepted(fake, vapid, webpush_js):
    sub = fake.subscribe()
    for payload in ("ping", "x" * 3000):
        req = webpush_js(sub, vapid, payload)
        headers = {k: str(v) for k, v in req["headers"].items()
                   if k.lower() != "content-length"}
        assert headers["Content-Encoding"] == "aes128gcm"
        status, _, body = post(fake, sub,
                               body=base64.b64decode(req["body_b64"]),
                               headers=headers)
        assert status == 201, body
    reqs = fake.wait_for(2)
    assert [r.payload for r in reqs] == [b"ping", b"x" * 3000]
    assert reqs[0].vapid["aud"] == fake.origin
    assert reqs[0].vapid["k"] == vapid.public


def test_web_push_library_refused_when_tampered(fake, vapid, webpush_js):
    sub = fake.subscribe()
    req = webpush_js(sub, vapid, "ping")
    headers = {k: str(v) for k, v in req["headers"].items()
               if k.lower() != "content-length"}
    body = base64.b64decode(req["body_b64"])
    assert post(fake, sub, body=flip(body, -1), headers=headers)[0] == 400
    # A JWT for this origin, presented to another fake: wrong aud.
    other = FakeWebPush(pki=fake.pki).start()
    try:
        osub = other.subscribe()
        status, _, rbody = post(other, osub, body=body, headers=headers,
                                path="/push/" + osub.id)
        assert status == 403 and b"aud" in rbody
    finally:
        other.close()
    assert post(fake, sub, body=body, headers=headers)[0] == 201
