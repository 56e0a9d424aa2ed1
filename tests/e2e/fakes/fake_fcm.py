"""A fake Firebase Cloud Messaging (HTTP v1) with its OAuth2 token
endpoint, for proxyd's tests: it checks what Google checks
(docs/push-providers.md section 2) and answers like Google, on
127.0.0.1 over TLS (https_fake.py), with the test CA of pki.py.

    fcm = FakeFcm(pki).start()            # a fresh throw-away account
    fcm.write_key_file(path)              # its service-account JSON, with
                                          # token_uri = fcm.token_url
    fcm.api_url, fcm.token_url, fcm.ca_file
    fcm.set_replies(reg_token, "UNREGISTERED")     # 404, real body
    fcm.set_replies(reg_token, (429, 30), 200)     # Retry-After: 30, then ok
    fcm.script_token_endpoint(("invalid_grant", "Invalid JWT Signature."))
    sends = fcm.wait_for(2, kind="send"); fcm.stop()

FakeFcm(pki, account=None, port=0, token_lifetime=3599, audience=None,
        send_requires_h2=True, expect_high_priority=True, max_skew=300,
        token_path="/token", host="127.0.0.1", public_host=None)
  account          a ServiceAccount (make_service_account()); accounts
                   added with add_account() are accepted too
  token_lifetime   expires_in of the access tokens it issues (seconds);
                   they are refused with 401 once that has passed
  audience         the aud the assertion must carry (default token_url;
                   Google's is https://oauth2.googleapis.com/token, which
                   a client keeps when only its token URL is overridden)
  send_requires_h2 messages:send over HTTP/1.1 is answered 400
                   FAILED_PRECONDITION and recorded in `violations`
                   (Google accepts HTTP/1.1; proxyd must use HTTP/2)
  expect_high_priority  a message without android.priority "high" is
                   answered 400 INVALID_ARGUMENT "fake: ..." and recorded
                   in `violations` (Google accepts it; proxyd must not
                   send it)
  host, public_host  the address to listen on and the host name of the
                   URLs (api_url, token_url, the default audience): see
                   https_fake.py; e.g. "0.0.0.0" and "fakes" in a container

Token endpoint, POST <token_path>, application/x-www-form-urlencoded
(HTTP/1.1 or HTTP/2, as Google's), checks in this order and answers RFC
6749 section 5.2 errors {"error", "error_description"}:
  method POST                    else 405 invalid_request
  form content type              else 400 invalid_request
  grant_type = urn:ietf:params:oauth:grant-type:jwt-bearer
                                 else 400 unsupported_grant_type
  assertion present, once        else 400 invalid_request
  three base64url parts, JSON header and claims, alg RS256
                                 else 400 invalid_grant "Invalid JWT ..."
  iss a known client_email       else 400 invalid_grant "Invalid grant:
                                 account not found"
  kid (if any) = private_key_id, RS256 signature valid with the
  account's public key           else 400 invalid_grant "Invalid JWT
                                 Signature."
  aud = audience                 else 400 invalid_grant (audience)
  iat, exp integers; exp > iat; exp - iat <= 3600; iat <= now + max_skew;
  exp > now - max_skew           else 400 invalid_grant "Invalid JWT:
                                 Token must be a short-lived token ..."
  scope holds .../auth/firebase.messaging
                                 else 400 invalid_scope
then the next scripted answer (script_token_endpoint) if any, else 200
{"access_token":"ya29.fake-...","expires_in":token_lifetime,
"token_type":"Bearer"}. Recorded (Request.kind "token") in info: form,
jwt_header, jwt_claims, account (email), error, access_token.

messages:send, POST /v1/projects/<project>/messages:send, checks in
this order and answers google.rpc.Status {"error":{"code","message",
"status","details"}}:
  HTTP/2 (send_requires_h2)      else 400 FAILED_PRECONDITION (violation)
  method POST                    else 405
  authorization "Bearer <token>" of a token it issued, not expired nor
  revoked                        else 401 UNAUTHENTICATED (no details)
  <project> = the token's account's project_id
                                 else 403 PERMISSION_DENIED (IAM wording)
  content-type application/json, body a JSON object with only "message"
  and "validate_only", message an object of known fields with exactly
  one of token/topic/condition   else 400 INVALID_ARGUMENT (BadRequest
                                 field violations, Google's wording)
  token in [A-Za-z0-9_:-]        else 400 INVALID_ARGUMENT "The
                                 registration token is not a valid FCM
                                 registration token" (FcmError)
  data: strings only, no reserved key (from, gcm, google.*, message_type,
  notification), keys+values <= 4096 bytes; android.priority normal|high,
  android.ttl "<n>s" <= 2419200
                                 else 400 INVALID_ARGUMENT
  expect_high_priority           else 400 INVALID_ARGUMENT "fake: ..."
then the token's scripted replies (set_replies; the last one repeats),
`responder(req)`, `default` (200 {"name":"projects/<p>/messages/0:..."}).
A reply is 200, a status (404 UNREGISTERED, 400 INVALID_ARGUMENT, 403
SENDER_ID_MISMATCH, 429 QUOTA_EXCEEDED with Retry-After 60, 503
UNAVAILABLE, 500 INTERNAL, 401 UNAUTHENTICATED), an FcmError code or
status name (ERRORS), (status or code, retry_after seconds), or a dict
{"status"|"code", "retry_after", "delay", "body", "headers"}. Recorded
(kind "send") in info: project, access_token, message (parsed), token
(registration token), error (the code answered).

Not modelled: topic/condition fan-out, per-device and per-project
quotas (script 429), collapsible message limits, the HTTP/1.1 batch
API, Google's key rotation.
"""

