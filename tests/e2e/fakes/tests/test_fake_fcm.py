"""Tests of the fake FCM (fake_fcm.py) and its base (https_fake.py):
the OAuth2 token endpoint verifies the RS256 assertion and its claims,
messages:send wants a live bearer token, the project and a well-formed
message, and scripted answers carry FCM's real bodies. Driven with
python3-h2, http.client and curl (libcurl, as proxyd). No daemons."""
import json
import os
import re
import subprocess
import time
import urllib.parse

import pytest

from cryptography.hazmat.primitives.asymmetric import rsa

from fake_fcm import (FCM_ERROR_TYPE, GRANT_TYPE, SCOPE, FakeFcm,
                      make_service_account, sign_assertion)
from tls_client import request

# The Rust service's body (notifiers src/server.rs), byte for byte.
REG = ("dG9rZW4tZm9yLWEtcGhvbmU:APA91bHun4MxP5egoKMwt2KZFBaFUH-1RyapWg_b-"
       "kTe4NbgMlJx8mYbLk3Vvp_DQXOfKZ29Z")
RUST_BODY = ('{"message":{"token":"%s","data":{"level":"awesome"},'
             '"android":{"priority":"high"} } }')
FORM = "application/x-www-form-urlencoded"


@pytest.fixture(scope="module")
def account():
    """One service account for the module: RSA key generation is the
    slowest part of a fake's start."""
    return make_service_account()


@pytest.fixture
def fcm_factory(apns_pki, account):
    fakes = []

    def make(**kw):
        kw.setdefault("account", account)
        f = FakeFcm(apns_pki, **kw).start()
        fakes.append(f)
        return f
    yield make
    for f in fakes:
        f.stop()
    for f in fakes:
        assert f.errors == [], f.errors


@pytest.fixture
def fcm(fcm_factory):
    f = fcm_factory()
    yield f
    assert f.violations == [], f.violations


def form(assertion, grant=GRANT_TYPE):
    return urllib.parse.urlencode({"grant_type": grant,
                                   "assertion": assertion})


def get_token(fake, assertion=None, http="2", aud=None, **kw):
    if assertion is None:
        assertion = sign_assertion(fake.account, aud or fake.audience, **kw)
    return request(fake.token_url, "POST", [("content-type", FORM)],
                   form(assertion), ca_file=fake.ca_file, http=http)


def send(fake, token, body=None, project=None, http="2",
         ctype="application/json"):
    if body is None:
        body = RUST_BODY % REG
    hdrs = [("content-type", ctype)]
    if token is not None:
        hdrs.append(("authorization", "Bearer " + token))
    return request(fake.send_url(project), "POST", hdrs, body,
                   ca_file=fake.ca_file, http=http)


def access_token(fake):
    r = get_token(fake)
    assert r.status == 200, r
    return r.json["access_token"]


def test_token_then_send(fcm):
    r = get_token(fcm)
    assert r.status == 200, r
    assert r.alpn == "h2"
    doc = r.json
    assert set(doc) == {"access_token", "expires_in", "token_type"}
    assert doc["token_type"] == "Bearer" and doc["expires_in"] == 3599
    assert re.match(r"ya29\.[A-Za-z0-9_.~+/-]+\Z", doc["access_token"])
    treq = fcm.token_requests[0]
    assert treq.info["jwt_claims"]["iss"] == fcm.account.client_email
    assert treq.info["jwt_header"]["kid"] == fcm.account.private_key_id

    r = send(fcm, doc["access_token"])
    assert r.status == 200, r
    assert re.match(r"projects/%s/messages/0:\d+%%[0-9a-f]{16}\Z"
                    % fcm.account.project_id, r.json["name"])
    s = fcm.wait_for(1, kind="send")[0]
    assert s.http == "2" and s.status == 200
    assert s.info["token"] == REG
    assert s.info["project"] == fcm.account.project_id
    assert s.info["message"] == {"token": REG, "data": {"level": "awesome"},
                                 "android": {"priority": "high"}}


