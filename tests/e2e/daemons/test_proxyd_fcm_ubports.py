"""proxyd's FCM HTTP v1 and UBports providers against fake_fcm.py (an
OAuth2 token endpoint that verifies the RS256 assertion against the
service account's public key, and messages:send that requires HTTP/2, a
bearer token it issued and the exact message shape) and fake_ubports.py
(the ubuntu-push /notify API).

For each: success, gone -> 410, throttled -> paused then resumed,
expired credentials -> renewed (FCM), answers about us -> 500 never 410,
and the rate limiter.
"""
import concurrent.futures
import os
import secrets
import time

import pytest

from harness import http_request, register_secret, wait_until

PACKAGE = "chat.delta"


@pytest.fixture
def proxyd_fcm(proxyd_factory, fake_fcm, tmpdir):
    def make(*extra, **kw):
        key = os.path.join(tmpdir, "service-account-%d.json" %
                           secrets.randbelow(10 ** 9))
        fake_fcm.write_key_file(key)
        return proxyd_factory(extra_args=["--fcm-key-path", key,
                                          "--fcm-api-url", fake_fcm.api_url]
                              + list(extra), **kw)
    return make


def fcm_token():
    """(registration token, the token a relay sends)."""
    reg = secrets.token_urlsafe(120).replace("-", "_")
    t = "fcm-%s:%s" % (PACKAGE, reg)
    register_secret(t)
    register_secret(reg)
    return reg, t


# ---- FCM -------------------------------------------------------------------


def test_fcm_push_with_one_access_token(proxyd_fcm, fake_fcm):
    """Two pushes: one token request (assertion verified by the fake), two
    sends over HTTP/2 with its bearer token, high-priority data message to
    the right registration token and project."""
    p = proxyd_fcm()
    reg1, t1 = fcm_token()
    reg2, t2 = fcm_token()
    assert p.notify(t1) == (200, b"")
    assert p.notify(t2) == (200, b"")
    assert len(fake_fcm.token_requests) == 1
    sends = fake_fcm.sends
    assert [s.info["token"] for s in sends] == [reg1, reg2]
    for s in sends:
        assert s.http == "2"
        assert s.info["message"]["android"]["priority"] == "high"
        assert s.info["access_token"] == fake_fcm.access_tokens()[0]
    assert p.metric("direct_notifications_total") == 2


def test_fcm_concurrent_pushes_share_one_renewal(proxyd_fcm, fake_fcm):
    p = proxyd_fcm()
    toks = [fcm_token()[1] for _ in range(20)]
    with concurrent.futures.ThreadPoolExecutor(20) as ex:
        got = list(ex.map(lambda t: http_request(p.port, "POST", "/notify",
                                                 t)[0], toks))
    assert got == [200] * 20
    assert len(fake_fcm.token_requests) == 1
    assert len(fake_fcm.sends) == 20


@pytest.mark.parametrize("reply", ["UNREGISTERED", "INVALID_ARGUMENT",
                                   "SENDER_ID_MISMATCH"])
def test_fcm_gone_is_410(proxyd_fcm, fake_fcm, reply):
    p = proxyd_fcm()
    reg, t = fcm_token()
    fake_fcm.set_replies(reg, reply)
    assert p.notify(t)[0] == 410
    ((prov, reason, _),) = p.failures().keys()
    assert (prov, reason) == ("FCM", "410")


def test_fcm_throttled_pauses_then_resumes(proxyd_fcm, fake_fcm):
    """429 QUOTA_EXCEEDED with Retry-After: 1 -> 500; the next push waits
    in the queue until the pause ends (a pause within --rate-limit-wait;
    test_proxyd_fairness.py has a longer one), then goes out (200)."""
    p = proxyd_fcm("--rate-limit-wait", "2s")
    reg1, t1 = fcm_token()
    reg2, t2 = fcm_token()
    fake_fcm.set_replies(reg1, (429, 1))
    assert p.notify(t1)[0] == 500
    t0 = time.monotonic()
    assert p.notify(t2)[0] == 200
    assert time.monotonic() - t0 >= 0.8
    assert p.metric('provider_paused_total{provider="FCM"}') == 1
    assert p.metric('provider_delayed_total{provider="FCM"}') == 1
    assert [s.info["token"] for s in fake_fcm.sends] == [reg1, reg2]


def test_fcm_503_is_500(proxyd_fcm, fake_fcm):
    p = proxyd_fcm()
    reg, t = fcm_token()
    fake_fcm.set_replies(reg, (503, 0), 200)
    assert p.notify(t)[0] == 500