import base64
import binascii
import json
import re
import secrets
import time
import urllib.parse
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from https_fake import HttpsFake, Reply

SCOPE = "https://www.googleapis.com/auth/firebase.messaging"
GRANT_TYPE = "urn:ietf:params:oauth:grant-type:jwt-bearer"
FCM_ERROR_TYPE = "type.googleapis.com/google.firebase.fcm.v1.FcmError"
BAD_REQUEST_TYPE = "type.googleapis.com/google.rpc.BadRequest"
ERROR_INFO_TYPE = "type.googleapis.com/google.rpc.ErrorInfo"
QUOTA_FAILURE_TYPE = "type.googleapis.com/google.rpc.QuotaFailure"
MAX_ASSERTION_LIFETIME = 3600
MAX_DATA_BYTES = 4096
MAX_TTL_S = 2419200
RESERVED_DATA_KEYS = ("from", "gcm", "message_type", "notification")
MESSAGE_FIELDS = frozenset({"name", "data", "notification", "android",
                            "webpush", "apns", "fcm_options", "token",
                            "topic", "condition"})
ANDROID_FIELDS = frozenset({"collapse_key", "priority", "ttl",
                            "restricted_package_name", "data",
                            "notification", "fcm_options",
                            "direct_boot_ok"})
_REG_TOKEN_RE = re.compile(r"[A-Za-z0-9_:-]{1,4096}\Z")
_B64URL_RE = re.compile(r"[A-Za-z0-9_-]*\Z")
_SEND_PATH_RE = re.compile(r"/v1/projects/([^/]+)/messages:send\Z")
_TTL_RE = re.compile(r"(\d+)(\.\d{1,9})?s\Z")

UNAUTHENTICATED_MESSAGE = (
    "Request had invalid authentication credentials. Expected OAuth 2 "
    "access token, login cookie or other valid authentication credential. "
    "See https://developers.google.com/identity/sign-in/web/"
    "devconsole-project.")
MISSING_CREDENTIAL_MESSAGE = (
    "Request is missing required authentication credential. Expected "
    "OAuth 2 access token, login cookie or other valid authentication "
    "credential. See https://developers.google.com/identity/sign-in/web/"
    "devconsole-project.")
BAD_JWT_TIME = ("Invalid JWT: Token must be a short-lived token (60 "
                "minutes) and in a reasonable timeframe. Check your iat "
                "and exp values in the JWT claim.")