def test_token_endpoint_over_http1(fcm):
    r = get_token(fcm, http="1.1")
    assert r.status == 200 and r.alpn == "http/1.1", r
    # messages:send insists on HTTP/2 (a fake's rule, recorded).
    r = send(fcm, r.json["access_token"], http="1.1")
    assert r.status == 400
    assert r.json["error"]["status"] == "FAILED_PRECONDITION"
    assert fcm.violations == ["messages:send over HTTP/1.1"]
    fcm.violations.clear()


def test_curl_like_proxyd(fcm):
    """libcurl, as proxyd uses it: ALPN h2 for both endpoints."""
    assertion = sign_assertion(fcm.account, fcm.audience)
    out = subprocess.run(
        ["curl", "-sS", "--http2", "--cacert", fcm.ca_file, "-d",
         "grant_type=" + urllib.parse.quote(GRANT_TYPE, safe="") +
         "&assertion=" + assertion, fcm.token_url],
        capture_output=True, timeout=30, check=True)
    token = json.loads(out.stdout)["access_token"]
    out = subprocess.run(
        ["curl", "-sS", "--http2", "--cacert", fcm.ca_file, "-w",
         "\n%{http_code} %{http_version}", "-H", "authorization: Bearer " +
         token, "-H", "content-type: application/json", "--data-binary",
         RUST_BODY % REG, fcm.send_url()],
        capture_output=True, timeout=30, check=True)
    body, _, tail = out.stdout.decode().rpartition("\n")
    assert tail == "200 2", out
    assert "name" in json.loads(body)
    assert fcm.alpn[-2:] == ["h2", "h2"]


def _other_key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


# name -> (sign_assertion kwargs or a raw assertion, grant, content type,
# expected status, error, part of the description)
BAD_ASSERTIONS = {
    "other-key": (dict(key="other"), None, None, 400, "invalid_grant",
                  "Invalid JWT Signature."),
    "wrong-kid": (dict(kid="0" * 40), None, None, 400, "invalid_grant",
                  "Invalid JWT Signature."),
    "no-kid-other-key": (dict(kid=False, key="other"), None, None, 400,
                         "invalid_grant", "Signature"),
    "alg-none": (dict(alg="none"), None, None, 400, "invalid_grant",
                 "unsupported algorithm"),
    "unknown-iss": (dict(iss="x@y.iam.gserviceaccount.com"), None, None,
                    400, "invalid_grant", "account not found"),
    "wrong-aud": (dict(aud="https://oauth2.googleapis.com/token"), None,
                  None, 400, "invalid_grant", "audience"),
    "lifetime-3601": (dict(exp_delta=3601), None, None, 400,
                      "invalid_grant", "short-lived"),
    "exp-before-iat": (dict(exp_delta=-1), None, None, 400,
                       "invalid_grant", "short-lived"),
    "iat-future": (dict(iat_delta=3600), None, None, 400, "invalid_grant",
                   "iat and exp"),
    "expired": (dict(iat_delta=-7200), None, None, 400, "invalid_grant",
                "iat and exp"),
    "iat-string": (dict(claims_iat="1700000000"), None, None, 400,
                   "invalid_grant", "iat and exp"),
    "no-scope": (dict(scope=None), None, None, 400, "invalid_scope",
                 "Invalid OAuth scope"),
    "other-scope": (dict(scope="https://www.googleapis.com/auth/cloud-"
                         "platform"), None, None, 400, "invalid_scope", ""),
    "two-parts": ("eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiJ4In0", None, None, 400,
                  "invalid_grant", "Invalid JWT"),
    "bad-base64": ("eyJhbGc$.e30.AA", None, None, 400, "invalid_grant",
                   "Invalid JWT"),
    "grant-type": (dict(), "client_credentials", None, 400,
                   "unsupported_grant_type", "Invalid grant_type"),
    "json-body": (dict(), None, "application/json", 400,
                  "invalid_request", ""),
}


