"""A fake UBports push server (ubports/ubuntu-push, the /notify API) for
proxyd's tests: it checks what the Go server checks, in its order
(server/api/handlers.go; docs/push-providers.md section 4), and
answers like it, on 127.0.0.1 over TLS (https_fake.py, HTTP/2 or
HTTP/1.1) with the test CA of pki.py.

    ub = FakeUbports(pki).start()
    token = ub.make_token()               # base64("<appid>::<device>")
    ub.url, ub.ca_file                    # https://127.0.0.1:<port>/notify
    ub.set_replies(token, "too-many-pending", 200)  # the last one repeats
    reqs = ub.wait_for(1); ub.stop()

FakeUbports(pki, appid="deltatouch.lotharketterer_deltatouch", port=0,
            max_pending=None, require_registration=False,
            expect_appid=True)
  appid            the app whose tokens make_token() makes, and (with
                   expect_appid) the appid a request must carry
  max_pending      notifications a token may have pending (None: no
                   limit); deliver(token) empties its queue, as a phone
                   fetching them would
  require_registration  only tokens from make_token()/register() are
                   known (a MongoDB-backed server); by default any
                   well-formed token is, as with the in-memory store
  expect_appid     a request whose appid is not `appid`, or whose
                   data.notification is not an object, is answered 400
                   invalid-request "fake: ..." and recorded in
                   `violations` (the real server takes the app from the
                   token and passes data through)

Checks, in the server's order; errors are {"error":label,"message":...}:
  path /notify                     else 404 "404 page not found" (Go mux)
  method POST                      else 405 invalid-request
  Content-Length given             else 411 invalid-request (chunked)
  body not empty                   else 400 invalid-request
  body <= 4096 bytes               else 413 invalid-request
  media type application/json      else 415 invalid-request
  a JSON object (null too) whose members have the right types
                                   else 400 invalid-request "Malformed
                                   JSON Object"
  appid and token not empty        else 400 invalid-request "Missing id
                                   field"
  data <= 2048 bytes as sent       else 400 invalid-request "Data too
                                   large"
  data present                     else 400 invalid-request "Missing data
                                   field"
  expire_on RFC 3339, in the future  else 400 invalid-request "Invalid
                                   expiration date" / "Past expiration
                                   date"
  token standard base64            else 400 unknown-token
  decoded token starts with its own "<appid>::" (the app id is taken from
  the token, not from the request)  else 401 unauthorized
  known token (require_registration)  else 400 unknown-token
  expect_appid checks              else 400 invalid-request "fake: ..."
  pending < max_pending, unless clear_pending (replace_tag replaces a
  pending one with that tag)       else 413 too-many-pending, extra = the
                                   last pending payload
then the token's scripted replies (set_replies), `responder(req)`,
`default` (200 {"ok":true}). A reply is 200, a status (400 unknown-token,
401 unauthorized, 413 too-many-pending, 500 internal, 503 unavailable,
others with an empty body), a label, (status or label, retry_after
seconds), or a dict {"status", "label", "message", "retry_after",
"delay", "body"}. Recorded in Request.info: payload (parsed), token,
appid, data, expire_on, token_appid, device, error (the label answered).
"""

import base64
import binascii
import datetime
import json
import re
import secrets

from https_fake import HttpsFake, Reply

MAX_BODY = 4 * 1024
MAX_DATA = 2 * 1024
DEFAULT_APPID = "deltatouch.lotharketterer_deltatouch"
LABELS = {"unknown-token": (400, "Unknown token"),
          "unauthorized": (401, "Unauthorized"),
          "too-many-pending": (413, "Too many pending notifications for "
                               "this application"),
          "internal": (500, "Unknown error"),
          "unavailable": (503, "Could not store notification"),
          "invalid-request": (400, "Malformed JSON Object"),
          "io-error": (400, "Could not read request body")}
STATUS_LABELS = {400: "unknown-token", 401: "unauthorized",
                 413: "too-many-pending", 500: "internal",
                 503: "unavailable"}
_RFC3339_RE = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?"
                         r"(Z|[+-]\d{2}:\d{2})\Z")