# FcmError code -> (HTTP status, google.rpc status, message, FcmError
# detail?). Bodies as FCM sends them (docs/push-providers.md 2.4).
ERRORS = {
    "UNREGISTERED": (404, "NOT_FOUND", "Requested entity was not found.",
                     True),
    "INVALID_ARGUMENT": (400, "INVALID_ARGUMENT", "The registration token "
                         "is not a valid FCM registration token", True),
    "SENDER_ID_MISMATCH": (403, "PERMISSION_DENIED", "SenderId mismatch",
                           True),
    "QUOTA_EXCEEDED": (429, "RESOURCE_EXHAUSTED", "Quota exceeded for "
                       "quota metric 'Send requests' and limit 'Send "
                       "requests per minute' of service "
                       "'fcm.googleapis.com'.", True),
    "UNAVAILABLE": (503, "UNAVAILABLE", "The service is currently "
                    "unavailable.", True),
    "INTERNAL": (500, "INTERNAL", "Internal error encountered.", True),
    "THIRD_PARTY_AUTH_ERROR": (401, "UNAUTHENTICATED", "Auth error from "
                               "APNS or Web Push Service", True),
    "PERMISSION_DENIED": (403, "PERMISSION_DENIED", "Permission "
                          "'cloudmessaging.messages.create' denied on "
                          "resource (or it may not exist).", False),
    "UNAUTHENTICATED": (401, "UNAUTHENTICATED", UNAUTHENTICATED_MESSAGE,
                        False),
}
STATUS_CODES = {404: "UNREGISTERED", 400: "INVALID_ARGUMENT",
                403: "SENDER_ID_MISMATCH", 429: "QUOTA_EXCEEDED",
                503: "UNAVAILABLE", 500: "INTERNAL", 401: "UNAUTHENTICATED"}
DEFAULT_RETRY_AFTER = {"QUOTA_EXCEEDED": 60}


@dataclass
class ServiceAccount:
    """A throw-away service account: its key and the identifiers a
    Google key file carries."""
    project_id: str
    client_email: str
    private_key_id: str
    private_key: object         # cryptography RSA private key

    def private_key_pem(self):
        return self.private_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption()).decode("ascii")

    def key_file(self, token_uri, **override):
        """The key file as Google writes it (a dict); override replaces
        or (with value None) removes members."""
        d = {
            "type": "service_account",
            "project_id": self.project_id,
            "private_key_id": self.private_key_id,
            "private_key": self.private_key_pem(),
            "client_email": self.client_email,
            "client_id": str(secrets.randbelow(10 ** 21)).zfill(21),
            "auth_uri": "https://accounts.google.com/o/oauth2/auth",
            "token_uri": token_uri,
            "auth_provider_x509_cert_url":
                "https://www.googleapis.com/oauth2/v1/certs",
            "client_x509_cert_url":
                "https://www.googleapis.com/robot/v1/metadata/x509/" +
                urllib.parse.quote(self.client_email),
            "universe_domain": "googleapis.com",
        }
        for k, v in override.items():
            if v is None:
                d.pop(k, None)
            else:
                d[k] = v
        return d


def make_service_account(project_id="chatmail-test-fcm", name="push-test",
                         key=None, key_size=2048):
    """A service account with a fresh RSA key (or key)."""
    if key is None:
        key = rsa.generate_private_key(public_exponent=65537,
                                       key_size=key_size)
    return ServiceAccount(
        project_id=project_id,
        client_email="%s@%s.iam.gserviceaccount.com" % (name, project_id),
        private_key_id=secrets.token_hex(20), private_key=key)


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64url_decode(s):
    if not _B64URL_RE.match(s):
        raise ValueError("not base64url")
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def sign_assertion(account, aud, iat=None, exp=None, scope=SCOPE, iss=None,
                   kid=True, alg="RS256", header=None, claims=None,
                   key=None):
    """A JWT-bearer assertion as a client makes it, for tests driving the
    fake without the C client. kid=True: the account's key id, a string:
    that, False: none. header / claims replace the whole objects."""
    iat = int(time.time()) if iat is None else iat
    if header is None:
        header = {"alg": alg, "typ": "JWT"}
        if kid is True:
            header["kid"] = account.private_key_id
        elif kid:
            header["kid"] = kid
    if claims is None:
        claims = {"iss": iss or account.client_email, "scope": scope,
                  "aud": aud, "iat": iat,
                  "exp": iat + MAX_ASSERTION_LIFETIME if exp is None
                  else exp}
    signing_input = (b64url(json.dumps(header, separators=(",", ":"))
                            .encode()) + "." +
                     b64url(json.dumps(claims, separators=(",", ":"))
                            .encode()))
    sig = (key or account.private_key).sign(signing_input.encode("ascii"),
                                            padding.PKCS1v15(),
                                            hashes.SHA256())
    return signing_input + "." + b64url(sig)


