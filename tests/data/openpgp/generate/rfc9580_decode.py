#!/usr/bin/python3
"""An independent decoder for the token vectors, written from the RFC 9580
text (section numbers below), with python3-cryptography (Debian 12: 38)
for the primitives only. It shares no code with OpenPGP.js or proxyd.

    /usr/bin/python3 rfc9580_decode.py [-v] DIR

decodes every row of DIR/vectors.tsv and compares with `expected`, error
kinds included (the kinds of tests/data/openpgp/README.md). It covers all
rows: v6 PKESK (X25519, and ECDH to a v4 key), v3 PKESK (X25519, ECDH),
SEIPD v2 with OCB, GCM and EAX (EAX built from CMAC + CTR), SEIPD v1 (CFB +
MDC), compression, and the inner grammar. It first checks itself against
the intermediate values RFC 9580 prints for its A.8 sample. Exit status 1
on any disagreement.
"""
import base64
import binascii
import hashlib
import hmac
import os
import re
import sys
import zlib

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import cmac, hashes, serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import (
    X25519PrivateKey, X25519PublicKey)
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, AESOCB3
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.keywrap import (InvalidUnwrap,
                                                    aes_key_unwrap)

GROUPS = ["core_", "edge_", "ctl_", "rfc_", "rfc9580_", "neg_", "legacy_"]
AES_KEY = {7: 16, 8: 24, 9: 32}               # 9.3
AEAD_NONCE = {1: 16, 2: 15, 3: 12}            # 9.6: EAX, OCB, GCM
CURVE25519_OID = bytes.fromhex("2b060104019755010501")
TRACE = {}                                    # intermediate values, A.8 check


class Reject(Exception):
    def __init__(self, kind, why):
        super().__init__(why)
        self.kind = kind


def need(cond, kind, why):
    if not cond:
        raise Reject(kind, why)


# ---- packets (4.2) --------------------------------------------------------

def packets(data):
    """[(tag, body)]; both header formats, partial lengths joined."""
    out, i = [], 0
    while i < len(data):
        h = data[i]
        i += 1
        need(h & 0x80, "malformed", "bit 7 of a packet header is clear")
        if h & 0x40:                           # OpenPGP format
            tag, body = h & 0x3F, b""
            first = True
            while True:
                need(i < len(data), "malformed", "header cut short")
                o1 = data[i]
                i += 1
                partial = False
                if o1 < 192:
                    n = o1
                elif o1 < 224:
                    need(i < len(data), "malformed", "header cut short")
                    n = ((o1 - 192) << 8) + data[i] + 192
                    i += 1
                elif o1 == 255:
                    need(i + 4 <= len(data), "malformed", "header cut short")
                    n = int.from_bytes(data[i:i + 4], "big")
                    i += 4
                else:
                    n, partial = 1 << (o1 & 0x1F), True
                    need(tag in (8, 11, 18), "malformed",
                         "partial length on a non-data packet")
                    need(not first or n >= 512, "malformed",
                         "first partial part under 512 octets")
                need(i + n <= len(data), "malformed",
                     "packet length runs past the end")
                body += data[i:i + n]
                i += n
                first = False
                if not partial:
                    break
        else:                                  # legacy format
            tag, lt = (h >> 2) & 0x0F, h & 3
            if lt == 3:
                n = len(data) - i
            else:
                w = (1, 2, 4)[lt]
                need(i + w <= len(data), "malformed", "header cut short")
                n = int.from_bytes(data[i:i + w], "big")
                i += w
            need(i + n <= len(data), "malformed",
                 "packet length runs past the end")
            body = data[i:i + n]
            i += n
        out.append((tag, body))
    return out


def ignorable(tag):
    """Marker, Padding and unknown non-critical packets (4.3, 5.8, 5.14)."""
    return tag in (10, 21) or 40 <= tag <= 63


# ---- armor (6) and keys (5.5) ---------------------------------------------

def dearmor(text, kind):
    out = []
    for m in re.finditer(r"-----BEGIN PGP %s-----\r?\n(.*?)-----END PGP %s-----"
                         % (kind, kind), text, re.S):
        lines = m.group(1).splitlines()
        while lines and lines[0].strip() != "":   # armor headers
            lines.pop(0)
        b64 = "".join(l.strip() for l in lines
                      if l.strip() and not l.startswith("="))
        out.append(base64.b64decode(b64, validate=True))
    return out


