"""A throw-away test PKI for the fake APNs server (fake_apns.py).

    pki = make_pki(directory)          # or make_pki(directory, topic=...)

writes into `directory` (and nowhere else):

  ca.pem, ca-key.pem            test CA; signs the server and the client
  server.pem, server-key.pem    the fake's certificate: SAN IP 127.0.0.1,
                                DNS localhost and Apple's host names (for
                                clients that keep the real URL and pin the
                                address, e.g. CURLOPT_RESOLVE), and the
                                extra server_names (e.g. "fakes", the
                                fakes' container in tests/docker)
  client.pem, client-key.pem    APNs-like client certificate (RSA 2048):
                                subject UID=<topic>, CN="Apple Push
                                Services: <topic>", OU=<team id>
  client.p12                    the same as PKCS#12, modern: AES-256-CBC,
                                PBKDF2-HMAC-SHA256, SHA-256 MAC
  client-legacy.p12             the same as PKCS#12, LEGACY like Keychain /
                                OpenSSL 1.x exports: certificate bag in
                                RC2-40-CBC, key bag in 3DES, SHA-1 MAC;
                                OpenSSL 3 reads it only with the legacy
                                provider (`openssl pkcs12 -legacy`)
  other-ca.pem, other-ca-key.pem, other-client.pem, other-client-key.pem,
  other-client.p12              a second CA and a client certificate with
                                the same subject signed by it: the fake must
                                refuse it in the TLS handshake
  AuthKey_<KEYID>.p8            token auth key: P-256, PKCS#8 PEM, as Apple
                                hands it out
  pki.json                      the paths and identifiers below

The p12 password is `pki.p12_password` for all three .p12 files. A second
make_pki() on the same directory reuses what pki.json lists (when its
server certificate already names every one of server_names).

sign_jwt(pki, iat=None, ...) makes an APNs provider token (ES256, raw r||s)
from the .p8, for tests that drive the fake without the C client.

Needs python3-cryptography and the `openssl` command (3.x) for the legacy
.p12, which cryptography cannot write.
"""

import base64
import datetime
import ipaddress
import json
import os
import secrets
import string
import subprocess
import time
from dataclasses import asdict, dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.utils import \
    decode_dss_signature
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

DEFAULT_TOPIC = "chat.delta.test"
DEFAULT_P12_PASSWORD = "test-p12-pass"
APPLE_HOSTS = ("api.push.apple.com", "api.sandbox.push.apple.com",
               "api.development.push.apple.com")
_ID_ALPHABET = string.ascii_uppercase + string.digits


@dataclass
class Pki:
    """Paths (absolute) and identifiers of one test PKI."""
    directory: str
    topic: str
    p12_password: str
    ca_cert: str
    ca_key: str
    server_cert: str
    server_key: str
    client_cert: str
    client_key: str
    client_p12: str
    client_p12_legacy: str
    other_ca_cert: str
    other_ca_key: str
    other_client_cert: str
    other_client_key: str
    other_client_p12: str
    token_key: str          # the .p8
    key_id: str             # 10 characters
    team_id: str            # 10 characters

    def token_private_key(self):
        with open(self.token_key, "rb") as f:
            return serialization.load_pem_private_key(f.read(), None)

    def token_public_key(self):
        return self.token_private_key().public_key()


def _now():
    return datetime.datetime.now(datetime.timezone.utc)


def _write(path, data, mode=0o644):
    # World-readable on purpose: throw-away material that a daemon under
    # another uid may have to read.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def _pem_cert(cert):
    return cert.public_bytes(serialization.Encoding.PEM)


def _pem_key(key):
    return key.private_bytes(serialization.Encoding.PEM,
                             serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _make_ca(cn):
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME,
                                         "pushstack tests"),
                      x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (x509.CertificateBuilder()
            .subject_name(name).issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(_now() - datetime.timedelta(hours=1))
            .not_valid_after(_now() + datetime.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0),
                           True)
            .add_extension(x509.KeyUsage(
                digital_signature=False, content_commitment=False,
                key_encipherment=False, data_encipherment=False,
                key_agreement=False, key_cert_sign=True, crl_sign=True,
                encipher_only=False, decipher_only=False), True)
            .add_extension(ski, False)
            .sign(key, hashes.SHA256()))
    return cert, key


def _leaf(ca_cert, ca_key, subject, public_key, eku, san=None):
    b = (x509.CertificateBuilder()
         .subject_name(subject).issuer_name(ca_cert.subject)
         .public_key(public_key)
         .serial_number(x509.random_serial_number())
         .not_valid_before(_now() - datetime.timedelta(hours=1))
         .not_valid_after(_now() + datetime.timedelta(days=30))
         .add_extension(x509.BasicConstraints(ca=False, path_length=None),
                        True)
         .add_extension(x509.ExtendedKeyUsage([eku]), False)
         .add_extension(x509.AuthorityKeyIdentifier
                        .from_issuer_public_key(ca_key.public_key()), False))
    if san:
        b = b.add_extension(x509.SubjectAlternativeName(san), False)
    return b.sign(ca_key, hashes.SHA256())


