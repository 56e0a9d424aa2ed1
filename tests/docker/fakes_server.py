#!/usr/bin/env python3
"""The fake push providers in a container of their own (issue 12).

Runs the fakes of Apple APNs, Google FCM v1 and a Web Push service
(tests/e2e/fakes) on every IPv4 address of the container, under the host
name the other containers reach it by (`fakes`), plus a plain HTTP/1.1
JSON control server for the test driver:

    python3 fakes_server.py --make-secrets DIR [--host-name fakes]
    python3 fakes_server.py --secrets /secrets --host-name fakes

--make-secrets DIR (on the host, before `docker compose up`) writes every
secret the stack needs into DIR (created; mode 0755, files 0644, existing
files overwritten):
  ca.pem, ca-key.pem             the test CA (proxyd's --ca-file); its key
                                 signs the Web Push fake's certificate
  server.pem, server-key.pem     the fakes' certificate, SAN DNS <host-name>
  client.p12, apns.password      APNs client certificate (topic
                                 chat.delta.test) and its password (proxyd
                                 --certificate-file, --password-file)
  client.pem, client-key.pem, client-legacy.p12, other-*, AuthKey_*.p8,
  pki.json                       the rest of tests/e2e/fakes/pki.py's PKI
  fcm.json                       an FCM service-account key, token_uri
                                 https://<host-name>:<fcm-port>/token
                                 (proxyd --fcm-key-path)
  vapid.pem                      P-256 private key, SEC1 PEM as `openssl
                                 ecparam -genkey -noout` writes it (proxyd
                                 --vapid-key-path)
  keyring.asc                    tests/data/openpgp/keyring-v6.asc (proxyd
                                 --openpgp-keyring-path)
  secrets.json                   a summary: URLs, topic, project, VAPID key

--secrets DIR (in the container, DIR mounted read-only) serves, on --bind
(0.0.0.0):
  8443  fake APNs: TLS, ALPN h2 only, client certificate of ca.pem
        required (--apns-mode cert; token/either also possible)
  8444  fake FCM: POST /token (RS256 assertions of fcm.json's account,
        aud = fcm.json's token_uri) and POST
        /v1/projects/<project>/messages:send over HTTP/2
  8445  fake Web Push: TLS, HTTP/2 or 1.1, endpoints
        https://<host-name>:8445/push/<id>; subscriptions are bound to
        vapid.pem's public key when DIR has one; payloads decrypted.
        proxyd needs --webpush-allow-private: the endpoint's address is
        a private one of the Docker network
  8080  control, plain HTTP/1.1, JSON:
    GET  /healthz         200 "ok" once every fake listens
    GET  /pushes          every request the fakes received, in arrival
                          order (sorted by "t"); ?provider=, ?token=,
                          ?kind= filter
    GET  /stats           per fake: connections, TLS failures, errors
    POST /replies         {"provider", "token", "replies": [[status,
                          reason(, options)], ...]}: the token's next
                          answers, the last one repeats; [] forgets them
    POST /webpush/subscriptions   a new subscription: {"token":
                          "webpush:https://fakes:8445/push/<id>|<p256dh>|
                          <auth>", "id", "endpoint", "p256dh", "auth"}
    POST /reset           forget the requests received so far (scripted
                          replies and subscriptions stay)
SIGTERM or SIGINT stops everything; the exit status is 0.

Records in /pushes (all have provider, kind, token, status, t):
  apns     kind "push"; token the device token (hex, as in the path);
           status (0: answered by a scripted GOAWAY), reason, push_type,
           priority, topic, collapse_id, expiration, auth, apns_id,
           payload (JSON), conn
  fcm      kind "send" (token: the registration token, the part after
           chatmail's "fcm-<package>:"; message: the parsed message,
           project, error: the FcmError code answered) or "token" (the
           OAuth2 token endpoint; token null, account, error)
  webpush  kind "push" (POST) or "get" (UnifiedPush discovery); token the
           subscription id; reason, payload (decrypted, UTF-8 text or
           null), payload_b64, decrypt_error, ttl, urgency, topic,
           vapid_sub, http

Replies: each is [status, reason] or [status, reason, options]; a bare
status is fine too. reason null: the provider's usual one.
  apns     reason: Apple's ("Unregistered", "BadDeviceToken", ...);
           options {"delay": s, "timestamp": ms}; ["goaway", reason] sends
           a GOAWAY instead of an answer
  fcm      token: the registration token (without chatmail's
           "fcm-<package>:"); reason: an FcmError code
           ("UNREGISTERED" -> 404, "QUOTA_EXCEEDED" -> 429 with
           Retry-After 60, "UNAVAILABLE", "INTERNAL", ...) or null (the
           status's usual code); options {"retry_after": s, "delay": s}
  webpush  reason: the error body's message; options {"retry_after": s,
           "headers": {...}, "delay": s}; token: the subscription id, its
           endpoint or the whole webpush: token
"""

