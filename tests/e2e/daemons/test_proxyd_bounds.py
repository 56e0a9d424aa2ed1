"""proxyd's bounds on what a client can make it hold (docs/proxyd.md
"Bounds"), against the real daemon on 127.0.0.1:

- The decryption cache keeps only plaintexts that are tokens, and no more
  bytes than --cache-bytes: anybody can encrypt to the proxy's public key,
  and a small compressed ciphertext used to inflate to 64 KiB and stay in
  the cache (RSS 128 MB -> 4.1 GB in 62,000 requests). Ciphertexts made
  here, each unique, decrypt to 15 KiB and 60 KiB of text that is no
  token; RSS stays flat.
- /register: refused (503) without APNs credentials, bounded in all by
  --max-registrations (503 past it; moving a registration is not refused)
  and per client by --register-rate (429; each address, and each client
  behind a --trusted-proxy, its own bucket; --register-clients of them).
- --require-encrypted: plain tokens refused (410 /notify, 400 /register).
- The database holds plaintext APNs tokens: 0600 whatever the umask.

Each test failed against proxyd before these bounds (RSS +190 MB over the
flood, 200 and rows without credentials, unknown flags, a 0644 database
under umask 0).

The ciphertexts come from a small RFC 9580 encryptor written here on
python3-cryptography (v6 PKESK X25519, SEIPD v2 AES-128 OCB, the profile of
docs/openpgp.md, with a ZLIB compressed packet inside), independent of
proxyd's decoder; it is first checked against the RFC decoder of
tests/data/openpgp/generate/rfc9580_decode.py.
"""
import base64
import json
import os
import re
import secrets
import stat
import sys
import zlib

import pytest

from harness import OPENPGP_DIR, REPO_DIR, register_secret, wait_until

sys.path.insert(0, os.path.join(REPO_DIR, "tests", "data", "openpgp",
                                "generate"))
import rfc9580_decode  # noqa: E402

from cryptography.hazmat.primitives import hashes, serialization  # noqa
from cryptography.hazmat.primitives.asymmetric.x25519 import (  # noqa
    X25519PrivateKey, X25519PublicKey)
from cryptography.hazmat.primitives.ciphers.aead import AESOCB3  # noqa
from cryptography.hazmat.primitives.kdf.hkdf import HKDF  # noqa
from cryptography.hazmat.primitives.keywrap import aes_key_wrap  # noqa

# See test_metadata_dictd_bounds.py: RSS under ASan means something only
# without the quarantine (no effect on a build without ASan).
NO_QUARANTINE = dict(os.environ, ASAN_OPTIONS=":".join(
    filter(None, [os.environ.get("ASAN_OPTIONS"), "quarantine_size_mb=0",
                  "thread_local_quarantine_size_kb=0"])))


# ---- an RFC 9580 encryptor (docs/openpgp.md's profile) -------------------

def packet(tag, body):
    """OpenPGP-format header (RFC 9580 4.2.1), fixed length."""
    n = len(body)
    if n < 192:
        head = bytes([n])
    elif n < 8384:
        n -= 192
        head = bytes([(n >> 8) + 192, n & 0xFF])
    else:
        head = b"\xff" + n.to_bytes(4, "big")
    return bytes([0xC0 | tag]) + head + body


def recipient():
    """The X25519 subkey of keyring-v6.asc's first key: (fpr, public)."""
    keys = rfc9580_decode.load_keyring(os.path.join(OPENPGP_DIR,
                                                    "keyring-v6.asc"))
    k = [k for k in keys if k["version"] == 6 and k["algo"] == 25][0]
    return k["fpr"], k["pub"]


def encrypt(inner, fpr, pub, chunk_octet=7):
    """openpgp:<base64> of a v6 PKESK (5.1.2, 5.1.6) and a v2 SEIPD with
    AES-128 OCB (5.13.2) around the packet stream `inner`; every call
    has its own session key, ephemeral key and salt."""
    sk = secrets.token_bytes(16)
    eph = X25519PrivateKey.generate()
    eph_pub = eph.public_key().public_bytes(serialization.Encoding.Raw,
                                            serialization.PublicFormat.Raw)
    shared = eph.exchange(X25519PublicKey.from_public_bytes(pub))
    kek = HKDF(hashes.SHA256(), 16, None, b"OpenPGP X25519").derive(
        eph_pub + pub + shared)
    wrapped = aes_key_wrap(kek, sk)
    pkesk = (bytes([6, 33, 6]) + fpr + bytes([25]) + eph_pub
             + bytes([len(wrapped)]) + wrapped)
    info = bytes([0xD2, 2, 7, 2, chunk_octet])
    salt = secrets.token_bytes(32)
    okm = HKDF(hashes.SHA256(), 16 + 15 - 8, salt, info).derive(sk)
    key, iv = okm[:16], okm[16:]
    ocb = AESOCB3(key)
    size = 1 << (chunk_octet + 6)
    chunks = [inner[i:i + size] for i in range(0, len(inner), size)]
    body = b"".join(ocb.encrypt(iv + i.to_bytes(8, "big"), c, info)
                    for i, c in enumerate(chunks))
    final = ocb.encrypt(iv + len(chunks).to_bytes(8, "big"), b"",
                        info + len(inner).to_bytes(8, "big"))
    seipd = bytes([2, 7, 2, chunk_octet]) + salt + body + final
    return "openpgp:" + base64.b64encode(packet(1, pkesk)
                                         + packet(18, seipd)).decode()