@pytest.mark.parametrize("name", sorted(BAD_ASSERTIONS))
def test_bad_assertion_refused(fcm, name):
    how, grant, ctype, status, error, desc = BAD_ASSERTIONS[name]
    if isinstance(how, str):
        assertion = how
    else:
        kw = dict(how)
        now = int(time.time())
        iat = now + kw.pop("iat_delta", 0)
        exp = iat + kw.pop("exp_delta", 3600)
        aud = kw.pop("aud", fcm.audience)
        if kw.get("key") == "other":
            kw["key"] = _other_key()
        if "claims_iat" in kw:
            kw["claims"] = {"iss": fcm.account.client_email, "scope": SCOPE,
                            "aud": aud, "iat": kw.pop("claims_iat"),
                            "exp": exp}
        if "scope" in kw and kw["scope"] is None:
            kw["claims"] = {"iss": fcm.account.client_email, "aud": aud,
                            "iat": iat, "exp": exp}
            del kw["scope"]
        assertion = sign_assertion(fcm.account, aud, iat=iat, exp=exp, **kw)
    r = request(fcm.token_url, "POST", [("content-type", ctype or FORM)],
                form(assertion, grant or GRANT_TYPE), ca_file=fcm.ca_file)
    assert r.status == status, r
    doc = r.json
    assert set(doc) == {"error", "error_description"}
    assert doc["error"] == error, doc
    assert desc in doc["error_description"]
    assert fcm.token_requests[-1].info["error"] == error
    assert fcm.access_tokens() == []


def test_missing_assertion_and_method(fcm):
    r = request(fcm.token_url, "POST", [("content-type", FORM)],
                "grant_type=" + urllib.parse.quote(GRANT_TYPE, safe=""),
                ca_file=fcm.ca_file)
    assert r.status == 400 and r.json["error"] == "invalid_request"
    r = request(fcm.token_url, "GET", ca_file=fcm.ca_file)
    assert r.status == 405


def test_audience_override(fcm_factory):
    """A client whose token URL is overridden keeps Google's audience."""
    google = "https://oauth2.googleapis.com/token"
    f = fcm_factory(audience=google)
    assert get_token(f, aud=google).status == 200
    r = get_token(f, sign_assertion(f.account, f.token_url))
    assert r.status == 400 and "audience" in r.json["error_description"]


def test_second_account(fcm_factory):
    f = fcm_factory()
    other = make_service_account("other-project")
    r = get_token(f, sign_assertion(other, f.audience))
    assert r.json["error_description"] == \
        "Invalid grant: account not found"
    f.add_account(other)
    r = get_token(f, sign_assertion(other, f.audience))
    assert r.status == 200
    # Its token is for its own project only.
    tok = r.json["access_token"]
    assert send(f, tok).status == 403
    assert send(f, tok, project="other-project").status == 200


def test_scripted_token_failures(fcm):
    fcm.script_token_endpoint(("invalid_grant", "Invalid JWT Signature."),
                              503)
    r = get_token(fcm)
    assert (r.status, r.json) == (400, {"error": "invalid_grant",
                                        "error_description":
                                        "Invalid JWT Signature."})
    r = get_token(fcm)
    assert r.status == 503 and r.json["error"] == "internal_failure"
    assert get_token(fcm).status == 200
    # A scripted failure still checked the assertion first.
    assert fcm.token_requests[0].info["jwt_claims"]["scope"] == SCOPE


def test_token_lifetime(fcm_factory):
    f = fcm_factory(token_lifetime=2)
    r = get_token(f)
    assert r.json["expires_in"] == 2
    tok = r.json["access_token"]
    assert send(f, tok).status == 200
    # Expired: moved into the past rather than waited for.
    with f.lock:
        f.issued[tok] = (time.time() - 0.001, f.issued[tok][1])
    r = send(f, tok)
    assert r.status == 401
    assert r.json["error"]["status"] == "UNAUTHENTICATED"
    assert "error=\"invalid_token\"" in r.headers["www-authenticate"]