import argparse
import base64
import http.server
import json
import os
import shutil
import signal
import sys
import threading
import time
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
# In the image the fakes sit next to this file; in the repository they
# are in tests/e2e/fakes.
for _d in (os.path.join(HERE, os.pardir, "e2e", "fakes"), HERE):
    if os.path.isfile(os.path.join(_d, "fake_apns.py")):
        sys.path.insert(0, os.path.abspath(_d))
        break

from cryptography.hazmat.primitives import serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402

import fake_fcm  # noqa: E402
import pki as pki_mod  # noqa: E402
from fake_apns import FakeApns  # noqa: E402
from fake_fcm import FakeFcm, ServiceAccount  # noqa: E402
from fake_webpush import FakeWebPush, b64url, point_bytes  # noqa: E402

PROVIDERS = ("apns", "fcm", "webpush")
KEYRING_SOURCES = (
    os.path.join(HERE, os.pardir, "data", "openpgp", "keyring-v6.asc"),
    os.path.join(HERE, "keyring-v6.asc"),
)


def log(fmt, *args):
    print("fakes: " + (fmt % args if args else fmt), flush=True)


# ---- secrets ----------------------------------------------------------------

def _write(path, data):
    if isinstance(data, str):
        data = data.encode()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.chmod(path, 0o644)


def make_secrets(directory, host_name, apns_port, fcm_port, webpush_port):
    """Everything the stack and the fakes need, into directory."""
    directory = os.path.abspath(directory)
    os.makedirs(directory, exist_ok=True)
    try:
        os.chmod(directory, 0o755)      # the containers' users read it
    except PermissionError:
        pass                            # not ours: as its owner made it
    pki = pki_mod.make_pki(directory, server_names=(host_name,),
                           reuse=False)
    p = lambda name: os.path.join(directory, name)  # noqa: E731
    _write(p("apns.password"), pki.p12_password + "\n")
    token_url = "https://%s:%d/token" % (host_name, fcm_port)
    account = fake_fcm.make_service_account()
    _write(p("fcm.json"), json.dumps(account.key_file(token_url), indent=2))
    vapid = ec.generate_private_key(ec.SECP256R1())
    _write(p("vapid.pem"), vapid.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption()))
    for src in KEYRING_SOURCES:
        if os.path.isfile(src):
            shutil.copyfile(src, p("keyring.asc"))
            os.chmod(p("keyring.asc"), 0o644)
            break
    else:
        raise SystemExit("fakes: keyring-v6.asc not found in %r"
                         % (KEYRING_SOURCES,))
    summary = {
        "host_name": host_name,
        "apns": {"url": "https://%s:%d" % (host_name, apns_port),
                 "topic": pki.topic, "certificate_file": "client.p12",
                 "password_file": "apns.password", "ca_file": "ca.pem"},
        "fcm": {"api_url": "https://%s:%d" % (host_name, fcm_port),
                "token_url": token_url, "key_file": "fcm.json",
                "project_id": account.project_id,
                "client_email": account.client_email},
        "webpush": {"origin": "https://%s:%d" % (host_name, webpush_port),
                    "vapid_key": "vapid.pem",
                    "vapid_public_key": b64url(point_bytes(
                        vapid.public_key()))},
        "keyring": "keyring.asc",
        "ca_file": "ca.pem",
    }
    _write(p("secrets.json"), json.dumps(summary, indent=1) + "\n")
    for name in os.listdir(directory):
        if os.path.isfile(p(name)):
            os.chmod(p(name), 0o644)
    return summary


