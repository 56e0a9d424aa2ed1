"""proxyd's Web Push (RFC 8030/8291/8292, UnifiedPush) against the fake
push service of fake_webpush.py, which verifies the VAPID JWT and decrypts
every payload with the subscription's private key, as the device would.

Success, gone (404/410 -> 410), answers about us (401/403/413 -> 500,
never 410), throttling (429 + Retry-After: the origin pauses, then
resumes), and the SSRF rules: without --webpush-allow-private no
connection is ever made to loopback or other non-public addresses, and
http:// endpoints are refused. Every address used is loopback.
"""
import os
import subprocess
import time

import pytest

from harness import register_secret, wait_until

SUBJECT = "mailto:ops@relay.example"


@pytest.fixture
def proxyd_wp(proxyd_factory, vapid_key):
    """proxyd with a VAPID key; the fakes listen on loopback, so
    --webpush-allow-private unless private=False (the SSRF tests)."""
    def make(*extra, private=True, **kw):
        args = ["--vapid-key-path", vapid_key, "--vapid-subject", SUBJECT]
        if private:
            args.append("--webpush-allow-private")
        return proxyd_factory(extra_args=args + list(extra), **kw)
    return make


def subscribe(wp, **kw):
    sub = wp.subscribe(**kw)
    register_secret(sub.token)
    return sub


def test_push_is_encrypted_and_signed(proxyd_wp, webpush_factory):
    """201 -> 200; the fake checked the VAPID JWT (aud, exp, sub, k) and
    decrypted "ping" with the subscription's key; RFC 8030 headers."""
    wp = webpush_factory()
    p = proxyd_wp()
    sub = subscribe(wp)
    assert p.notify(sub.token) == (200, b"")
    (req,) = wp.wait_for(1)
    assert req.status == 201
    assert req.payload == b"ping"
    assert req.vapid["sub"] == SUBJECT
    assert req.vapid["aud"] == wp.origin
    assert 0 < req.vapid["exp"] - time.time() <= 24 * 3600
    assert req.headers["urgency"] == "high"
    assert int(req.headers["ttl"]) > 0
    assert p.metric("direct_notifications_total") == 1


def test_vapid_public_key_is_printed_and_logged(proxyd_wp, vapid_key,
                                                webpush_factory):
    from harness import PUSHSTACK_BIN
    out = subprocess.run([os.path.join(PUSHSTACK_BIN, "proxyd"),
                          "--vapid-key-path", vapid_key,
                          "--print-vapid-public-key"],
                         capture_output=True, text=True, check=True)
    key = out.stdout.strip()
    assert len(key) == 87
    p = proxyd_wp()
    assert key in p.log_text()
    # The key the fake saw as k= is the same.
    wp = webpush_factory()
    sub = subscribe(wp)
    assert p.notify(sub.token)[0] == 200
    assert wp.wait_for(1)[0].vapid["k"] == key


@pytest.mark.parametrize("status", [404, 410])
def test_gone_subscription_is_410(proxyd_wp, webpush_factory, status):
    wp = webpush_factory()
    p = proxyd_wp()
    sub = subscribe(wp)
    wp.set_replies(sub, status)
    assert p.notify(sub.token)[0] == 410
    # details: autopush's errno when the body has one (the fake's does).
    assert p.failures() == {("WebPush", "410",
                            {404: "errno-102", 410: "errno-106"}[status]): 1}


def test_unsubscribed_is_410(proxyd_wp, webpush_factory):
    wp = webpush_factory()
    p = proxyd_wp()
    sub = subscribe(wp)
    wp.unsubscribe(sub)
    assert p.notify(sub.token)[0] == 410


@pytest.mark.parametrize("status", [401, 403, 413])
def test_answers_about_us_are_500_never_410(proxyd_wp, webpush_factory,
                                            status):
    """Our VAPID credentials or our payload: a 410 would make every relay
    delete valid tokens. 500, counted as a configuration failure."""
    wp = webpush_factory()
    p = proxyd_wp()
    sub = subscribe(wp)
    wp.set_replies(sub, status)
    assert p.notify(sub.token)[0] == 500
    ((prov, reason, _),) = p.failures().keys()
    assert (prov, reason) == ("WebPush", "config")