def apns_client_subject(topic, team_id):
    """The subject Apple puts in an APNs client certificate."""
    return x509.Name([
        x509.NameAttribute(NameOID.USER_ID, topic),
        x509.NameAttribute(NameOID.COMMON_NAME,
                           "Apple Push Services: %s" % topic),
        x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, team_id),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "pushstack tests"),
        x509.NameAttribute(NameOID.COUNTRY_NAME, "DE"),
    ])


def _modern_p12(name, key, cert, password):
    """BestAvailableEncryption: with cryptography >= 38 on OpenSSL 3 that
    is PBES2 (PBKDF2-HMAC-SHA256, AES-256-CBC) and a SHA-256 MAC, checked
    in _check_modern_p12."""
    return pkcs12.serialize_key_and_certificates(
        name.encode(), key, cert, None,
        serialization.BestAvailableEncryption(password.encode()))


def _check_modern_p12(path, password):
    rc, info = openssl_p12_info(path, password, legacy=False)
    if rc != 0 or "AES-256-CBC" not in info or "PBKDF2" not in info:
        raise RuntimeError("modern p12 is not PBES2/AES-256:\n" + info)


def openssl_p12_info(path, password, legacy):
    """`openssl pkcs12 -info -noout [-legacy]` on path: (returncode,
    stdout + stderr). The password travels in the environment."""
    cmd = ["openssl", "pkcs12", "-info", "-noout", "-in", path,
           "-passin", "env:PKI_P12_PASS"]
    if legacy:
        cmd.append("-legacy")
    env = dict(os.environ, PKI_P12_PASS=password)
    p = subprocess.run(cmd, env=env, capture_output=True, text=True,
                       timeout=30)
    return p.returncode, p.stdout + p.stderr


def _legacy_p12(cert_path, key_path, out_path, password, name):
    env = dict(os.environ, PKI_P12_PASS=password)
    subprocess.run(["openssl", "pkcs12", "-export", "-legacy",
                    "-certpbe", "PBE-SHA1-RC2-40",
                    "-keypbe", "PBE-SHA1-3DES", "-macalg", "sha1",
                    "-name", name, "-in", cert_path, "-inkey", key_path,
                    "-passout", "env:PKI_P12_PASS", "-out", out_path],
                   env=env, check=True, capture_output=True, timeout=30)
    rc, info = openssl_p12_info(out_path, password, legacy=True)
    if rc != 0 or "pbeWithSHA1And40BitRC2-CBC" not in info or \
            "pbeWithSHA1And3-KeyTripleDES-CBC" not in info:
        raise RuntimeError("legacy p12 is not RC2-40 + 3DES:\n" + info)


def _random_id():
    return "".join(secrets.choice(_ID_ALPHABET) for _ in range(10))


def load_pki(directory):
    """The Pki described by directory/pki.json, or None if absent or a
    listed file is missing."""
    meta = os.path.join(directory, "pki.json")
    try:
        with open(meta) as f:
            pki = Pki(**json.load(f))
    except (OSError, ValueError, TypeError):
        return None
    for field, value in asdict(pki).items():
        if field not in ("directory", "topic", "p12_password", "key_id",
                         "team_id") and not os.path.isfile(value):
            return None
    return pki


def _server_san(name):
    """A SAN entry: an IP address literal or a DNS name."""
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


def _names_server_cert(pki, server_names):
    """Whether pki's server certificate names every one of server_names."""
    if not server_names:
        return True
    try:
        with open(pki.server_cert, "rb") as f:
            cert = x509.load_pem_x509_certificate(f.read())
        san = cert.extensions.get_extension_for_class(
            x509.SubjectAlternativeName).value
    except (OSError, ValueError, x509.ExtensionNotFound):
        return False
    return all(_server_san(n) in san for n in server_names)