def literal(data):
    return packet(11, b"b\x00" + bytes(4) + data)


def compressed(stream):
    """A ZLIB Compressed Data packet (5.6) holding stream."""
    return packet(8, b"\x02" + zlib.compress(stream, 9))


@pytest.fixture(scope="module")
def pgp():
    """(fpr, pub), after the encryptor was checked on the RFC decoder."""
    fpr, pub = recipient()
    keys = rfc9580_decode.load_keyring(os.path.join(OPENPGP_DIR,
                                                    "keyring-v6.asc"))
    tok = secrets.token_hex(32)
    assert rfc9580_decode.decrypt(encrypt(literal(tok.encode()), fpr, pub),
                                  keys) == tok
    big = b"x" * 15000
    assert rfc9580_decode.decrypt(encrypt(compressed(literal(big)), fpr,
                                          pub), keys) == big.decode()
    return fpr, pub


# ---- helpers ---------------------------------------------------------------

def rss_bytes(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS for %d" % pid)


def start(proxyd_factory, args=(), env=None, preexec_fn=None, **kw):
    p = proxyd_factory(start=False, log_level="info", extra_args=list(args),
                       **kw)
    p.env = env
    p.preexec_fn = preexec_fn
    p.start()
    return p


def apns_token():
    t = secrets.token_hex(32)
    register_secret(t)
    return t


# ---- the decryption cache --------------------------------------------------

def test_cache_keeps_no_plaintext_that_is_no_token(proxyd_factory, pgp):
    """3,000 unique ciphertexts, each small (~200 bytes) but inflating to
    15 KiB (under the decryptor's cap: a plaintext that is no token) or
    60 KiB (over it): every one is answered 410, and RSS grows by less
    than 12 MB (before: +190 MB, every plaintext kept in the cache)."""
    fpr, pub = pgp
    p = start(proxyd_factory, env=NO_QUARANTINE)
    n = 1500
    sizes = (15000, 60000)
    bodies = [encrypt(compressed(literal(b"x" * size)), fpr, pub)
              for size in sizes for _ in range(n)]
    assert max(len(b) for b in bodies) < 1024
    assert len(set(bodies)) == len(bodies)
    # Warm up (threads, arenas, libmicrohttpd's pools), then measure.
    for b in bodies[:50]:
        assert p.notify(b)[0] == 410
    before = rss_bytes(p.proc.pid)
    for b in bodies[50:]:
        status, _ = p.notify(b)
        assert status == 410, status
    grown = rss_bytes(p.proc.pid) - before
    m = p.metrics()
    print("RSS grew %.1f MB over %d requests; cache %d bytes"
          % (grown / 1e6, len(bodies), m.get("decrypt_cache_bytes", -1)))
    assert grown < 12 * 1024 * 1024, grown
    assert m["decrypt_cache_bytes"] < 1024 * 1024, m["decrypt_cache_bytes"]
    # Each is in the cache, as a small negative entry: asked again, no
    # decryption.
    hits = m.get("decrypt_cache_hits_total", 0)
    assert p.notify(bodies[100])[0] == 410
    assert p.notify(bodies[-1])[0] == 410
    assert p.metric("decrypt_cache_hits_total") == hits + 2


def test_cache_bytes_bound_evicts_tokens(proxyd_factory, fake_apns, pgp):
    """Real tokens (200-hex APNs tokens, the longest kind APNs takes)
    within --cache-bytes 64k: the cache holds at most that, evicting the
    least recently used, counted in decrypt_cache_byte_evictions_total."""
    fpr, pub = pgp
    p = start(proxyd_factory, ["--cache-bytes", "64k", "--debounce", "1ms"])
    toks = [secrets.token_hex(100) for _ in range(600)]
    for t in toks:
        register_secret(t)
    for t in toks:
        body = encrypt(literal(t.encode().ljust(512)), fpr, pub)
        register_secret(body)
        assert p.notify(body)[0] == 200
    m = p.metrics()
    assert 0 < m["decrypt_cache_bytes"] <= 64 * 1024, m
    assert m["decrypt_cache_byte_evictions_total"] > 0, m
    fake_apns.wait_for(len(toks))


# ---- /register -------------------------------------------------------------

def test_register_refused_without_apns_credentials(proxyd_factory,
                                                   fake_apns):
    """No APNs credentials: /register is 503 and stores nothing (before:
    200 and a row for each of them, 7,800 rows/s from one client)."""
    p = start(proxyd_factory, auth=None)
    for _ in range(50):
        status, body = p.register(apns_token())
        assert status == 503, (status, body)
    assert p.db_rows() == []
    assert p.metric("registrations_refused_total") == 50
    assert p.metric("heartbeat_registrations_total") == 0


def test_register_bounded_in_all(proxyd_factory, fake_apns):
    """--max-registrations 20: 20 new tokens are stored, the next ones
    get 503 and are counted; a registered token registering again is
    still 200 (it only moves its row)."""
    p = start(proxyd_factory, ["--max-registrations", "20"],
              interval="1h")
    toks = [apns_token() for _ in range(30)]
    got = [p.register(t)[0] for t in toks]
    assert got == [200] * 20 + [503] * 10, got
    assert len(p.db_rows()) == 20
    assert p.register(toks[3])[0] == 200
    assert p.metric("registrations_full_total") == 10
    assert p.metric("heartbeat_tokens") == 20
    # One log line for the refusals, not ten.
    assert p.log_text().count("--max-registrations 20 reached") == 1


# ---- --require-encrypted ---------------------------------------------------

def test_require_encrypted(proxyd_factory, fake_apns, pgp):
    """Plain tokens: /notify 410 (the relay drops the token: this proxy
    will never take it), /register 400, counted; encrypted ones still
    pushed. Without the flag plain tokens are taken."""
    fpr, pub = pgp
    p = start(proxyd_factory, ["--require-encrypted"], debounce="1ms")
    plain = apns_token()
    assert p.notify(plain)[0] == 410
    assert p.register(plain)[0] == 400
    assert p.metric("plain_tokens_refused_total") == 2
    assert p.db_rows() == []
    enc = encrypt(literal(plain.encode().ljust(512)), fpr, pub)
    register_secret(enc)
    assert p.notify(enc)[0] == 200
    assert p.register(enc)[0] == 200
    fake_apns.wait_for(1)
    assert [r.token for r in fake_apns.requests] == [plain]
    q = start(proxyd_factory, name="open", debounce="1ms")
    assert q.notify(apns_token())[0] == 200


# ---- the database ----------------------------------------------------------

def test_database_0600_under_umask_0(proxyd_factory, fake_apns):
    """The heartbeat schedule holds decrypted APNs tokens: started under
    umask 0, the database and its -wal and -shm are 0600 (before:
    0644)."""
    p = start(proxyd_factory, preexec_fn=lambda: os.umask(0))
    assert p.register(apns_token())[0] == 200
    modes = {}
    for suffix in ("", "-wal", "-shm"):
        path = p.db_path + suffix
        if os.path.exists(path):
            modes[suffix or "db"] = stat.S_IMODE(os.stat(path).st_mode)
    assert "-wal" in modes and "-shm" in modes, modes
    assert modes == {k: 0o600 for k in modes}, {
        k: oct(v) for k, v in modes.items()}


# ---- registrations per client ----------------------------------------------

def register_from(p, token, source=None, xff=None):
    """(status, body, Retry-After or None) of one /register on a
    connection of its own from `source` (a loopback address), with
    X-Forwarded-For."""
    import http.client
    conn = http.client.HTTPConnection(
        "127.0.0.1", p.port, timeout=10.0,
        source_address=(source, 0) if source else None)
    try:
        headers = {"X-Forwarded-For": xff} if xff else {}
        conn.request("POST", "/register", json.dumps({"token": token}),
                     headers)
        r = conn.getresponse()
        return r.status, r.read().decode(), r.getheader("Retry-After")
    finally:
        conn.close()


def test_register_rate_per_client(proxyd_factory, fake_apns):
    """--register-rate 5/min: a client gets 5 registrations, then 429
    saying when to retry (12 s: one more token), in a Retry-After header
    and in the body, before anything is decrypted or stored (before: in
    the body only, the intake could not send the header for a handler's
    answer); another address has its own
    bucket, and so does each client behind a --trusted-proxy (the last
    X-Forwarded-For address). --register-clients 3 forgets the least
    recent client past three (counted)."""
    p = start(proxyd_factory, ["--register-rate", "5/min",
                               "--register-clients", "3",
                               "--trusted-proxy", "127.0.0.9"],
              interval="1h")
    got = [register_from(p, apns_token(), "127.0.0.2") for _ in range(7)]
    assert [s for s, _, _ in got] == [200] * 5 + [429] * 2, got
    m = re.fullmatch(r"too many registrations, retry in (\d+) s\n",
                     got[5][1])
    assert m and 11 <= int(m.group(1)) <= 13, got
    assert got[5][2] == m.group(1), got
    assert all(r is None for _, _, r in got[:5]), got
    assert register_from(p, apns_token(), "127.0.0.3")[0] == 200
    for xff in ("192.0.2.1", "192.0.2.2"):
        got = [register_from(p, apns_token(), "127.0.0.9", xff)[0]
               for _ in range(6)]
        assert got == [200] * 5 + [429], (xff, got)
    assert len(p.db_rows()) == 16
    assert p.metric("registrations_rate_limited_total") == 4
    # 127.0.0.2, 127.0.0.3 and two behind the proxy: one was forgotten
    # for the fourth.
    wait_until(lambda: p.metric("register_clients_forgotten_total") >= 1,
               what="a client forgotten at --register-clients")
    assert p.metric("register_clients") == 3