def load_pki(directory):
    """The Pki of directory/pki.json with its paths moved into directory
    (pki.json holds the absolute paths of where make_pki ran)."""
    with open(os.path.join(directory, "pki.json")) as f:
        d = json.load(f)
    for k, v in d.items():
        if k not in ("topic", "p12_password", "key_id", "team_id"):
            d[k] = os.path.join(directory, os.path.basename(v))
    d["directory"] = directory
    return pki_mod.Pki(**d)


def load_account(path):
    with open(path) as f:
        d = json.load(f)
    key = serialization.load_pem_private_key(d["private_key"].encode(), None)
    return ServiceAccount(project_id=d["project_id"],
                          client_email=d["client_email"],
                          private_key_id=d.get("private_key_id", ""),
                          private_key=key), d.get("token_uri")


def load_vapid_point(path):
    with open(path, "rb") as f:
        key = serialization.load_pem_private_key(f.read(), None)
    return point_bytes(key.public_key())


# ---- the fakes --------------------------------------------------------------

def _text(b):
    if b is None:
        return None
    try:
        return b.decode("utf-8")
    except UnicodeDecodeError:
        return None


def apns_record(r):
    h = r.headers or {}
    return {"provider": "apns", "kind": "push", "token": r.token,
            "status": r.status, "t": r.t, "reason": r.reason,
            "push_type": r.push_type, "priority": r.priority,
            "topic": r.topic, "collapse_id": h.get("apns-collapse-id"),
            "expiration": h.get("apns-expiration"), "auth": r.auth,
            "apns_id": r.apns_id, "payload": r.payload, "conn": r.conn}


def fcm_record(r):
    d = {"provider": "fcm", "kind": r.kind, "token": r.info.get("token"),
         "status": r.status, "t": r.t, "error": r.info.get("error"),
         "http": r.http, "conn": r.conn}
    if r.kind == "send":
        d["message"] = r.info.get("message")
        d["project"] = r.info.get("project")
    elif r.kind == "token":
        d["account"] = r.info.get("account")
    else:
        d["path"] = r.path
    return d


def webpush_record(r):
    vapid = r.vapid or {}
    return {"provider": "webpush",
            "kind": "push" if r.method == "POST" else (r.method or "").lower(),
            "token": r.sub_id, "status": r.status, "t": r.t,
            "reason": r.reason, "payload": _text(r.payload),
            "payload_b64": None if r.payload is None else
            base64.b64encode(r.payload).decode("ascii"),
            "decrypt_error": r.decrypt_error, "ttl": r.ttl,
            "urgency": r.urgency, "topic": r.topic,
            "vapid_sub": vapid.get("sub"), "http": r.http_version,
            "conn": r.conn}


class BadRequest(Exception):
    pass