def make_pki(directory, topic=DEFAULT_TOPIC,
             p12_password=DEFAULT_P12_PASSWORD, reuse=True,
             server_names=()):
    """Generate the test PKI into directory (created if needed) and return
    its Pki. server_names: more DNS names (or IP literals) for the server
    certificate's SAN. With reuse, a complete PKI already there with the
    same topic and password, whose server certificate names server_names,
    is returned as it is."""
    directory = os.path.abspath(directory)
    os.makedirs(directory, exist_ok=True)
    if reuse:
        old = load_pki(directory)
        if old is not None and old.topic == topic and \
                old.p12_password == p12_password and \
                _names_server_cert(old, server_names):
            return old

    def p(name):
        return os.path.join(directory, name)

    key_id, team_id = _random_id(), _random_id()

    ca_cert, ca_key = _make_ca("pushstack test CA")
    _write(p("ca.pem"), _pem_cert(ca_cert))
    _write(p("ca-key.pem"), _pem_key(ca_key))

    # The fake APNs server.
    srv_key = ec.generate_private_key(ec.SECP256R1())
    srv_cert = _leaf(
        ca_cert, ca_key,
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]),
        srv_key.public_key(), ExtendedKeyUsageOID.SERVER_AUTH,
        [x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
         x509.DNSName("localhost")] + [x509.DNSName(h) for h in APPLE_HOSTS] +
        [_server_san(n) for n in server_names])
    _write(p("server.pem"), _pem_cert(srv_cert))
    _write(p("server-key.pem"), _pem_key(srv_key))

    # The APNs-like client certificate (Apple issues RSA 2048).
    subject = apns_client_subject(topic, team_id)
    cl_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    cl_cert = _leaf(ca_cert, ca_key, subject, cl_key.public_key(),
                    ExtendedKeyUsageOID.CLIENT_AUTH)
    _write(p("client.pem"), _pem_cert(cl_cert))
    _write(p("client-key.pem"), _pem_key(cl_key))
    friendly = "Apple Push Services: %s" % topic
    _write(p("client.p12"),
           _modern_p12(friendly, cl_key, cl_cert, p12_password))
    _check_modern_p12(p("client.p12"), p12_password)
    _legacy_p12(p("client.pem"), p("client-key.pem"),
                p("client-legacy.p12"), p12_password, friendly)

    # Same subject, wrong issuer.
    oca_cert, oca_key = _make_ca("some other CA")
    _write(p("other-ca.pem"), _pem_cert(oca_cert))
    _write(p("other-ca-key.pem"), _pem_key(oca_key))
    ocl_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ocl_cert = _leaf(oca_cert, oca_key, subject, ocl_key.public_key(),
                     ExtendedKeyUsageOID.CLIENT_AUTH)
    _write(p("other-client.pem"), _pem_cert(ocl_cert))
    _write(p("other-client-key.pem"), _pem_key(ocl_key))
    _write(p("other-client.p12"),
           _modern_p12(friendly, ocl_key, ocl_cert, p12_password))

    # Token auth: the .p8 as Apple hands it out.
    tok_key = ec.generate_private_key(ec.SECP256R1())
    p8 = p("AuthKey_%s.p8" % key_id)
    _write(p8, _pem_key(tok_key))

    pki = Pki(directory=directory, topic=topic, p12_password=p12_password,
              ca_cert=p("ca.pem"), ca_key=p("ca-key.pem"),
              server_cert=p("server.pem"), server_key=p("server-key.pem"),
              client_cert=p("client.pem"), client_key=p("client-key.pem"),
              client_p12=p("client.p12"),
              client_p12_legacy=p("client-legacy.p12"),
              other_ca_cert=p("other-ca.pem"),
              other_ca_key=p("other-ca-key.pem"),
              other_client_cert=p("other-client.pem"),
              other_client_key=p("other-client-key.pem"),
              other_client_p12=p("other-client.p12"),
              token_key=p8, key_id=key_id, team_id=team_id)
    _write(p("pki.json"), json.dumps(asdict(pki), indent=1).encode())
    return pki


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def sign_jwt(pki=None, iat=None, kid=None, iss=None, key=None, alg="ES256",
             der=False, header=None, claims=None):
    """An APNs provider token: header {"alg":"ES256","kid":kid}, claims
    {"iss":team,"iat":iat} (defaults from pki, iat = now), ES256 with the
    raw 64-byte r||s signature. der=True puts the DER signature instead
    (what a naive EVP_DigestSign user sends: Apple rejects it). header /
    claims replace the whole JSON objects."""
    if key is None:
        key = pki.token_private_key()
    if header is None:
        header = {"alg": alg, "kid": kid if kid is not None else pki.key_id}
    if claims is None:
        claims = {"iss": iss if iss is not None else pki.team_id,
                  "iat": int(time.time()) if iat is None else iat}
    signing_input = (b64url(json.dumps(header, separators=(",", ":"))
                            .encode()) + "." +
                     b64url(json.dumps(claims, separators=(",", ":"))
                            .encode()))
    sig = key.sign(signing_input.encode("ascii"),
                   ec.ECDSA(hashes.SHA256()))
    if not der:
        r, s = decode_dss_signature(sig)
        sig = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    return signing_input + "." + b64url(sig)