def test_wrong_vapid_key_refused_by_the_service(proxyd_wp, webpush_factory):
    """A subscription bound to another application server key: the real
    service answers 401 (k mismatch); proxyd answers 500, not 410."""
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives import serialization
    other = ec.generate_private_key(ec.SECP256R1()).public_key().public_bytes(
        serialization.Encoding.X962,
        serialization.PublicFormat.UncompressedPoint)
    wp = webpush_factory()
    p = proxyd_wp()
    sub = subscribe(wp, app_server_key=other)
    assert p.notify(sub.token)[0] == 500
    assert wp.received(sub)[0].status == 401


def test_throttled_origin_pauses_then_resumes(proxyd_wp, webpush_factory):
    """429 with Retry-After: 2 -> 500, and pushes to that origin get 500
    without a request until the pause ends; another origin is not
    paused; afterwards the origin gets pushes again."""
    wp = webpush_factory()
    other = webpush_factory()
    p = proxyd_wp()
    a, b, c = subscribe(wp), subscribe(wp), subscribe(other)
    wp.set_replies(a, (429, {"Retry-After": "2"}), 201)
    assert p.notify(a.token)[0] == 500
    t0 = time.monotonic()                       # the pause began before
    assert p.notify(b.token)[0] == 500          # paused: not sent
    assert len(wp.received()) == 1
    assert p.notify(c.token)[0] == 200          # another origin
    wait_until(lambda: time.monotonic() - t0 > 2.1, timeout=5)
    assert p.notify(b.token)[0] == 200
    assert len(wp.received()) == 2
    assert p.metric('provider_paused_total{provider="WebPush"}') == 1


def test_ssrf_loopback_and_unspecified_never_connected(proxyd_wp,
                                                       webpush_factory):
    """Without --webpush-allow-private, endpoints at 127.0.0.1, 127.0.0.2,
    [::1], 0.0.0.0 and localhost are refused (410 for literal addresses,
    500 when a name resolves to one) and the listeners see no connection
    at all."""
    fakes = [webpush_factory(host=h) for h in
             ("127.0.0.1", "127.0.0.2", "::1", "localhost")]
    p = proxyd_wp(private=False)
    for wp in fakes:
        sub = subscribe(wp)
        want = 500 if wp.url_host == "localhost" else 410
        assert p.notify(sub.token)[0] == want, wp.url_host
    # 0.0.0.0 reaches the 127.0.0.1 listener on Linux: made by hand.
    sub = subscribe(fakes[0])
    zero = sub.token.replace("//127.0.0.1:", "//0.0.0.0:")
    register_secret(zero)
    assert p.notify(zero)[0] == 410
    assert [wp.connections for wp in fakes] == [0, 0, 0, 0]
    got = p.failures()
    assert got[("WebPush", "410", "address_refused")] == 4
    assert got[("WebPush", "temporary", "address_refused")] == 1


def test_http_endpoint_refused_without_allow_private(proxyd_wp,
                                                     webpush_factory):
    wp = webpush_factory(tls=False)
    p = proxyd_wp(private=False)
    sub = subscribe(wp)
    assert p.notify(sub.token)[0] == 410
    assert wp.connections == 0
    assert p.failures() == {("WebPush", "410", "insecure_endpoint"): 1}


def test_allow_private_permits_http_and_loopback(proxyd_wp, webpush_factory):
    wp = webpush_factory(tls=False)
    p = proxyd_wp()
    sub = subscribe(wp)
    assert p.notify(sub.token) == (200, b"")
    assert wp.wait_for(1)[0].payload == b"ping"


def test_malformed_webpush_token_is_410(proxyd_wp):
    """A webpush: token whose key is not a P-256 point: 410 at once (no
    retry for hours), nothing sent."""
    p = proxyd_wp()
    bad = "webpush:https://127.0.0.1:1/push/x|AAAA|AAAAAAAAAAAAAAAAAAAAAA"
    register_secret(bad)
    assert p.notify(bad)[0] == 410


def test_without_vapid_key_500(proxyd_factory, webpush_factory):
    wp = webpush_factory()
    p = proxyd_factory()
    sub = subscribe(wp)
    assert p.notify(sub.token)[0] == 500
    assert wp.connections == 0