def test_send_auth(fcm):
    r = send(fcm, None)
    assert r.status == 401
    assert r.json == {"error": {"code": 401, "message": r.json["error"][
        "message"], "status": "UNAUTHENTICATED"}}
    assert "missing required authentication" in r.json["error"]["message"]
    assert send(fcm, "ya29.never-issued").status == 401
    tok = access_token(fcm)
    r = request(fcm.send_url(), "POST",
                [("content-type", "application/json"),
                 ("authorization", "Basic " + tok)], RUST_BODY % REG,
                ca_file=fcm.ca_file)
    assert r.status == 401
    assert send(fcm, tok).status == 200
    fcm.revoke_tokens()
    r = send(fcm, tok)
    assert r.status == 401 and r.json["error"]["status"] == "UNAUTHENTICATED"
    assert [s.info["error"] for s in fcm.sends if s.status == 401] == \
        ["UNAUTHENTICATED"] * 4
    # A new token works again.
    assert send(fcm, access_token(fcm)).status == 200


def test_send_wrong_project(fcm):
    r = send(fcm, access_token(fcm), project="delta-chat-fcm")
    assert r.status == 403
    err = r.json["error"]
    assert err["status"] == "PERMISSION_DENIED"
    assert "cloudmessaging.messages.create" in err["message"]
    assert all(d["@type"] != FCM_ERROR_TYPE for d in err["details"])


def bad_message(fake, tok, body, want_status=400):
    r = send(fake, tok, body)
    assert r.status == want_status, r
    return r.json["error"]


def test_message_checks(fcm):
    tok = access_token(fcm)
    err = bad_message(fcm, tok, "not json")
    assert err["status"] == "INVALID_ARGUMENT"
    err = bad_message(fcm, tok, '{"message":{"token":"%s"},"x":1}' % REG)
    assert 'Unknown name "x"' in err["message"]
    err = bad_message(fcm, tok, '{"message":{"data":{"a":"b"},"android":'
                      '{"priority":"high"}}}')
    assert err["message"] == "Recipient of the message is not set."
    err = bad_message(fcm, tok, '{"message":{"token":"a","topic":"b",'
                      '"android":{"priority":"high"}}}')
    err = bad_message(fcm, tok, RUST_BODY % "bad token!")
    assert err == {"code": 400, "message": "The registration token is not "
                   "a valid FCM registration token", "status":
                   "INVALID_ARGUMENT", "details": [
                       {"@type": FCM_ERROR_TYPE,
                        "errorCode": "INVALID_ARGUMENT"}]}
    err = bad_message(fcm, tok, '{"message":{"token":"%s","data":{"level":'
                      '1},"android":{"priority":"high"}}}' % REG)
    assert "TYPE_STRING" in err["message"]
    err = bad_message(fcm, tok, '{"message":{"token":"%s","data":{"from":'
                      '"x"},"android":{"priority":"high"}}}' % REG)
    assert "Invalid data payload key" in err["message"]
    err = bad_message(fcm, tok, json.dumps({"message": {
        "token": REG, "data": {"a": "x" * 4096},
        "android": {"priority": "high"}}}))
    assert err["message"] == "Android message is too big"
    err = bad_message(fcm, tok, '{"message":{"token":"%s","android":'
                      '{"priority":"urgent"}}}' % REG)
    assert "message.android.priority" in err["message"]
    err = bad_message(fcm, tok, '{"message":{"token":"%s","android":'
                      '{"priority":"high","ttl":"86400"}}}' % REG)
    assert "ttl" in err["message"]
    r = send(fcm, tok, RUST_BODY % REG, ctype="text/plain")
    assert r.status == 400
    assert fcm.violations == []
    # Valid for Google, but not what proxyd may send: a violation.
    err = bad_message(fcm, tok, '{"message":{"token":"%s","data":{"level":'
                      '"awesome"}}}' % REG)
    assert err["message"].startswith("fake: android.priority")
    assert fcm.violations == ["android.priority None, not high"]
    fcm.violations.clear()
    # validate_only, a ttl and upper-case HIGH pass.
    r = send(fcm, tok, '{"validate_only":true,"message":{"token":"%s",'
             '"android":{"priority":"HIGH","ttl":"3.5s"}}}' % REG)
    assert r.status == 200 and r.json["name"].endswith("/fake_message_id")