def mpi(b, i):
    bits = int.from_bytes(b[i:i + 2], "big")
    n = (bits + 7) // 8
    return b[i + 2:i + 2 + n], i + 2 + n


def load_keyring(path):
    """Decryption keys: dicts with fpr, keyid, version, algo, pub, secret."""
    keys = []
    with open(path, encoding="ascii") as f:
        text = f.read()
    for blob in dearmor(text, "PRIVATE KEY BLOCK"):
        for tag, body in packets(blob):
            if tag not in (5, 7):
                continue
            ver, algo = body[0], body[5]
            if ver == 6:                       # 5.5.2.3
                n = int.from_bytes(body[6:10], "big")
                public = body[:10 + n]
                fpr = hashlib.sha256(b"\x9b" + len(public).to_bytes(4, "big")
                                     + public).digest()
                keyid = fpr[:8]
                i = 10
            elif ver == 4:                     # 5.5.2.2
                public = None
                i = 6
                fpr = keyid = None
            else:
                continue
            if algo == 25:                     # X25519 (5.5.5.7)
                pub = body[i:i + 32]
                i += 32
                k = {"algo": 25, "pub": pub}
            elif algo == 18 and ver == 4:      # ECDH (5.5.5.6)
                oidlen = body[i]
                oid = body[i + 1:i + 1 + oidlen]
                i += 1 + oidlen
                point, i = mpi(body, i)
                kdf = body[i:i + 1 + body[i]]
                i += 1 + body[i]
                if oid != CURVE25519_OID or point[0] != 0x40:
                    continue
                k = {"algo": 18, "pub": point[1:], "oid": oid, "kdf": kdf}
            else:
                continue                       # signing keys and the rest
            if public is None:
                public = body[:i]
                fpr = hashlib.sha1(b"\x99" + len(public).to_bytes(2, "big")
                                   + public).digest()
                keyid = fpr[-8:]
            usage = body[i]
            i += 1
            if usage != 0:
                raise ValueError("%s: protected secret key" % path)
            if algo == 25:
                secret = body[i:i + 32]        # native, no checksum in v6
            else:
                s, i = mpi(body, i)            # big-endian: reverse
                secret = s.rjust(32, b"\0")[::-1]
            k.update(fpr=fpr, keyid=keyid, version=ver, secret=secret)
            derived = X25519PrivateKey.from_private_bytes(secret).public_key()
            if derived.public_bytes(serialization.Encoding.Raw,
                                    serialization.PublicFormat.Raw) != k["pub"]:
                raise ValueError("%s: secret does not match public key" % path)
            keys.append(k)
    return keys


# ---- session key recovery (5.1) -------------------------------------------

def x25519(secret, public):
    try:
        return X25519PrivateKey.from_private_bytes(secret).exchange(
            X25519PublicKey.from_public_bytes(public))
    except ValueError as e:                    # all-zero shared secret
        raise Reject("unwrap", "X25519: %s" % e)


def unwrap(kek, wrapped):
    try:
        return aes_key_unwrap(kek, wrapped)
    except (InvalidUnwrap, ValueError) as e:
        raise Reject("unwrap", "AES key unwrap: %s" % (str(e) or
                                                       "integrity check"))


def x25519_session_key(key, eph, wrapped):
    """5.1.6: HKDF-SHA256(eph || pub || shared, 'OpenPGP X25519') -> KEK."""
    shared = x25519(key["secret"], eph)
    kek = HKDF(hashes.SHA256(), 16, None, b"OpenPGP X25519").derive(
        eph + key["pub"] + shared)
    TRACE.update(shared=shared, kek=kek)
    return unwrap(kek, wrapped)