_B64_RE = re.compile(r"[A-Za-z0-9+/]*={0,2}\Z")
# The Unicast fields and the JSON types Go's json.Unmarshal accepts.
_FIELD_TYPES = {"token": str, "userid": str, "deviceid": str, "appid": str,
                "expire_on": str, "clear_pending": bool,
                "replace_tag": str}


class _Refuse(Exception):
    def __init__(self, status, label, message, extra=None):
        super().__init__(label)
        self.status, self.label, self.message, self.extra = \
            status, label, message, extra


def error_body(label, message, extra=None):
    d = {"error": label, "message": message}
    if extra is not None:
        d["extra"] = extra
    return json.dumps(d, separators=(",", ":")).encode()


def _norm_reply(r):
    if isinstance(r, dict):
        return dict(r)
    if isinstance(r, tuple):
        d = _norm_reply(r[0])
        if len(r) > 1:
            d["retry_after"] = r[1]
        return d
    if isinstance(r, int):
        return {"status": r}
    if isinstance(r, str):
        if r not in LABELS:
            raise ValueError("unknown UBports label %r" % r)
        return {"label": r}
    raise ValueError("bad reply %r" % (r,))


def _parse_rfc3339(s):
    if not isinstance(s, str) or not _RFC3339_RE.match(s):
        return None
    try:
        return datetime.datetime.fromisoformat(s.replace("Z", "+00:00"))
    except ValueError:
        return None