class Fakes:
    def __init__(self, args):
        secrets = os.path.abspath(args.secrets)
        self.pki = load_pki(secrets)
        account, token_uri = load_account(os.path.join(secrets, "fcm.json"))
        vapid_path = os.path.join(secrets, "vapid.pem")
        vapid = load_vapid_point(vapid_path) if os.path.isfile(vapid_path) \
            else None
        host, bind = args.host_name, args.bind
        self.apns = FakeApns(self.pki, mode=args.apns_mode,
                             port=args.apns_port, host=bind,
                             public_host=host)
        # The assertion's aud is the key file's token_uri (what proxyd
        # puts there), even if the port the fake is reached on differs.
        self.fcm = FakeFcm(self.pki, account=account, port=args.fcm_port,
                           host=bind, public_host=host, audience=token_uri)
        self.webpush = FakeWebPush(self.pki, tls=True, host=bind,
                                   public_host=host, port=args.webpush_port,
                                   vapid_public_key=vapid)
        if token_uri != self.fcm.token_url:
            log("note: fcm.json's token_uri is %s, the fake's token "
                "endpoint %s (proxyd --fcm-token-url)", token_uri,
                self.fcm.token_url)
        self.base = dict.fromkeys(PROVIDERS, 0)    # POST /reset
        self.logged = dict.fromkeys(PROVIDERS, 0)
        self.reset_lock = threading.Lock()

    def start(self):
        self.apns.start()
        self.fcm.start()
        self.webpush.start()
        log("APNs %s (%s auth, topic %s), FCM %s (project %s), Web Push %s"
            "%s", self.apns.url, self.apns.mode, self.pki.topic,
            self.fcm.api_url, self.fcm.account.project_id,
            self.webpush.origin, " (VAPID key %s)"
            % b64url(self.webpush.vapid_public_key)
            if self.webpush.vapid_public_key else "")

    def stop(self):
        self.apns.stop()
        self.fcm.stop()
        self.webpush.close()

    def _raw(self, provider, start=0):
        """The provider's records from index start on, as dicts."""
        # A slice of a list is taken atomically under the GIL: a prefix of
        # what the fake has recorded (records are only ever appended).
        if provider == "apns":
            return [apns_record(r) for r in self.apns.requests[start:]]
        if provider == "fcm":
            return [fcm_record(r) for r in self.fcm.requests[start:]]
        return [webpush_record(r) for r in self.webpush.requests[start:]]

    def _count(self, provider):
        return len(getattr(self, provider).requests)

    def pushes(self, provider=None, token=None, kind=None):
        out = []
        with self.reset_lock:
            base = dict(self.base)
        for p in PROVIDERS:
            if provider in (None, p):
                out += self._raw(p, base[p])
        out.sort(key=lambda d: d["t"])
        return [d for d in out if (token is None or d["token"] == token) and
                (kind is None or d["kind"] == kind)]

    def reset(self):
        with self.reset_lock:
            for p in PROVIDERS:
                self.base[p] = self._count(p)

    def stats(self):
        a, f, w = self.apns, self.fcm, self.webpush
        return {
            "apns": {"requests": len(a.requests),
                     "connections": a.connections,
                     "active_connections": a.active_connections,
                     "tls_failures": a.tls_failures[-10:],
                     "alpn_refused": a.alpn_refused,
                     "protocol_errors": a.protocol_errors[-10:],
                     "errors": list(a.errors)[-10:]},
            "fcm": {"requests": len(f.requests),
                    "connections": f.connections,
                    "tls_failures": f.tls_failures[-10:],
                    "errors": f.errors[-10:],
                    "violations": f.violations[-10:]},
            "webpush": {"requests": len(w.requests),
                        "connections": w.connections,
                        "subscriptions": len(w.subscriptions),
                        "tls_failures": w.tls_failures[-10:],
                        "protocol_errors": w.protocol_errors,
                        "errors": w.errors[-10:]},
        }

    def log_new(self):
        """Print every request recorded since the last call."""
        new = []
        for p in PROVIDERS:
            recs = self._raw(p, self.logged[p])
            self.logged[p] += len(recs)
            new += recs
        new.sort(key=lambda d: d["t"])
        for d in new:
            log("%s %s token=%s -> %s %s", d["provider"], d["kind"],
                d["token"], d["status"],
                d.get("reason") or d.get("error") or "")

    # ---- scripting ----------------------------------------------------------

    def set_replies(self, provider, token, replies):
        if not isinstance(token, str) or not token:
            raise BadRequest("token must be a non-empty string")
        if not isinstance(replies, list):
            raise BadRequest("replies must be a list")
        norm = []
        for r in replies:
            if isinstance(r, (int, str)):
                r = [r]
            if not isinstance(r, list) or not r or len(r) > 3:
                raise BadRequest("a reply is [status, reason(, options)]: "
                                 "%r" % (r,))
            status = r[0]
            reason = r[1] if len(r) > 1 else None
            opts = r[2] if len(r) > 2 else {}
            if not isinstance(opts, dict):
                raise BadRequest("options must be an object: %r" % (r,))
            if reason is not None and not isinstance(reason, str):
                raise BadRequest("reason must be a string or null: %r"
                                 % (r,))
            if provider == "apns":
                norm.append(self._apns_reply(status, reason, opts))
            elif provider == "fcm":
                norm.append(self._fcm_reply(status, reason, opts))
            else:
                norm.append(self._webpush_reply(status, reason, opts))
        if provider == "apns":
            self.apns.set_replies(token, *norm)
        elif provider == "fcm":
            self.fcm.set_replies(token, *norm)
        elif provider == "webpush":
            self.webpush.set_replies(self._subscription(token), *norm)
        else:
            raise BadRequest("provider must be apns, fcm or webpush")

    @staticmethod
    def _status(status):
        if isinstance(status, bool) or not isinstance(status, int) or \
                not 100 <= status <= 599:
            raise BadRequest("status must be an HTTP status: %r" % (status,))
        return status

    def _apns_reply(self, status, reason, opts):
        if status == "goaway":
            return ("goaway", reason or "Shutdown")
        d = {"status": self._status(status), "reason": reason}
        for k, v in opts.items():
            if k not in ("delay", "timestamp"):
                raise BadRequest("APNs reply options: delay, timestamp")
            d[k] = v
        return d

    def _fcm_reply(self, status, reason, opts):
        if isinstance(status, str) and reason is None:
            status, reason = None, status       # ["UNREGISTERED"]
        d = {}
        if status is not None:
            d["status"] = self._status(status)
        if reason is not None:
            if reason not in fake_fcm.ERRORS:
                raise BadRequest("FCM reason must be one of %s"
                                 % ", ".join(sorted(fake_fcm.ERRORS)))
            d["code"] = reason
        for k, v in opts.items():
            if k not in ("retry_after", "delay"):
                raise BadRequest("FCM reply options: retry_after, delay")
            d[k] = v
        if not d:
            raise BadRequest("an FCM reply needs a status or a code")
        return d

    def _webpush_reply(self, status, reason, opts):
        headers = dict(opts.get("headers") or {})
        if "retry_after" in opts:
            headers["Retry-After"] = str(opts["retry_after"])
        for k in opts:
            if k not in ("retry_after", "headers", "delay"):
                raise BadRequest("Web Push reply options: retry_after, "
                                 "headers, delay")
        d = {"status": self._status(status), "headers": headers,
             "delay": opts.get("delay", 0)}
        if reason is not None and status >= 400:
            d["body"] = json.dumps({"code": status, "errno": 999,
                                    "error": reason,
                                    "message": reason}).encode()
            headers["Content-Type"] = "application/json"
        return d

    def _subscription(self, token):
        # A subscription id, its endpoint or the whole webpush: token.
        sid = token
        if sid.startswith("webpush:"):
            sid = sid[len("webpush:"):].split("|", 1)[0]
        if "/push/" in sid:
            sid = sid.rsplit("/push/", 1)[1]
        sub = self.webpush.subscriptions.get(sid)
        if sub is None:
            raise BadRequest("no such Web Push subscription: %r" % token)
        return sub

    def subscribe(self, body):
        key = body.get("app_server_key", "default")
        sub = self.webpush.subscribe(
            app_server_key=key, restricted=body.get("restricted", True))
        log("webpush: new subscription %s", sub.id)
        return {"token": sub.token, "id": sub.id, "endpoint": sub.endpoint,
                "p256dh": sub.p256dh, "auth": sub.auth_b64}