def test_fcm_revoked_token_is_renewed_and_retried(proxyd_fcm, fake_fcm):
    """The access token stops working (401): proxyd gets a new one and
    sends again; the relay sees 200."""
    p = proxyd_fcm()
    assert p.notify(fcm_token()[1])[0] == 200
    fake_fcm.revoke_tokens()
    reg, t = fcm_token()
    assert p.notify(t)[0] == 200
    assert len(fake_fcm.token_requests) == 2
    last = fake_fcm.sends[-1]
    assert last.info["token"] == reg
    assert last.info["access_token"] == fake_fcm.access_tokens()[-1]


def test_fcm_refused_key_is_500_never_410(proxyd_fcm, fake_fcm):
    """The token endpoint refuses our assertion: every push 500 (config),
    nothing delivered. proxyd fetches its access token at start (GET
    /ready waits for it), so the key is refused at the renewal after that
    token stopped working (test_proxyd_health.py has a key refused from
    the start)."""
    p = proxyd_fcm()
    wait_until(lambda: http_request(p.port, "GET", "/ready")[0] == 200)
    fake_fcm.script_token_endpoint(("invalid_grant",
                                    "Invalid JWT Signature."))
    fake_fcm.revoke_tokens()
    assert p.notify(fcm_token()[1])[0] == 500
    assert [s.info["error"] for s in fake_fcm.sends] == ["UNAUTHENTICATED"]
    ((prov, reason, details),) = p.failures().keys()
    assert (prov, reason, details) == ("FCM", "config", "oauth")


def test_fcm_rate_limit(proxyd_fcm, fake_fcm):
    """--rate-limit fcm=5/s: 10 pushes at once take about a second (the
    last waits 1 s: within --rate-limit-wait 2s)."""
    p = proxyd_fcm("--rate-limit", "fcm=5/s", "--rate-limit-wait", "2s")
    toks = [fcm_token()[1] for _ in range(10)]
    t0 = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(10) as ex:
        got = list(ex.map(lambda t: http_request(p.port, "POST", "/notify",
                                                 t)[0], toks))
    took = time.monotonic() - t0
    assert got == [200] * 10
    assert took >= 0.9, took
    assert p.metric('provider_delayed_total{provider="FCM"}') >= 4


def test_fcm_without_key_500(proxyd_factory, fake_fcm):
    p = proxyd_factory()
    assert p.notify(fcm_token()[1])[0] == 500
    assert fake_fcm.sends == []


def test_bad_rate_limit_flag_stops_the_start(proxyd_factory):
    p = proxyd_factory(start=False, extra_args=["--rate-limit", "gcm=1/s"])
    status, out = p.run_to_exit()
    assert status == 1 and "--rate-limit" in out


# ---- UBports ---------------------------------------------------------------


@pytest.fixture
def proxyd_ub(proxyd_factory, fake_ubports):
    def make(*extra, **kw):
        return proxyd_factory(ubports_url=fake_ubports.url,
                              extra_args=list(extra), **kw)
    return make


def ub_token(fake):
    tok = fake.make_token()
    register_secret(tok)
    return tok, "ubports-" + tok


def test_ubports_push(proxyd_ub, fake_ubports):
    p = proxyd_ub()
    tok, t = ub_token(fake_ubports)
    assert p.notify(t) == (200, b"")
    (req,) = fake_ubports.wait_for(1)
    assert req.info["token"] == tok
    assert req.info["appid"] == fake_ubports.appid
    assert req.info["data"]["notification"]["card"]["popup"] is True


def test_ubports_unknown_token_is_410(proxyd_ub, fake_ubports):
    p = proxyd_ub()
    tok, t = ub_token(fake_ubports)
    fake_ubports.set_replies(tok, "unknown-token")
    assert p.notify(t)[0] == 410


def test_ubports_too_many_pending_is_500_not_410(proxyd_ub, fake_ubports):
    """The app's queue is full at the server: the token is fine, retry."""
    p = proxyd_ub()
    tok, t = ub_token(fake_ubports)
    fake_ubports.set_replies(tok, "too-many-pending")
    assert p.notify(t)[0] == 500


def test_ubports_unavailable_pauses_then_resumes(proxyd_ub, fake_ubports):
    """503 with Retry-After: 1: the next push waits out the pause in the
    queue (within --rate-limit-wait 2s; a longer pause is refused at once,
    test_proxyd_fairness.py)."""
    p = proxyd_ub("--rate-limit-wait", "2s")
    tok1, t1 = ub_token(fake_ubports)
    tok2, t2 = ub_token(fake_ubports)
    fake_ubports.set_replies(tok1, (503, 1))
    assert p.notify(t1)[0] == 500
    t0 = time.monotonic()
    assert p.notify(t2)[0] == 200
    assert time.monotonic() - t0 >= 0.8
    assert p.metric('provider_paused_total{provider="UBports"}') == 1