class FakeUbports(HttpsFake):
    """See the module docstring."""

    def __init__(self, pki, appid=DEFAULT_APPID, port=0, max_pending=None,
                 require_registration=False, expect_appid=True):
        super().__init__(pki.server_cert, pki.server_key, port=port,
                         name="fake-ubports")
        self.pki = pki
        self.appid = appid
        self.max_pending = max_pending
        self.require_registration = require_registration
        self.expect_appid = expect_appid
        self.default = 200
        self.responder = None
        self._replies = {}
        self.registered = set()
        self.pending = {}           # token -> [(tag, payload)]

    @property
    def url(self):
        return "https://127.0.0.1:%d/notify" % self.port

    @property
    def ca_file(self):
        return self.pki.ca_cert

    def register(self, device, appid=None):
        """The token the server hands out for (appid, device)."""
        token = base64.b64encode(("%s::%s" % (appid or self.appid, device))
                                 .encode()).decode("ascii")
        with self.lock:
            self.registered.add(token)
        return token

    def make_token(self, appid=None):
        return self.register(secrets.token_hex(16), appid)

    def deliver(self, token):
        """The phone fetched its notifications: empty the queue."""
        with self.lock:
            self.pending.pop(token, None)

    def set_replies(self, token, *replies):
        with self.lock:
            if replies:
                self._replies[token] = [_norm_reply(r) for r in replies]
            else:
                self._replies.pop(token, None)

    def handle(self, req):
        req.kind = "notify"
        try:
            return self._notify(req)
        except _Refuse as r:
            req.info["error"] = r.label
            if r.label is None:
                return Reply(r.status, r.message.encode(),
                             content_type="text/plain; charset=utf-8")
            return Reply(r.status, error_body(r.label, r.message, r.extra))

    def _notify(self, req):
        if (req.path or "").split("?")[0] != "/notify":
            raise _Refuse(404, None, "404 page not found\n")
        if req.method != "POST":
            raise _Refuse(405, "invalid-request",
                          "Wrong request method, should be POST")
        # Go: ContentLength -1 when unknown (chunked, or HTTP/2 data
        # without content-length); 0 when there is no body at all.
        length = req.length
        if length is None:
            length = -1 if req.body or req.chunked else 0
        if length == -1:
            raise _Refuse(411, "invalid-request",
                          "A Content-Length must be provided")
        if length == 0:
            raise _Refuse(400, "invalid-request", "Request body empty")
        if length > MAX_BODY or req.too_large:
            raise _Refuse(413, "invalid-request", "Request body too large")
        ctype = req.headers.get("content-type", "")
        if ctype.split(";")[0].strip().lower() != "application/json":
            raise _Refuse(415, "invalid-request",
                          "Wrong content type, should be application/json")
        try:
            payload = json.loads(req.body)
        except (ValueError, UnicodeDecodeError):
            raise _Refuse(400, "invalid-request", "Malformed JSON Object")
        if payload is None:
            payload = {}
        if not isinstance(payload, dict) or any(
                k in payload and not isinstance(payload[k], t)
                for k, t in _FIELD_TYPES.items()):
            raise _Refuse(400, "invalid-request", "Malformed JSON Object")
        req.info["payload"] = payload
        token = payload.get("token", "")
        appid = payload.get("appid", "")
        req.info["token"], req.info["appid"] = token, appid
        if not appid or (not token and not (payload.get("userid") and
                                            payload.get("deviceid"))):
            raise _Refuse(400, "invalid-request", "Missing id field")
        # Go keeps data as raw bytes: measure what was sent.
        data = payload.get("data")
        req.info["data"] = data
        raw_data = len(json.dumps(data, separators=(",", ":"))) \
            if "data" in payload else 0
        if raw_data > MAX_DATA:
            raise _Refuse(400, "invalid-request", "Data too large")
        if "data" not in payload:
            raise _Refuse(400, "invalid-request", "Missing data field")
        expire = _parse_rfc3339(payload.get("expire_on", ""))
        req.info["expire_on"] = expire
        if expire is None:
            raise _Refuse(400, "invalid-request", "Invalid expiration date")
        if expire < datetime.datetime.now(datetime.timezone.utc):
            raise _Refuse(400, "invalid-request", "Past expiration date")
        try:
            if not _B64_RE.match(token):
                raise ValueError("not base64")
            decoded = base64.b64decode(token, validate=True).decode(
                "utf-8", "replace")
        except (ValueError, binascii.Error):
            raise _Refuse(400, "unknown-token", "Unknown token")
        token_appid = decoded.split(":")[0]
        req.info["token_appid"] = token_appid
        if not decoded.startswith(token_appid + "::"):
            raise _Refuse(401, "unauthorized", "Unauthorized")
        req.info["device"] = decoded[len(token_appid) + 2:]
        if self.require_registration and token not in self.registered:
            raise _Refuse(400, "unknown-token", "Unknown token")
        if self.expect_appid:
            why = None
            if appid != self.appid:
                why = "appid %r, want %r" % (appid, self.appid)
            elif not isinstance(data, dict) or \
                    not isinstance(data.get("notification"), dict):
                why = "data.notification is not an object"
            if why:
                self.violations.append(why)
                raise _Refuse(400, "invalid-request", "fake: " + why)
        self._queue(token, payload, data)
        return self._answer(req, token)

    def _queue(self, token, payload, data):
        if self.max_pending is None:
            return
        queue = self.pending.setdefault(token, [])
        tag = payload.get("replace_tag", "")
        if payload.get("clear_pending"):
            queue.clear()
        elif tag and any(t == tag for t, _ in queue):
            queue[:] = [(t, p) for t, p in queue if t != tag]
        elif len(queue) >= self.max_pending:
            raise _Refuse(413, "too-many-pending",
                          LABELS["too-many-pending"][1], extra=queue[-1][1])
        queue.append((tag, data))

    def _answer(self, req, token):
        reply = None
        script = self._replies.get(token)
        if script:
            reply = script.pop(0) if len(script) > 1 else script[0]
        elif self.responder is not None:
            reply = self.responder(req)
        if reply is None:
            reply = self.default
        r = _norm_reply(reply)
        label = r.get("label")
        status = r.get("status")
        if label is None and status not in (None, 200):
            label = STATUS_LABELS.get(status)
        headers = list(r.get("headers", []))
        if r.get("retry_after") is not None:
            headers.append(("retry-after", str(r["retry_after"])))
        if label is not None:
            status = status or LABELS[label][0]
            body = r.get("body", error_body(label, r.get(
                "message", LABELS[label][1])))
            req.info["error"] = label
        elif status not in (None, 200):
            body = r.get("body", b"")
            req.info["error"] = str(status)
        else:
            status, body = 200, r.get("body", b'{"ok":true}')
        return Reply(status, body, headers=headers,
                     delay=r.get("delay", 0.0))
