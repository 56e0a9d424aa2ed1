"""Tests of the fake UBports push server (fake_ubports.py): the Go
server's checks in its order, the token's own app id, the pending queue,
and scripted answers with the server's error bodies. Driven with
python3-h2, http.client and curl. No daemons."""
import base64
import datetime
import json
import subprocess

import pytest

from fake_ubports import DEFAULT_APPID, FakeUbports
from tls_client import request

JSON = [("content-type", "application/json")]


def rust_body(token, appid=DEFAULT_APPID, expire=None, **extra):
    """The Rust service's body (notifiers src/server.rs)."""
    if expire is None:
        expire = (datetime.datetime.now(datetime.timezone.utc) +
                  datetime.timedelta(days=7)).strftime("%Y-%m-%dT%H:%M:%SZ")
    body = ('{"expire_on":"%s","appid":"%s","token":"%s","data":'
            '{"notification":{"tag":"sent_by_chatmail_server","card":'
            '{"popup":true,"persist":true,"summary":"New message","body":'
            '"You have a new message"},"sound":true,"vibrate":{"pattern":'
            '[200],"duration":200,"repeat":1} },"sent-by":"Chatmail Server"}'
            ' }' % (expire, appid, token))
    if extra:
        doc = json.loads(body)
        doc.update(extra)
        body = json.dumps(doc)
    return body


@pytest.fixture
def ub_factory(apns_pki):
    fakes = []

    def make(**kw):
        f = FakeUbports(apns_pki, **kw).start()
        fakes.append(f)
        return f
    yield make
    for f in fakes:
        f.stop()
    for f in fakes:
        assert f.errors == [], f.errors


@pytest.fixture
def ub(ub_factory):
    f = ub_factory()
    yield f
    assert f.violations == [], f.violations


def post(fake, body, headers=JSON, http="2", **kw):
    return request(fake.url, "POST", headers, body, ca_file=fake.ca_file,
                   http=http, **kw)


def test_rust_body_accepted(ub):
    tok = ub.make_token()
    for http in ("2", "1.1"):
        r = post(ub, rust_body(tok), http=http)
        assert (r.status, r.json) == (200, {"ok": True}), r
        assert r.alpn == ("h2" if http == "2" else "http/1.1")
    req = ub.wait_for(2)[0]
    assert req.info["token"] == tok
    assert req.info["appid"] == DEFAULT_APPID
    assert req.info["token_appid"] == DEFAULT_APPID
    assert req.info["data"]["notification"]["card"]["summary"] == \
        "New message"
    assert req.info["data"]["sent-by"] == "Chatmail Server"


def test_curl(ub):
    tok = ub.make_token()
    out = subprocess.run(
        ["curl", "-sS", "--http2", "--cacert", ub.ca_file, "-w",
         "\n%{http_code} %{http_version}", "-H",
         "content-type: application/json", "--data-binary", rust_body(tok),
         ub.url], capture_output=True, timeout=30, check=True)
    assert out.stdout.decode().endswith('{"ok":true}\n200 2'), out


def error(r, status, label, message=None):
    assert r.status == status, r
    doc = r.json
    assert doc["error"] == label, doc
    if message is not None:
        assert doc["message"] == message
    return doc


def test_request_checks_in_order(ub):
    tok = ub.make_token()
    body = rust_body(tok)
    r = request(ub.url.replace("/notify", "/notify2"), "POST", JSON, body,
                ca_file=ub.ca_file)
    assert (r.status, r.body) == (404, b"404 page not found\n")
    error(request(ub.url, "GET", ca_file=ub.ca_file), 405,
          "invalid-request", "Wrong request method, should be POST")
    error(post(ub, body, http="1.1", chunked=True), 411, "invalid-request",
          "A Content-Length must be provided")
    error(post(ub, body, length=False), 411, "invalid-request")
    error(post(ub, b"", http="1.1"), 400, "invalid-request",
          "Request body empty")
    error(post(ub, body + " " * 4096), 413, "invalid-request",
          "Request body too large")
    error(post(ub, body, headers=[]), 415, "invalid-request")
    error(post(ub, body, headers=[("content-type", "text/json")]), 415,
          "invalid-request")
    assert post(ub, body, headers=[("content-type", "application/json; "
                                    "charset=utf-8")]).status == 200
    error(post(ub, "{"), 400, "invalid-request", "Malformed JSON Object")
    error(post(ub, '{"token":7}'), 400, "invalid-request",
          "Malformed JSON Object")
    error(post(ub, "null"), 400, "invalid-request", "Missing id field")
    error(post(ub, json.dumps({"appid": DEFAULT_APPID})), 400,
          "invalid-request", "Missing id field")
    doc = json.loads(body)
    doc["data"] = {"x": "y" * 2048}
    error(post(ub, json.dumps(doc)), 400, "invalid-request",
          "Data too large")
    del doc["data"]
    error(post(ub, json.dumps(doc)), 400, "invalid-request",
          "Missing data field")
    error(post(ub, rust_body(tok, expire="2030-01-01")), 400,
          "invalid-request", "Invalid expiration date")
    error(post(ub, rust_body(tok, expire="2020-01-01T00:00:00Z")), 400,
          "invalid-request", "Past expiration date")
    error(post(ub, rust_body("not base64!")), 400, "unknown-token",
          "Unknown token")
    # The app id comes from the token: "<appid>::<device>" or 401.
    bad = base64.b64encode(b"deltatouch:device").decode()
    error(post(ub, rust_body(bad)), 401, "unauthorized", "Unauthorized")
    assert [r.info.get("error") for r in ub.requests][-3:] == \
        ["invalid-request", "unknown-token", "unauthorized"]