def ecdh_session_key(key, eph_mpi, wrapped):
    """11.5: KEK = SHA-256(00000001 || shared || param)[:16], unwrap,
    PKCS#5 padding off."""
    need(len(eph_mpi) == 33 and eph_mpi[0] == 0x40, "malformed",
         "ECDH ephemeral point")
    shared = x25519(key["secret"], eph_mpi[1:])
    need(key["kdf"][1:] == b"\x01\x08\x07", "unsupported", "ECDH KDF params")
    param = (bytes([len(key["oid"])]) + key["oid"] + b"\x12" + key["kdf"]
             + b"Anonymous Sender    " + key["fpr"])
    kek = hashlib.sha256(b"\0\0\0\1" + shared + param).digest()[:16]
    m = unwrap(kek, wrapped)
    p = m[-1]
    need(1 <= p <= 8 and m[-p:] == bytes([p]) * p, "unwrap", "PKCS#5 pad")
    return m[:-p]


def checksum_ok(key, ck):
    return sum(key) & 0xFFFF == int.from_bytes(ck, "big")


def try_pkesk(body, seipd_version, keys):
    """Session key (cipher or None, key) from one PKESK, or None if it is
    not for us (no-key); Reject on a broken one."""
    ver = body[0]
    if ver == 6:                               # 5.1.2
        n = body[1]
        if n == 0:
            fpr, i = None, 2
        else:
            need(n in (21, 33), "malformed", "v6 PKESK key field length")
            kver, fpr, i = body[2], body[3:2 + n], 2 + n
        algo = body[i]
        i += 1
        cands = [k for k in keys if k["algo"] == algo
                 and (fpr is None or (k["fpr"] == fpr
                                      and k["version"] == kver))]
    elif ver == 3:                             # 5.1.1
        keyid, algo, i = body[1:9], body[9], 10
        cands = [k for k in keys if k["algo"] == algo
                 and (keyid == bytes(8) or k["keyid"] == keyid)]
    else:
        return None
    if (ver == 6) != (seipd_version == 2):     # 10.3.2.1: discard
        return None
    last = None
    for k in cands:                            # anonymous: try each
        try:
            if algo == 25:
                eph, j = body[i:i + 32], i + 32
                need(len(eph) == 32 and j < len(body), "malformed",
                     "X25519 PKESK cut short")
                n = body[j]
                field = body[j + 1:j + 1 + n]
                need(len(field) == n and j + 1 + n == len(body), "malformed",
                     "X25519 PKESK length")
                if ver == 3:                   # cipher octet in clear
                    return field[0], x25519_session_key(k, eph, field[1:])
                return None, x25519_session_key(k, eph, field)
            eph, j = mpi(body, i)
            n = body[j]
            field = body[j + 1:j + 1 + n]
            need(len(field) == n and j + 1 + n == len(body), "malformed",
                 "ECDH PKESK length")
            m = ecdh_session_key(k, eph, field)
            cipher, m = (m[0], m[1:]) if ver == 3 else (None, m)
            need(checksum_ok(m[:-2], m[-2:]), "unwrap", "key checksum")
            return cipher, m[:-2]
        except Reject as e:
            last = e
    if last is not None:
        raise last
    return None


# ---- SEIPD (5.13) -----------------------------------------------------------

def eax_decrypt(key, nonce, data, ad):
    """EAX (Bellare, Rogaway, Wagner) from CMAC and CTR."""
    def omac(t, m):
        c = cmac.CMAC(algorithms.AES(key))
        c.update(bytes(15) + bytes([t]) + m)
        return c.finalize()
    ct, tag = data[:-16], data[-16:]
    n, h, c = omac(0, nonce), omac(1, ad), omac(2, ct)
    want = bytes(a ^ b ^ d for a, b, d in zip(n, h, c))
    if not hmac.compare_digest(want, tag):
        raise InvalidTag()
    d = Cipher(algorithms.AES(key), modes.CTR(n)).decryptor()
    return d.update(ct) + d.finalize()


def aead_decrypt(aead, key, nonce, data, ad):
    try:
        if aead == 2:
            return AESOCB3(key).decrypt(nonce, data, ad)
        if aead == 3:
            return AESGCM(key).decrypt(nonce, data, ad)
        return eax_decrypt(key, nonce, data, ad)
    except InvalidTag:
        raise Reject("auth", "AEAD tag")