def test_scripted_errors(fcm):
    tok = access_token(fcm)
    cases = [
        ("UNREGISTERED", 404, "NOT_FOUND"),
        (400, 400, "INVALID_ARGUMENT"),
        (403, 403, "PERMISSION_DENIED"),
        ("QUOTA_EXCEEDED", 429, "RESOURCE_EXHAUSTED"),
        (503, 503, "UNAVAILABLE"),
        (500, 500, "INTERNAL"),
        ("THIRD_PARTY_AUTH_ERROR", 401, "UNAUTHENTICATED"),
    ]
    for i, (reply, status, rpc) in enumerate(cases):
        reg = "reg-token-%d-" % i + "x" * 40
        fcm.set_replies(reg, reply)
        r = send(fcm, tok, RUST_BODY % reg)
        assert r.status == status, (reply, r)
        err = r.json["error"]
        assert err["code"] == status and err["status"] == rpc
        codes = [d.get("errorCode") for d in err["details"]
                 if d["@type"] == FCM_ERROR_TYPE]
        assert len(codes) == 1
        if status == 429:
            assert r.headers["retry-after"] == "60"
        else:
            assert "retry-after" not in r.headers
    assert [s.info["error"] for s in fcm.sends] == [
        "UNREGISTERED", "INVALID_ARGUMENT", "SENDER_ID_MISMATCH",
        "QUOTA_EXCEEDED", "UNAVAILABLE", "INTERNAL",
        "THIRD_PARTY_AUTH_ERROR"]


def test_script_sequence_retry_after_and_default(fcm):
    tok = access_token(fcm)
    fcm.set_replies(REG, (429, 7), {"code": "UNAVAILABLE", "retry_after": 3},
                    200)
    r = send(fcm, tok)
    assert (r.status, r.headers["retry-after"]) == (429, "7")
    assert r.json["error"]["details"][0]["errorCode"] == "QUOTA_EXCEEDED"
    r = send(fcm, tok)
    assert (r.status, r.headers["retry-after"]) == (503, "3")
    assert send(fcm, tok).status == 200
    assert send(fcm, tok).status == 200         # the last one repeats
    fcm.set_replies(REG)
    fcm.default = "UNREGISTERED"
    assert send(fcm, tok).status == 404
    fcm.default = 200
    fcm.responder = lambda req: 502 if req.info["token"] == REG else None
    r = send(fcm, tok)
    assert r.status == 502 and r.body == b""
    fcm.responder = None


def test_delay_does_not_block_other_streams(fcm):
    """A delayed answer on one connection; another request is answered
    meanwhile (as Google answers streams independently)."""
    tok = access_token(fcm)
    fcm.set_replies("slow-" + "x" * 40, {"status": 200, "delay": 1.0})
    import threading
    out = {}
    t = threading.Thread(target=lambda: out.setdefault(
        "slow", send(fcm, tok, RUST_BODY % ("slow-" + "x" * 40))))
    t.start()
    fcm.wait_for(lambda reqs: any(r.info.get("token", "").startswith(
        "slow-") for r in reqs))
    t0 = time.monotonic()
    assert send(fcm, tok).status == 200
    assert time.monotonic() - t0 < 0.9
    t.join(10)
    assert out["slow"].status == 200


def test_key_file(fcm, tmp_path):
    path = fcm.write_key_file(os.path.join(str(tmp_path), "sa.json"))
    with open(path) as f:
        doc = json.load(f)
    assert doc["type"] == "service_account"
    assert doc["token_uri"] == fcm.token_url
    assert doc["project_id"] == fcm.account.project_id
    assert doc["private_key"].startswith("-----BEGIN PRIVATE KEY-----\n")
    assert fcm.key_file(project_id=None).get("project_id") is None


def test_unknown_path(fcm):
    r = request(fcm.url + "/v1/projects/x/messages:batchSend", "POST",
                [("content-type", "application/json")], "{}",
                ca_file=fcm.ca_file)
    assert r.status == 404 and r.headers["content-type"].startswith(
        "text/html")