# ---- the control server -----------------------------------------------------

class Control(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, addr, fakes):
        self.fakes = fakes
        self.ready = False
        super().__init__(addr, Handler)


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "chatmail-push-fakes"

    def log_message(self, fmt, *args):
        if not self.path.startswith(("/healthz", "/pushes", "/stats")):
            log("control: %s", fmt % args)

    def _send(self, status, doc, ctype="application/json"):
        body = doc if isinstance(doc, bytes) else \
            (json.dumps(doc) + "\n").encode()
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _body(self):
        n = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(n) if n > 0 else b""
        if not raw.strip():
            return {}
        try:
            doc = json.loads(raw)
        except ValueError as e:
            raise BadRequest("body is not JSON: %s" % e)
        if not isinstance(doc, dict):
            raise BadRequest("body must be a JSON object")
        return doc

    def do_GET(self):
        url = urllib.parse.urlsplit(self.path)
        q = {k: v[-1] for k, v in urllib.parse.parse_qs(url.query).items()}
        fakes = self.server.fakes
        if url.path == "/healthz":
            if self.server.ready:
                self._send(200, b"ok\n", "text/plain")
            else:
                self._send(503, b"starting\n", "text/plain")
        elif url.path == "/pushes":
            self._send(200, fakes.pushes(q.get("provider"), q.get("token"),
                                         q.get("kind")))
        elif url.path == "/stats":
            self._send(200, fakes.stats())
        else:
            self._send(404, {"error": "no such path"})

    def do_POST(self):
        fakes = self.server.fakes
        path = urllib.parse.urlsplit(self.path).path
        try:
            body = self._body()
            if path == "/replies":
                fakes.set_replies(body.get("provider"), body.get("token"),
                                  body.get("replies"))
                self._send(200, {"ok": True})
            elif path == "/webpush/subscriptions":
                self._send(200, fakes.subscribe(body))
            elif path == "/reset":
                fakes.reset()
                self._send(200, {"ok": True})
            else:
                self._send(404, {"error": "no such path"})
        except (BadRequest, ValueError, TypeError) as e:
            self._send(400, {"error": str(e)})