def rpc_status(http, status, message, details=()):
    return json.dumps({"error": {"code": http, "message": message,
                                 "status": status,
                                 "details": list(details)}},
                      separators=(",", ":")).encode()


def fcm_error_body(code):
    http, status, message, fcm = ERRORS[code]
    details = [{"@type": FCM_ERROR_TYPE, "errorCode": code}] if fcm else []
    if code == "QUOTA_EXCEEDED":
        details.append({"@type": QUOTA_FAILURE_TYPE, "violations": [
            {"subject": "project", "description": "Send requests per "
             "minute"}]})
    if not details:
        return json.dumps({"error": {"code": http, "message": message,
                                     "status": status}},
                          separators=(",", ":")).encode()
    return rpc_status(http, status, message, details)


class _Refuse(Exception):
    def __init__(self, reply, error):
        super().__init__(error)
        self.reply = reply
        self.error = error


def _bad_request(message, field=None, fcm_code=None):
    details = []
    if fcm_code:
        details.append({"@type": FCM_ERROR_TYPE, "errorCode": fcm_code})
    if field is not None:
        details.append({"@type": BAD_REQUEST_TYPE, "fieldViolations": [
            {"field": field, "description": message}]})
    return _Refuse(Reply(400, rpc_status(400, "INVALID_ARGUMENT", message,
                                         details)), "INVALID_ARGUMENT")


def _oauth_error(status, error, description):
    return _Refuse(Reply(status, json.dumps(
        {"error": error, "error_description": description}).encode()),
        error)


def _norm_reply(r):
    """A scripted reply as a dict with "status" or "code"."""
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
        if r not in ERRORS:
            raise ValueError("unknown FCM error %r" % r)
        return {"code": r}
    raise ValueError("bad reply %r" % (r,))