def test_rfc3339_with_offset_and_fraction(ub):
    tok = ub.make_token()
    exp = (datetime.datetime.now().astimezone() +
           datetime.timedelta(days=7)).isoformat()
    assert "." in exp and exp[-6] in "+-"       # what the Rust service sends
    assert post(ub, rust_body(tok, expire=exp)).status == 200


def test_appid_expectation(ub):
    tok = ub.make_token(appid="other.app_x")
    # The real server would take other.app_x from the token; the fake
    # holds the client to the app it was made for.
    error(post(ub, rust_body(tok, appid="other.app_x")), 400,
          "invalid-request")
    assert ub.violations == ["appid 'other.app_x', want '%s'"
                             % DEFAULT_APPID]
    ub.violations.clear()
    ub.expect_appid = False
    assert post(ub, rust_body(tok, appid="whatever_x")).status == 200


def test_registration(ub_factory):
    ub = ub_factory(require_registration=True)
    known = ub.make_token()
    unknown = base64.b64encode(("%s::feedface" % DEFAULT_APPID).encode()
                               ).decode()
    assert post(ub, rust_body(known)).status == 200
    error(post(ub, rust_body(unknown)), 400, "unknown-token")


def test_pending_queue(ub_factory):
    ub = ub_factory(max_pending=2)
    tok = ub.make_token()
    assert post(ub, rust_body(tok)).status == 200
    assert post(ub, rust_body(tok)).status == 200
    doc = error(post(ub, rust_body(tok)), 413, "too-many-pending")
    assert doc["extra"]["notification"]["tag"] == "sent_by_chatmail_server"
    # replace_tag replaces a pending one; clear_pending empties the queue.
    assert post(ub, rust_body(tok, replace_tag="t1")).status == 413
    assert post(ub, rust_body(tok, clear_pending=True,
                              replace_tag="t1")).status == 200
    assert post(ub, rust_body(tok, replace_tag="t1")).status == 200
    assert post(ub, rust_body(tok, replace_tag="t1")).status == 200
    assert post(ub, rust_body(tok)).status == 200       # [t1, untagged]
    assert post(ub, rust_body(tok)).status == 413
    ub.deliver(tok)
    assert post(ub, rust_body(tok)).status == 200


def test_scripted_replies(ub):
    tok = ub.make_token()
    ub.set_replies(tok, "too-many-pending", (503, 9), 400, 401, 500,
                   (429, 2), 200)
    error(post(ub, rust_body(tok)), 413, "too-many-pending")
    r = post(ub, rust_body(tok))
    error(r, 503, "unavailable")
    assert r.headers["retry-after"] == "9"
    error(post(ub, rust_body(tok)), 400, "unknown-token")
    error(post(ub, rust_body(tok)), 401, "unauthorized")
    error(post(ub, rust_body(tok)), 500, "internal")
    r = post(ub, rust_body(tok))
    assert (r.status, r.body, r.headers["retry-after"]) == (429, b"", "2")
    assert post(ub, rust_body(tok)).status == 200
    assert post(ub, rust_body(tok)).status == 200   # the last one repeats
    ub.default = "unavailable"
    other = ub.make_token()
    error(post(ub, rust_body(other)), 503, "unavailable")