def seipd_v2(body, sk):
    """5.13.2: HKDF(sk, salt, info) -> key || IV; chunks; final tag."""
    need(len(body) >= 4 + 32 + 16 + 16, "malformed", "SEIPDv2 too short")
    cipher, aead, c = body[1], body[2], body[3]
    need(len(sk) == AES_KEY[cipher], "malformed", "session key size")
    info = bytes([0xD2, 2, cipher, aead, c])
    nlen = AEAD_NONCE[aead]
    okm = HKDF(hashes.SHA256(), len(sk) + nlen - 8, body[4:36], info).derive(sk)
    key, iv = okm[:len(sk)], okm[len(sk):]
    TRACE.update(message_key=key, iv=iv)
    data, final = body[36:-16], body[-16:]
    size = 1 << (c + 6)
    out, idx = [], 0
    for off in range(0, len(data), size + 16):
        piece = data[off:off + size + 16]
        need(len(piece) >= 16, "auth", "chunk shorter than its tag")
        out.append(aead_decrypt(aead, key, iv + idx.to_bytes(8, "big"),
                                piece, info))
        idx += 1
    plain = b"".join(out)
    aead_decrypt(aead, key, iv + idx.to_bytes(8, "big"), final,
                 info + len(plain).to_bytes(8, "big"))
    return plain


def seipd_v1(body, cipher, sk):
    """5.13.1: CFB, zero IV, prefix, MDC (d3 14 + SHA-1) checked."""
    need(cipher in AES_KEY, "unsupported", "cipher %d" % cipher)
    need(len(sk) == AES_KEY[cipher], "malformed", "session key size")
    need(len(body) >= 1 + 18 + 22, "malformed", "SEIPDv1 too short")
    d = Cipher(algorithms.AES(sk), modes.CFB(bytes(16))).decryptor()
    p = d.update(body[1:]) + d.finalize()
    mdc = hashlib.sha1(p[:-20]).digest()
    need(hmac.compare_digest(mdc, p[-20:]) and p[-22:-20] == b"\xd3\x14",
         "auth", "MDC")
    return p[18:-22]


# ---- message (10.3) -------------------------------------------------------

def literal_text(stream, depth=0):
    """10.3: the literal data of a decrypted packet stream."""
    lits, ops, sigs = [], 0, 0
    for tag, body in packets(stream):
        if tag == 11:
            n = body[1]
            need(len(body) >= 6 + n, "malformed", "literal too short")
            lits.append(body[6 + n:])
        elif tag == 8:
            need(depth < 2 and not lits, "malformed", "compressed packet")
            algo, z = body[0], body[1:]
            try:
                if algo == 0:
                    inner = z
                elif algo == 1:
                    inner = zlib.decompressobj(-15).decompress(z)
                elif algo == 2:
                    inner = zlib.decompress(z)
                else:
                    raise Reject("unsupported", "compression %d" % algo)
            except zlib.error as e:
                raise Reject("malformed", "zlib: %s" % e)
            lits.append(literal_text(inner, depth + 1))
        elif tag == 4:
            need(not lits, "malformed", "one-pass signature after literal")
            ops += 1
        elif tag == 2:                         # after the literal: closes
            if lits:                           # a one-pass signature
                sigs += 1
        elif ignorable(tag):
            pass
        else:
            raise Reject("malformed", "packet %d inside" % tag)
    need(len(lits) == 1, "malformed", "%d literal packets" % len(lits))
    need(sigs == ops, "malformed", "one-pass signatures not matched")
    return lits[0]