class FakeFcm(HttpsFake):
    """See the module docstring."""

    def __init__(self, pki, account=None, port=0, token_lifetime=3599,
                 audience=None, send_requires_h2=True,
                 expect_high_priority=True, max_skew=300,
                 token_path="/token", host="127.0.0.1", public_host=None):
        super().__init__(pki.server_cert, pki.server_key, port=port,
                         name="fake-fcm", host=host, public_host=public_host)
        self.pki = pki
        self.account = account or make_service_account()
        self.accounts = {}
        self.add_account(self.account)
        self.token_lifetime = token_lifetime
        self._audience = audience
        self.send_requires_h2 = send_requires_h2
        self.expect_high_priority = expect_high_priority
        self.max_skew = max_skew
        self.token_path = token_path
        self.default = 200
        self.responder = None
        self._replies = {}
        self._token_script = []
        self.issued = {}            # access token -> (expiry, account)
        self.revoked = set()

    # ---- public API ------------------------------------------------------

    @property
    def api_url(self):
        return self.url

    @property
    def token_url(self):
        return self.url + self.token_path

    @property
    def audience(self):
        return self._audience or self.token_url

    @property
    def ca_file(self):
        return self.pki.ca_cert

    def send_url(self, project=None):
        return "%s/v1/projects/%s/messages:send" % (
            self.url, project or self.account.project_id)

    def add_account(self, account):
        with self.lock:
            self.accounts[account.client_email] = account

    def key_file(self, account=None, **override):
        """The service-account key file (dict) with token_uri = this
        fake's token URL (start() first: the URL has the port)."""
        return (account or self.account).key_file(self.token_url,
                                                  **override)

    def write_key_file(self, path, account=None, **override):
        with open(path, "w") as f:
            json.dump(self.key_file(account, **override), f, indent=2)
        return path

    def set_replies(self, token, *replies):
        """Scripted replies for a registration token, in order; the last
        one repeats. No replies: forget the script."""
        with self.lock:
            if replies:
                self._replies[token] = [_norm_reply(r) for r in replies]
            else:
                self._replies.pop(token, None)

    def script_token_endpoint(self, *answers):
        """The next token requests that pass the checks get these answers
        instead of a token, one each: a status (error "invalid_grant"), an
        error name, (error, description), (status, error, description),
        or a dict {"status", "error", "description", "delay"}."""
        with self.lock:
            self._token_script.extend(answers)

    def revoke_tokens(self):
        """Every access token issued so far is refused from now on (401),
        as after a key deletion or Google's early revocation."""
        with self.lock:
            self.revoked.update(self.issued)

    def access_tokens(self):
        with self.lock:
            return list(self.issued)

    @property
    def sends(self):
        with self.lock:
            return [r for r in self.requests if r.kind == "send"]

    @property
    def token_requests(self):
        with self.lock:
            return [r for r in self.requests if r.kind == "token"]

    # ---- dispatch ----------------------------------------------------------

    def handle(self, req):
        path = urllib.parse.urlsplit(req.path or "").path
        if path == self.token_path:
            req.kind = "token"
            handler = self._token
        elif _SEND_PATH_RE.match(path):
            req.kind = "send"
            handler = self._send
        else:
            req.kind = "other"
            return Reply(404, b"<!DOCTYPE html><title>Error 404 (Not "
                         b"Found)!!1</title>", content_type="text/html; "
                         "charset=UTF-8")
        try:
            return handler(req)
        except _Refuse as r:
            req.info["error"] = r.error
            return r.reply

    # ---- the token endpoint -------------------------------------------------

    def _token(self, req):
        if req.method != "POST":
            raise _oauth_error(405, "invalid_request", "Method not allowed")
        ctype = req.headers.get("content-type", "").split(";")[0].strip()
        if ctype.lower() != "application/x-www-form-urlencoded":
            raise _oauth_error(400, "invalid_request", "Bad Request")
        try:
            form = urllib.parse.parse_qs(req.body.decode("ascii"),
                                         keep_blank_values=True,
                                         strict_parsing=True)
        except (UnicodeDecodeError, ValueError):
            raise _oauth_error(400, "invalid_request", "Bad Request")
        req.info["form"] = form
        grant = form.get("grant_type", [""])
        if grant != [GRANT_TYPE]:
            raise _oauth_error(400, "unsupported_grant_type",
                               "Invalid grant_type: " + grant[0])
        if len(form.get("assertion", [])) != 1:
            raise _oauth_error(400, "invalid_request",
                               "Missing required parameter: assertion")
        account = self._check_assertion(req, form["assertion"][0])
        if self._token_script:
            raise self._scripted_token_refusal(self._token_script.pop(0))
        token = "ya29.fake-" + secrets.token_urlsafe(96) + "........"
        self.issued[token] = (time.time() + self.token_lifetime, account)
        req.info["account"] = account.client_email
        req.info["access_token"] = token
        return Reply(200, json.dumps({"access_token": token,
                                      "expires_in": self.token_lifetime,
                                      "token_type": "Bearer"}).encode())

    def _check_assertion(self, req, jwt):
        parts = jwt.split(".")
        try:
            if len(parts) != 3:
                raise ValueError("not three parts")
            header = json.loads(_b64url_decode(parts[0]))
            claims = json.loads(_b64url_decode(parts[1]))
            sig = _b64url_decode(parts[2])
            if not isinstance(header, dict) or not isinstance(claims, dict):
                raise ValueError("not JSON objects")
        except (ValueError, binascii.Error, UnicodeDecodeError) as e:
            raise _oauth_error(400, "invalid_grant", "Invalid JWT: %s" % e)
        req.info["jwt_header"] = header
        req.info["jwt_claims"] = claims
        if header.get("alg") != "RS256":
            raise _oauth_error(400, "invalid_grant",
                               "Invalid JWT: unsupported algorithm")
        account = self.accounts.get(claims.get("iss"))
        if account is None:
            raise _oauth_error(400, "invalid_grant",
                               "Invalid grant: account not found")
        kid = header.get("kid")
        try:
            if kid is not None and kid != account.private_key_id:
                raise InvalidSignature()
            account.private_key.public_key().verify(
                sig, (parts[0] + "." + parts[1]).encode("ascii"),
                padding.PKCS1v15(), hashes.SHA256())
        except InvalidSignature:
            raise _oauth_error(400, "invalid_grant",
                               "Invalid JWT Signature.")
        if claims.get("aud") != self.audience:
            raise _oauth_error(400, "invalid_grant",
                               "Invalid JWT: Failed audience check. The "
                               "right audience is " + self.audience)
        iat, exp, now = claims.get("iat"), claims.get("exp"), time.time()
        if type(iat) is not int or type(exp) is not int or exp <= iat or \
                exp - iat > MAX_ASSERTION_LIFETIME or \
                iat > now + self.max_skew or exp < now - self.max_skew:
            raise _oauth_error(400, "invalid_grant", BAD_JWT_TIME)
        scope = claims.get("scope")
        if not isinstance(scope, str) or SCOPE not in scope.split(" "):
            raise _oauth_error(400, "invalid_scope", "Invalid OAuth scope "
                               "or ID token audience provided.")
        return account

    @staticmethod
    def _scripted_token_refusal(a):
        if isinstance(a, int):
            a = {"status": a}
        elif isinstance(a, str):
            a = {"error": a}
        elif isinstance(a, tuple):
            a = dict(zip(("error", "description") if len(a) == 2 else
                         ("status", "error", "description"), a))
        status = a.get("status", 400)
        error = a.get("error", "invalid_grant" if status < 500 else
                      "internal_failure")
        r = _oauth_error(status, error, a.get("description",
                                              "scripted failure"))
        r.reply.delay = a.get("delay", 0.0)
        return r

    # ---- messages:send -------------------------------------------------------

    def _send(self, req):
        if req.http != "2" and self.send_requires_h2:
            self.violations.append("messages:send over HTTP/%s" % req.http)
            raise _Refuse(Reply(400, rpc_status(
                400, "FAILED_PRECONDITION", "fake: messages:send requires "
                "HTTP/2")), "FAILED_PRECONDITION")
        if req.method != "POST":
            raise _Refuse(Reply(405, b""), "METHOD")
        account = self._check_bearer(req)
        project = _SEND_PATH_RE.match(
            urllib.parse.urlsplit(req.path).path).group(1)
        req.info["project"] = project
        if project != account.project_id:
            raise _Refuse(Reply(403, rpc_status(
                403, "PERMISSION_DENIED", "Permission 'cloudmessaging."
                "messages.create' denied on resource '//cloudresourcemanager"
                ".googleapis.com/projects/%s' (or it may not exist)."
                % project, [{"@type": ERROR_INFO_TYPE,
                             "reason": "IAM_PERMISSION_DENIED",
                             "domain": "cloudresourcemanager.googleapis."
                             "com"}])), "PERMISSION_DENIED")
        msg = self._check_message(req)
        token = msg.get("token")
        req.info["token"] = token
        return self._answer(req, token, project)

    def _check_bearer(self, req):
        auth = req.headers.get("authorization")
        if auth is None:
            raise _Refuse(Reply(401, json.dumps({"error": {
                "code": 401, "message": MISSING_CREDENTIAL_MESSAGE,
                "status": "UNAUTHENTICATED"}}).encode(),
                headers=[("www-authenticate", "Bearer realm=\"https://"
                          "accounts.google.com/\"")]), "UNAUTHENTICATED")
        scheme, _, token = auth.partition(" ")
        req.info["access_token"] = token
        issued = self.issued.get(token)
        if scheme.lower() != "bearer" or issued is None or \
                token in self.revoked or issued[0] <= time.time():
            raise _Refuse(Reply(401, fcm_error_body("UNAUTHENTICATED"),
                                headers=[("www-authenticate",
                                          "Bearer realm=\"https://accounts."
                                          "google.com/\", error="
                                          "\"invalid_token\"")]),
                          "UNAUTHENTICATED")
        return issued[1]

    def _check_message(self, req):
        ctype = req.headers.get("content-type", "").split(";")[0].strip()
        if ctype.lower() != "application/json":
            raise _bad_request("Invalid JSON payload received. Unexpected "
                               "content type.", field="")
        try:
            body = json.loads(req.body)
        except (ValueError, UnicodeDecodeError):
            raise _bad_request("Invalid JSON payload received. Unexpected "
                               "token.", field="")
        if not isinstance(body, dict):
            raise _bad_request("Invalid JSON payload received. Expected an "
                               "object.", field="")
        for k in body:
            if k not in ("message", "validate_only"):
                raise _bad_request("Invalid JSON payload received. Unknown "
                                   "name \"%s\": Cannot find field." % k,
                                   field=k)
        msg = body.get("message")
        req.info["message"] = msg
        req.info["validate_only"] = body.get("validate_only", False)
        if not isinstance(msg, dict):
            raise _bad_request("Request contains an invalid argument.",
                               field="message")
        for k in msg:
            if k not in MESSAGE_FIELDS:
                raise _bad_request("Invalid JSON payload received. Unknown "
                                   "name \"%s\" at 'message': Cannot find "
                                   "field." % k, field="message")
        targets = [k for k in ("token", "topic", "condition") if k in msg]
        if not targets:
            raise _bad_request("Recipient of the message is not set.",
                               field="message", fcm_code="INVALID_ARGUMENT")
        if len(targets) > 1:
            raise _bad_request("Invalid JSON payload received. Oneof field "
                               "'target' is already set.", field="message")
        if "token" in msg and (not isinstance(msg["token"], str) or
                               not _REG_TOKEN_RE.match(msg["token"])):
            raise _Refuse(Reply(400, fcm_error_body("INVALID_ARGUMENT")),
                          "INVALID_ARGUMENT")
        self._check_data(msg.get("data"), "message.data")
        android = msg.get("android", {})
        if not isinstance(android, dict):
            raise _bad_request("Invalid value at 'message.android'",
                               field="message.android")
        for k in android:
            if k not in ANDROID_FIELDS:
                raise _bad_request("Invalid JSON payload received. Unknown "
                                   "name \"%s\" at 'message.android': Cannot"
                                   " find field." % k,
                                   field="message.android")
        prio = android.get("priority")
        if prio is not None and prio not in ("normal", "high", "NORMAL",
                                             "HIGH"):
            raise _bad_request("Invalid value at 'message.android.priority' "
                               "(type.googleapis.com/google.firebase.fcm.v1"
                               ".AndroidMessagePriority), \"%s\"" % prio,
                               field="message.android.priority")
        ttl = android.get("ttl")
        if ttl is not None:
            m = _TTL_RE.match(ttl) if isinstance(ttl, str) else None
            if m is None or int(m.group(1)) > MAX_TTL_S:
                raise _bad_request("Invalid value at 'message.android.ttl' "
                                   "(type.googleapis.com/google.protobuf."
                                   "Duration)", field="message.android.ttl")
        self._check_data(android.get("data"), "message.android.data")
        if self.expect_high_priority and str(prio).lower() != "high":
            self.violations.append("android.priority %r, not high" % prio)
            raise _bad_request("fake: android.priority must be \"high\" "
                               "(got %r)" % prio,
                               field="message.android.priority")
        return msg

    @staticmethod
    def _check_data(data, where):
        if data is None:
            return
        if not isinstance(data, dict):
            raise _bad_request("Invalid value at '%s'" % where, field=where)
        size = 0
        for i, (k, v) in enumerate(data.items()):
            if not isinstance(v, str):
                raise _bad_request("Invalid value at '%s[%d].value' "
                                   "(TYPE_STRING), %s" % (where, i,
                                                          json.dumps(v)),
                                   field="%s[%d].value" % (where, i))
            if k in RESERVED_DATA_KEYS or k.startswith(("google", "gcm")):
                raise _bad_request("Invalid data payload key: " + k,
                                   fcm_code="INVALID_ARGUMENT", field=where)
            size += len(k.encode()) + len(v.encode())
        if size > MAX_DATA_BYTES:
            raise _bad_request("Android message is too big",
                               fcm_code="INVALID_ARGUMENT", field=where)

    def _answer(self, req, token, project):
        reply = None
        script = self._replies.get(token)
        if script:
            reply = script.pop(0) if len(script) > 1 else script[0]
        elif self.responder is not None:
            reply = self.responder(req)
        if reply is None:
            reply = self.default
        r = _norm_reply(reply)
        code = r.get("code")
        status = r.get("status")
        if code is None and status not in (None, 200):
            code = STATUS_CODES.get(status)
        headers = list(r.get("headers", []))
        if code is not None:
            status = status or ERRORS[code][0]
            body = r.get("body", fcm_error_body(code))
            req.info["error"] = code
        elif status not in (None, 200):
            body = r.get("body", b"")       # a status FCM has no body for
            req.info["error"] = str(status)
        else:
            status = 200
            name = "fake_message_id" if req.info.get("validate_only") else \
                "0:%d%%%s" % (int(time.time() * 1e6), secrets.token_hex(8))
            body = r.get("body", json.dumps(
                {"name": "projects/%s/messages/%s" % (project, name)}))
        retry = r.get("retry_after", DEFAULT_RETRY_AFTER.get(code))
        if retry is not None:
            headers.append(("retry-after", str(retry)))
        return Reply(status, body, headers=headers,
                     delay=r.get("delay", 0.0))