# ---- main -------------------------------------------------------------------

def serve(args):
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *a: stop.set())
    signal.signal(signal.SIGINT, lambda *a: stop.set())
    fakes = Fakes(args)
    control = Control((args.bind, args.control_port), fakes)
    ct = threading.Thread(target=control.serve_forever, name="control",
                          daemon=True)
    ct.start()
    fakes.start()
    control.ready = True
    log("control http://%s:%d (healthz, pushes, stats, replies, "
        "webpush/subscriptions, reset); ready", args.bind,
        args.control_port)
    while not stop.wait(0.25):
        fakes.log_new()
    fakes.log_new()
    log("stopping")
    control.ready = False
    control.shutdown()
    control.server_close()
    fakes.stop()
    errors = [e for p in fakes.stats().values() for e in p["errors"]]
    if errors:
        log("exceptions inside the fakes: %r", errors)
    log("stopped")
    return 0


def main(argv=None):
    ap = argparse.ArgumentParser(
        description="Fake APNs, FCM and Web Push with a JSON control API "
                    "(see the module docstring).")
    ap.add_argument("--make-secrets", metavar="DIR",
                    help="write the secrets into DIR and exit")
    ap.add_argument("--secrets", metavar="DIR", default="/secrets",
                    help="what --make-secrets wrote (default /secrets)")
    ap.add_argument("--host-name", default="fakes",
                    help="the name other containers reach the fakes by")
    ap.add_argument("--bind", default="0.0.0.0")
    ap.add_argument("--apns-port", type=int, default=8443)
    ap.add_argument("--fcm-port", type=int, default=8444)
    ap.add_argument("--webpush-port", type=int, default=8445)
    ap.add_argument("--control-port", type=int, default=8080)
    ap.add_argument("--apns-mode", choices=("cert", "token", "either"),
                    default="cert")
    args = ap.parse_args(argv)
    if args.make_secrets:
        s = make_secrets(args.make_secrets, args.host_name, args.apns_port,
                         args.fcm_port, args.webpush_port)
        print(json.dumps(s, indent=1))
        return 0
    return serve(args)


if __name__ == "__main__":
    sys.exit(main())