def decrypt(token, keys):
    need(token.startswith("openpgp:"), "base64", "no prefix")
    b64 = token[8:]
    need(re.fullmatch(r"(?:[A-Za-z0-9+/]{4})*"
                      r"(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?", b64),
         "base64", "not padded standard base64")
    msg = base64.b64decode(b64)
    pkts = [(t, b) for t, b in packets(msg) if not ignorable(t)]
    need(pkts, "malformed", "no packets")
    need(pkts[-1][0] == 18, "malformed", "the message does not end in a SEIPD")
    esks = pkts[:-1]
    need(all(t in (1, 3) for t, _ in esks), "malformed", "unexpected packet")
    seipd = pkts[-1][1]
    need(len(seipd) >= 1, "malformed", "empty SEIPD")
    ver = seipd[0]
    need(ver in (1, 2), "unsupported", "SEIPD version %d" % ver)
    if ver == 2:
        need(len(seipd) >= 4, "malformed", "SEIPDv2 header")
        need(seipd[1] in AES_KEY, "unsupported", "cipher %d" % seipd[1])
        need(seipd[2] in AEAD_NONCE, "unsupported", "AEAD %d" % seipd[2])
        need(seipd[3] <= 16, "unsupported", "chunk size octet")
    found, last = None, None
    for tag, body in esks:
        if tag != 1:
            continue                           # SKESK: no passwords here
        try:
            found = try_pkesk(body, ver, keys)
        except Reject as e:
            last = e
            continue
        if found is not None:
            break
    if found is None:
        if last is not None:
            raise last
        raise Reject("no-key", "no PKESK for a key of the keyring")
    cipher, sk = found
    TRACE["session_key"] = sk
    plain = seipd_v2(seipd, sk) if ver == 2 else seipd_v1(seipd, cipher, sk)
    data = literal_text(plain)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise Reject("utf8", "literal data is not UTF-8")
    need("\0" not in text, "utf8", "NUL in literal data")
    text = text.strip()
    need(text, "empty", "nothing left after trimming")
    return text


# ---- RFC 9580 A.8 self-check and the vectors ------------------------------

A8_VALUES = {                                  # printed in RFC 9580 A.8.2/4
    "kek": "f66dadcff64592239b254539b64ff607",
    "session_key": "dd708f6fa1ed65114d68d2343e7c2f1d",
    "iv": "5faf3250212ff9",
}


def self_check(d):
    keys = load_keyring(os.path.join(d, "rfc9580-a4-secret.asc"))
    want = "12c83f1e706f6308fe151a417743a1f033790e93e9978488d1db378da9930885"
    if [k["fpr"].hex() for k in keys] != [want]:
        return ["A.4: subkey fingerprint is not the RFC's"]
    with open(os.path.join(d, "rfc9580-a8-message.asc"), encoding="ascii") as f:
        bin_ = dearmor(f.read(), "MESSAGE")[0]
    TRACE.clear()
    out = decrypt("openpgp:" + base64.b64encode(bin_).decode(), keys)
    bad = ["A.8: %s %s, RFC says %s" % (k, TRACE.get(k, b"").hex(), v)
           for k, v in A8_VALUES.items() if TRACE.get(k, b"").hex() != v]
    if out != "Hello, world!":
        bad.append("A.8: plaintext %r" % out)
    return bad


def main(argv):
    verbose = len(argv) > 1 and argv[1] == "-v"
    if len(argv) != (3 if verbose else 2):
        print("usage: rfc9580_decode.py [-v] DIR", file=sys.stderr)
        return 2
    d = argv[-1]
    problems = self_check(d)
    with open(os.path.join(d, "vectors.tsv"), encoding="utf-8") as f:
        lines = f.read().split("\n")
    if lines[0] != "name\tkeyring\tinput\texpected":
        problems.append("vectors.tsv: header")
    keyrings = {}
    count = {g: [0, 0] for g in GROUPS}
    rows = [l.split("\t") for l in lines[1:] if l]
    for name, keyring, token, expected in rows:
        group = max((g for g in GROUPS if name.startswith(g)), key=len)
        count[group][1] += 1
        if keyring not in keyrings:
            keyrings[keyring] = load_keyring(os.path.join(d, keyring))
        try:
            got = decrypt(token, keyrings[keyring])
        except Reject as e:
            got = "ERROR:%s" % e.kind
            why = str(e)
        except (binascii.Error, IndexError, ValueError, KeyError) as e:
            got, why = "ERROR:crash", "%s: %s" % (type(e).__name__, e)
        else:
            why = "ok"
        if verbose:
            print("  %-42s %s" % (name, "ok" if why == "ok"
                                  else "%s (%s)" % (got, why)))
        if got == expected:
            count[group][0] += 1
        else:
            problems.append("%s: got %s (%s), want %s" % (
                name, got[:40], why, expected[:40]))
    for g in GROUPS:
        print("  python      %-9s %d/%d" % (g, count[g][0], count[g][1]))
    for p in problems:
        print("  PROBLEM %s" % p)
    print("rfc9580_decode.py: %d rows, RFC 9580 A.8 intermediate values %s, "
          "%d problems" % (len(rows), "checked", len(problems)))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
