#!/usr/bin/env python3
"""Smoke check of a running fakes container, from another container on
its network (or from the host with --resolve-to):

    python3 /fakes/check_fakes.py --secrets /secrets [--host-name fakes]

Drives each fake as proxyd would and checks the control API: /healthz;
APNs over HTTP/2 with the client certificate -> 200, seen in /pushes,
then a scripted 410 Unregistered; FCM OAuth2 token (assertion of
fcm.json's account) and messages:send -> 200, then a scripted
UNREGISTERED 404; a new Web Push subscription, an encrypted push signed
with vapid.pem -> 201 and its decrypted payload in /pushes, then a
scripted 410; /reset. Prints one line per step; exit 0 when all pass.
"""

import argparse
import base64
import json
import os
import ssl
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import \
    decode_dss_signature
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

import fakes_server  # noqa: E402  (puts the fakes on sys.path)
import tls_client  # noqa: E402
from fake_fcm import sign_assertion  # noqa: E402

APNS_TOKEN = "ab" * 32
FCM_TOKEN = "fcm-registration-token:check_fakes"


def b64u(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64u(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


class Check:
    def __init__(self, args):
        self.args = args
        self.secrets = os.path.abspath(args.secrets)
        self.host = args.host_name
        self.addr = args.resolve_to or self.host
        self.control = "http://%s:%d" % (self.addr, args.control_port)
        self.ca = os.path.join(self.secrets, "ca.pem")
        self.failed = 0

    def ok(self, cond, what):
        print("%s %s" % ("ok  " if cond else "FAIL", what), flush=True)
        if not cond:
            self.failed += 1
        return cond

    # ---- clients ------------------------------------------------------------

    def ctl(self, method, path, doc=None):
        data = None if doc is None else json.dumps(doc).encode()
        req = urllib.request.Request(self.control + path, data=data,
                                     method=method)
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()

    def h2(self, port, method, path, headers=(), body=b"", cert=None):
        """One request on a fresh TLS connection, name checked against
        the host name: (status, headers, body)."""
        r = tls_client.request("https://%s:%d%s" % (self.host, port, path),
                               method, headers, body, ca_file=self.ca,
                               cert=cert, address=self.addr)
        return r.status, r.headers, r.body

    def pushes(self, **q):
        status, body = self.ctl("GET", "/pushes?" + urllib.parse.urlencode(q))
        assert status == 200, (status, body)
        return json.loads(body)

    def wait_pushes(self, n, **q):
        deadline = time.monotonic() + 5
        while True:
            got = self.pushes(**q)
            if len(got) >= n or time.monotonic() > deadline:
                return got
            time.sleep(0.05)

    # ---- the checks ---------------------------------------------------------

    def healthz(self):
        deadline = time.monotonic() + 30
        while True:
            try:
                status, body = self.ctl("GET", "/healthz")
                if status == 200:
                    break
            except OSError:
                status, body = None, b""
            if time.monotonic() > deadline:
                break
            time.sleep(0.2)
        self.ok(status == 200 and body.strip() == b"ok",
                "GET /healthz -> %s %r" % (status, body))
        self.ok(self.ctl("POST", "/reset", {})[0] == 200, "POST /reset")

    def apns(self):
        s = self.secrets
        cert = (os.path.join(s, "client.pem"), os.path.join(s,
                                                            "client-key.pem"))
        payload = json.dumps({"aps": {"alert": "check"}}).encode()
        hdrs = [("apns-push-type", "alert"), ("apns-priority", "10"),
                ("apns-id", str(uuid.uuid4())),
                ("apns-topic", "chat.delta.test")]
        st, rh, rb = self.h2(self.args.apns_port, "POST",
                             "/3/device/" + APNS_TOKEN, hdrs, payload, cert)
        self.ok(st == 200, "APNs push with the client certificate -> %s"
                % st)
        got = self.wait_pushes(1, provider="apns", token=APNS_TOKEN)
        self.ok(len(got) == 1 and got[0]["status"] == 200 and
                got[0]["push_type"] == "alert" and
                got[0]["payload"] == {"aps": {"alert": "check"}},
                "APNs push in /pushes: %s" % got)
        st, _ = self.ctl("POST", "/replies", {
            "provider": "apns", "token": APNS_TOKEN,
            "replies": [[410, "Unregistered"]]})
        self.ok(st == 200, "POST /replies apns 410 -> %s" % st)
        st, rh, rb = self.h2(self.args.apns_port, "POST",
                             "/3/device/" + APNS_TOKEN, hdrs, payload, cert)
        doc = json.loads(rb or b"{}")
        self.ok(st == 410 and doc.get("reason") == "Unregistered" and
                "timestamp" in doc, "APNs scripted -> %s %s" % (st, doc))
        got = self.wait_pushes(2, provider="apns", token=APNS_TOKEN)
        self.ok([g["status"] for g in got] == [200, 410],
                "APNs statuses in /pushes %s" % [g["status"] for g in got])
        try:
            self.h2(self.args.apns_port, "POST", "/3/device/" + APNS_TOKEN,
                    hdrs, payload, None)
            refused = False
        except (ssl.SSLError, ConnectionError, OSError):
            refused = True
        self.ok(refused, "APNs without a client certificate refused")

    def fcm(self):
        account, token_uri = fakes_server.load_account(
            os.path.join(self.secrets, "fcm.json"))
        assertion = sign_assertion(account, token_uri)
        form = urllib.parse.urlencode({
            "grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer",
            "assertion": assertion}).encode()
        st, _, rb = self.h2(self.args.fcm_port, "POST",
                            urllib.parse.urlsplit(token_uri).path,
                            [("content-type",
                              "application/x-www-form-urlencoded")], form)
        self.ok(st == 200, "FCM token endpoint (%s) -> %s" % (token_uri, st))
        access = json.loads(rb)["access_token"]
        msg = json.dumps({"message": {"token": FCM_TOKEN,
                                      "android": {"priority": "high"},
                                      "data": {"level": "awake"}}}).encode()
        path = "/v1/projects/%s/messages:send" % account.project_id
        hdrs = [("authorization", "Bearer " + access),
                ("content-type", "application/json")]
        st, _, rb = self.h2(self.args.fcm_port, "POST", path, hdrs, msg)
        self.ok(st == 200, "FCM send -> %s %s" % (st, rb[:80]))
        st, _ = self.ctl("POST", "/replies", {
            "provider": "fcm", "token": FCM_TOKEN,
            "replies": [[404, "UNREGISTERED"]]})
        self.ok(st == 200, "POST /replies fcm UNREGISTERED -> %s" % st)
        st, _, rb = self.h2(self.args.fcm_port, "POST", path, hdrs, msg)
        self.ok(st == 404 and b"UNREGISTERED" in rb,
                "FCM scripted -> %s %s" % (st, rb[:120]))
        got = self.wait_pushes(2, provider="fcm", token=FCM_TOKEN)
        self.ok([(g["kind"], g["status"]) for g in got] ==
                [("send", 200), ("send", 404)],
                "FCM sends in /pushes %s" % [(g["kind"], g["status"],
                                              g["error"]) for g in got])

    def webpush(self):
        st, body = self.ctl("POST", "/webpush/subscriptions", {})
        sub = json.loads(body)
        prefix = "webpush:https://%s:%d/push/" % (self.host,
                                                   self.args.webpush_port)
        self.ok(st == 200 and sub["token"].startswith(prefix),
                "POST /webpush/subscriptions -> %s" % sub.get("token"))
        endpoint, p256dh, auth = sub["token"][len("webpush:"):].split("|")
        with open(os.path.join(self.secrets, "vapid.pem"), "rb") as f:
            vapid = serialization.load_pem_private_key(f.read(), None)
        path = urllib.parse.urlsplit(endpoint).path

        def push(text):
            body = encrypt(unb64u(p256dh), unb64u(auth), text)
            return self.h2(self.args.webpush_port, "POST", path, [
                ("authorization", vapid_header(vapid, "https://%s:%d" % (
                    self.host, self.args.webpush_port))),
                ("ttl", "60"), ("urgency", "high"),
                ("content-encoding", "aes128gcm")], body)

        st, rh, _ = push(b"ping")
        self.ok(st == 201, "Web Push push -> %s" % st)
        got = self.wait_pushes(1, provider="webpush", token=sub["id"])
        self.ok(len(got) == 1 and got[0]["payload"] == "ping" and
                got[0]["status"] == 201, "Web Push in /pushes: %s" % got)
        st, _ = self.ctl("POST", "/replies", {
            "provider": "webpush", "token": sub["token"],
            "replies": [[410, "gone"]]})
        self.ok(st == 200, "POST /replies webpush 410 -> %s" % st)
        st, _, rb = push(b"ping")
        self.ok(st == 410, "Web Push scripted -> %s %s" % (st, rb[:80]))

    def all_pushes(self):
        got = self.pushes()
        ts = [g["t"] for g in got]
        self.ok(ts == sorted(ts) and
                {g["provider"] for g in got} == {"apns", "fcm", "webpush"},
                "GET /pushes: %d records, in arrival order" % len(got))
        st, body = self.ctl("GET", "/stats")
        stats = json.loads(body)
        self.ok(st == 200 and not any(stats[p]["errors"] for p in stats),
                "GET /stats: no exception inside the fakes")
        self.ok(self.ctl("POST", "/reset")[0] == 200 and
                self.pushes() == [], "POST /reset empties /pushes")
        st, body = self.ctl("POST", "/replies", {"provider": "fcm",
                                                 "token": "x",
                                                 "replies": [[404, "NOPE"]]})
        self.ok(st == 400, "bad reply refused: %s %s" % (st, body[:80]))


def encrypt(ua_public, auth, plaintext):
    """RFC 8291 aes128gcm, one record."""
    as_private = ec.generate_private_key(ec.SECP256R1())
    as_public = as_private.public_key().public_bytes(
        serialization.Encoding.X962,
        serialization.PublicFormat.UncompressedPoint)
    salt = os.urandom(16)
    ua_key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(),
                                                          ua_public)
    shared = as_private.exchange(ec.ECDH(), ua_key)
    ikm = HKDF(hashes.SHA256(), 32, auth,
               b"WebPush: info\0" + ua_public + as_public).derive(shared)
    cek = HKDF(hashes.SHA256(), 16, salt,
               b"Content-Encoding: aes128gcm\0").derive(ikm)
    nonce = HKDF(hashes.SHA256(), 12, salt,
                 b"Content-Encoding: nonce\0").derive(ikm)
    record = AESGCM(cek).encrypt(nonce, plaintext + b"\x02", None)
    return salt + (4096).to_bytes(4, "big") + bytes([65]) + as_public + \
        record


def vapid_header(key, aud):
    head = b64u(json.dumps({"typ": "JWT", "alg": "ES256"}).encode())
    claims = b64u(json.dumps({"aud": aud, "exp": int(time.time()) + 3600,
                              "sub": "mailto:check@example.org"}).encode())
    sig = key.sign((head + "." + claims).encode(), ec.ECDSA(hashes.SHA256()))
    r, s = decode_dss_signature(sig)
    jwt = "%s.%s.%s" % (head, claims, b64u(r.to_bytes(32, "big") +
                                           s.to_bytes(32, "big")))
    k = key.public_key().public_bytes(
        serialization.Encoding.X962,
        serialization.PublicFormat.UncompressedPoint)
    return "vapid t=%s, k=%s" % (jwt, b64u(k))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--secrets", default="/secrets")
    ap.add_argument("--host-name", default="fakes")
    ap.add_argument("--resolve-to", help="connect to this address instead "
                    "of the host name (TLS still checks the name)")
    ap.add_argument("--apns-port", type=int, default=8443)
    ap.add_argument("--fcm-port", type=int, default=8444)
    ap.add_argument("--webpush-port", type=int, default=8445)
    ap.add_argument("--control-port", type=int, default=8080)
    args = ap.parse_args()
    c = Check(args)
    c.healthz()
    c.apns()
    c.fcm()
    c.webpush()
    c.all_pushes()
    print("%s: %d failed" % ("FAIL" if c.failed else "PASS", c.failed))
    return 1 if c.failed else 0


if __name__ == "__main__":
    sys.exit(main())
