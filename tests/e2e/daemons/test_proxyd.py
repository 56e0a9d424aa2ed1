"""End-to-end tests of proxyd, the central push proxy, against the fake
APNs of fake_apns.py (HTTP/2, TLS, client certificates or ES256 provider
tokens, Apple's checks) on 127.0.0.1.

The flows (proxyd/proxy.c, docs/proxyd.md): /notify decrypts `openpgp:`
tokens (worker threads + cache), parses the token kind, debounces (first
request sent at once, the rest of the window coalesced into ONE trailing
push at the window's end, which opens a new window) and pushes through
APNs; 200 / 410 (undecryptable, malformed, or Apple says the token is gone)
/ 500 (temporary, our configuration, providers not yet there). /register
puts an APNs token into the heartbeat schedule (SQLite --db), which sends
silent pushes every --interval +/- min(60 s, interval / 10).

Test data: tests/data/openpgp (vectors.tsv, made with OpenPGP.js) and
tokens encrypted here by OpenPGP.js (openpgp_js/encrypt.mjs) exactly as
chatmail core encrypts them. Every proxyd runs with --log-level debug; the
proxyd_factory teardown fails a test whose daemon did not exit 0 after
SIGTERM or logged any token (plain or encrypted) registered below.
"""
import json
import os
import secrets
import threading
import time

import pytest

from harness import (OPENPGP_DIR, http_request, is_apns_token,
                     leaked_secrets, openpgp_vectors, register_secret,
                     wait_until)

# docs/push-providers.md 1.3: the Rust service's visible push, byte for byte.
VISIBLE = (b'{"aps":{"alert":{"title":"New messages","body":"You have new '
           b'messages","title-loc-key":"new_messages","loc-key":'
           b'"new_messages_body"},"sound":"default","mutable-content":1}}')
SILENT = b'{"aps":{"content-available":1}}'
MAX_BODY = 16 * 1024                    # API_MAX_BODY_BYTES

VECTORS = openpgp_vectors()
BY_NAME = {v["name"]: v for v in VECTORS}
for _v in VECTORS:
    register_secret(_v["input"])
    if not _v["expected"].startswith("ERROR:"):
        register_secret(_v["expected"])

CORE_APNS = [v for v in VECTORS if v["name"].startswith("core_")
             and is_apns_token(v["expected"])]
CORE_OTHER = [v for v in VECTORS if v["name"].startswith("core_")
              and not is_apns_token(v["expected"])]
NEG_V6 = [v for v in VECTORS if v["name"].startswith("neg_")
          and v["keyring"] == "keyring-v6.asc"]

APNS_K1 = BY_NAME["core_apns_k1"]       # production token, key 1


def random_apns_token():
    """A fresh 64-hex device token, registered as a secret."""
    t = secrets.token_hex(32)
    register_secret(t)
    return t


def assert_visible_push(req, token, pki):
    """One visible push for `token`, exactly as docs/push-providers.md 1.3."""
    assert req.method == "POST" and req.path == "/3/device/" + token, req
    assert req.token == token
    assert req.status == 200, (req.status, req.reason)
    h = req.headers
    assert h.get("apns-push-type") == "alert", h
    assert h.get("apns-priority") == "10", h
    assert h.get("apns-collapse-id") == "new_messages", h
    assert h.get("apns-topic") == pki.topic, h
    assert h.get("content-type") == "application/json", h
    assert "apns-expiration" not in h, h
    assert req.body == VISIBLE, req.body


def assert_heartbeat(req, token, pki):
    assert req.method == "POST" and req.path == "/3/device/" + token, req
    assert req.status == 200, (req.status, req.reason)
    h = req.headers
    assert h.get("apns-push-type") == "background", h
    assert h.get("apns-priority") == "5", h
    assert h.get("apns-topic") == pki.topic, h
    assert req.body == SILENT, req.body
    assert req.payload == {"aps": {"content-available": 1}}


# ---- HTTP surface ----------------------------------------------------------


def test_http_surface_root_404_and_413(proxyd, fake_apns):
    """GET / greets; other paths and methods are 404; a body over 16 KiB
    is 413 whether its length is declared or it comes chunked, while a
    body of exactly 16 KiB is read (and refused as a malformed token)."""
    assert proxyd.request("GET", "/") == (200, b"Hello, world!")
    for method, path in (("GET", "/nope"), ("POST", "/nope"),
                         ("GET", "/notify"), ("GET", "/register"),
                         ("POST", "/notify/x"), ("PUT", "/notify")):
        status, _ = proxyd.request(method, path, b"" if method != "GET"
                                   else None)
        assert status == 404, (method, path, status)

    assert proxyd.notify(b"x" * MAX_BODY)[0] == 410
    assert proxyd.notify(b"x" * (MAX_BODY + 1))[0] == 413
    assert proxyd.request("POST", "/notify", b"x" * (MAX_BODY + 1),
                          keep_alive=False, chunked=True)[0] == 413
    big = json.dumps({"token": "a" * MAX_BODY}).encode()
    assert proxyd.register(body=big)[0] == 413
    # 413 refused before anything ran: nothing decrypted, nothing sent.
    assert proxyd.request("GET", "/")[0] == 200
    assert fake_apns.requests == []
    assert proxyd.db_rows() == []


# ---- the vectors of tests/data/openpgp -------------------------------------


@pytest.mark.parametrize("row", CORE_APNS, ids=[v["name"] for v in CORE_APNS])
def test_vector_apns_pushed_to_its_environment(row, proxyd_factory,
                                               fake_apns, fake_apns_factory,
                                               apns_pki):
    """A core_ vector whose token is APNs: one visible push for the
    decrypted hex token, on production or (sandbox:) on the sandbox URL."""
    sandbox = fake_apns_factory("cert", sandbox=True)
    p = proxyd_factory(apns=fake_apns, sandbox=sandbox,
                       keyring=os.path.join(OPENPGP_DIR, row["keyring"]))
    assert p.notify(row["input"]) == (200, b"")

    want_sandbox = row["expected"].startswith("sandbox:")
    hexok = row["expected"].split(":", 1)[1] if want_sandbox \
        else row["expected"]
    right, wrong = (sandbox, fake_apns) if want_sandbox else \
        (fake_apns, sandbox)
    # The fake records a request before answering it, and proxyd answered
    # only after the answer: the counts are final now.
    assert len(right.requests) == 1, right.requests
    assert wrong.requests == [], "pushed to the wrong environment"
    req = right.requests[0]
    assert_visible_push(req, hexok, apns_pki)
    assert req.auth == "cert" and "authorization" not in req.headers
    m = p.metrics()
    assert m["direct_notifications_total"] == 1
    assert m["openpgp_decryption_failures_total"] == 0


def test_vectors_other_providers_answer_500(proxyd_factory, fake_apns):
    """core_ vectors for FCM, Web Push and UBports decrypt and parse, and
    get 500 (the relay retries), never 410, never an APNs push: FCM and
    Web Push have no credentials here ("provider not configured"); UBports
    needs none and is always on, and its URL (port 1 on 127.0.0.1) does not
    answer ("temporary failure")."""
    by_keyring = {}
    for row in CORE_OTHER:
        by_keyring.setdefault(row["keyring"], []).append(row)
    expected = {}
    for keyring, rows in sorted(by_keyring.items()):
        p = proxyd_factory(keyring=os.path.join(OPENPGP_DIR, keyring),
                           name="proxyd-" + keyring.split(".")[0])
        got = {row["name"]: p.notify(row["input"]) for row in rows}
        want = {row["name"]: (500, b"temporary failure\n"
                              if row["expected"].startswith("ubports-")
                              else b"provider not configured\n")
                for row in rows}
        assert got == want
        m = p.metrics()
        assert m["openpgp_decryption_failures_total"] == 0
        assert m["direct_notifications_total"] == 0
        expected.clear()
        for row in rows:
            provider = {"fcm": "FCM", "web": "WebPush",
                        "ubp": "UBports"}[row["expected"][:3]]
            key = ((provider, "temporary", "send") if provider == "UBports"
                   else (provider, "no_provider", ""))
            expected[key] = expected.get(key, 0) + 1
        assert p.failures() == expected
    assert fake_apns.requests == []


def test_vectors_undecryptable_answer_410(proxyd, fake_apns):
    """Every neg_ vector (and the empty-token edge case) is refused with
    410 (the relay deletes the token) and counted as a decryption failure;
    plain tokens that parse as no kind are 410 too. Nothing is sent."""
    rows = NEG_V6 + [BY_NAME["edge_empty_token_k1"]]
    got = {row["name"]: proxyd.notify(row["input"])[0] for row in rows}
    assert got == {row["name"]: 410 for row in rows}
    assert proxyd.metric("openpgp_decryption_failures_total") == len(rows)

    malformed = ["hello", "abc123", "0155b93b7eb867a0",     # short hex
                 "0155b93b7eb867a0d8b7328b978bb15bf22f70867e39e168d03f199"
                 "af949689",                                 # odd length
                 "sandbox:zz" + "00" * 32, "fcm-x:short", "webpush:nope",
                 "ubports-!", "g" * 64]
    got = {t: proxyd.notify(t) for t in malformed}
    assert got == {t: (410, b"malformed token\n") for t in malformed}
    assert fake_apns.requests == []
    assert proxyd.metric("direct_notifications_total") == 0


# ---- independent encryption, as chatmail core does it -----------------------


def test_openpgp_js_token_like_chatmail_core(proxyd_factory, fake_apns,
                                             fake_apns_factory, apns_pki,
                                             openpgp_js):
    """Fresh random tokens encrypted by OpenPGP.js the way chatmail core
    does (v6 PKESK to the X25519 subkey, SEIPDv2 AES-128 OCB, padded to
    512 octets): proxyd pushes the very token, to its environment; an
    encrypted token that is not a token is 410."""
    prod_token, sandbox_token = random_apns_token(), random_apns_token()
    enc_prod = openpgp_js(prod_token)
    enc_sandbox = openpgp_js("sandbox:" + sandbox_token)
    enc_bad = openpgp_js("not a device token " + secrets.token_hex(16))
    for e in (enc_prod, enc_sandbox, enc_bad):
        register_secret(e)
        assert e.startswith("openpgp:") and len(e) == 924, e[:40]
    sandbox = fake_apns_factory("cert", sandbox=True)
    p = proxyd_factory(apns=fake_apns, sandbox=sandbox)

    assert p.notify(enc_prod) == (200, b"")
    assert p.notify(enc_sandbox) == (200, b"")
    assert p.notify(enc_bad) == (410, b"malformed token\n")
    assert [r.token for r in fake_apns.requests] == [prod_token]
    assert [r.token for r in sandbox.requests] == [sandbox_token]
    assert_visible_push(fake_apns.requests[0], prod_token, apns_pki)
    assert_visible_push(sandbox.requests[0], sandbox_token, apns_pki)
    assert p.metric("openpgp_decryption_failures_total") == 0


# ---- debounce ---------------------------------------------------------------


def test_debounce_coalesces_50_requests_into_one_trailing_push(
        proxyd_factory, fake_apns, apns_pki):
    """50 /notify for one token within ~1 s, --debounce 3s: the first is
    pushed at once, the other 49 are answered 200 and covered by ONE
    trailing push at the window's end; the window the trailing push opens
    closes with nothing more. The requests alternate between the
    encrypted and the plain form of the token (the debounce key is the
    decrypted token), so the ciphertext is decrypted once and found in the
    cache 24 times.

    debounced_notifications_total == 49, not 48: it counts requests that
    were coalesced, i.e. every request after the leading one (which was
    sent). The trailing push is no request and is not counted (it shows in
    direct_notifications_total instead)."""
    p = proxyd_factory(debounce="3s")
    token = APNS_K1["expected"]
    forms = [APNS_K1["input"], token]
    t0 = time.monotonic()
    answers = [p.notify(forms[i % 2]) for i in range(50)]
    elapsed = time.monotonic() - t0
    assert answers == [(200, b"")] * 50
    assert elapsed < 2.5, "the client took %.1fs: not inside one window" \
        % elapsed
    assert len(fake_apns.requests) == 1, "not pushed at once, or twice"

    reqs = fake_apns.wait_for(2, timeout=6)
    for r in reqs:
        assert_visible_push(r, token, apns_pki)
    gap = reqs[1].t - reqs[0].t
    assert 2.8 <= gap <= 4.0, "trailing push %.2fs after the first" % gap
    # The trailing push opened a window of its own; nothing is pending in
    # it, so it closes without a push.
    wait_until(lambda: p.metric("debounced_set_size", None) == 0,
               timeout=6, what="the reopened window to close")
    m = p.metrics()
    assert len(fake_apns.requests) == 2, fake_apns.requests
    assert m["debounced_notifications_total"] == 49
    assert m["direct_notifications_total"] == 2
    assert m["decrypt_cache_hits_total"] == 24


def test_debounce_trailing_push_opens_a_new_window(proxyd_factory,
                                                   fake_apns):
    """A request right after a trailing push is inside the window that push
    opened: coalesced (200, no push at once), pushed at that window's
    end."""
    p = proxyd_factory(debounce="1s")
    token = random_apns_token()
    assert p.notify(token) == (200, b"")          # leading push
    assert p.notify(token) == (200, b"")          # coalesced
    first, trailing = fake_apns.wait_for(2, timeout=4)
    assert 0.8 <= trailing.t - first.t <= 2.0
    assert p.notify(token) == (200, b"")          # in the new window
    third = fake_apns.wait_for(3, timeout=4)[2]
    gap = third.t - trailing.t
    assert 0.8 <= gap <= 2.0, "pushed %.2fs after the trailing push: the " \
        "trailing push did not open a window" % gap
    assert p.metric("debounced_notifications_total") == 2


# ---- Apple's answers --------------------------------------------------------


def test_apns_gone_and_failure_answers(proxyd_factory, fake_apns):
    """Apple says gone (410 Unregistered, 400 BadDeviceToken, 400
    DeviceTokenNotForTopic) -> 410 and out of the heartbeat schedule; our
    credentials or request (403 BadCertificate, 400 TopicDisallowed) ->
    500, never 410; temporary (500, 429) -> 500. Each failure is counted
    with provider, reason and Apple's reason as labels."""
    p = proxyd_factory()                  # --interval 20m: no heartbeat
    script = [((410, "Unregistered"), 410),
              ((400, "BadDeviceToken"), 410),
              ((400, "DeviceTokenNotForTopic"), 410),
              ((403, "BadCertificate"), 500),
              ((400, "TopicDisallowed"), 500),
              ((500, "InternalServerError"), 500),
              ((429, "TooManyRequests"), 500),
              (200, 200)]
    tokens = []
    for reply, _ in script:
        t = random_apns_token()
        tokens.append(t)
        fake_apns.set_replies(t, reply)
        assert p.register(t) == (200, b"")
    assert len(p.db_rows()) == len(script)

    got = [p.notify(t)[0] for t in tokens]
    assert got == [want for _, want in script]
    assert [r.token for r in fake_apns.requests] == tokens
    # The gone ones left the heartbeat schedule, the others stayed.
    left = {t for t, _ in p.db_rows()}
    assert left == {t for t, (_, want) in zip(tokens, script)
                    if want != 410}
    assert p.metric("heartbeat_tokens") == len(left)
    assert p.failures() == {
        ("APNS", "410", "Unregistered"): 1,
        ("APNS", "410", "BadDeviceToken"): 1,
        ("APNS", "410", "DeviceTokenNotForTopic"): 1,
        ("APNS", "config", "BadCertificate"): 1,
        ("APNS", "config", "TopicDisallowed"): 1,
        ("APNS", "temporary", "InternalServerError"): 1,
        ("APNS", "temporary", "TooManyRequests"): 1,
    }
    assert p.metric("direct_notifications_total") == 1


# ---- /register and heartbeats -----------------------------------------------


def test_interval_0_turns_heartbeats_off(proxyd_factory, fake_apns):
    """--interval 0: /register answers 200 (an older client stops there)
    and stores nothing; no heartbeat goes out, also for a registration
    stored before heartbeats were turned off."""
    p = proxyd_factory(interval="1s")
    old = random_apns_token()
    assert p.register(old)[0] == 200
    assert [t for t, _ in p.db_rows()] == [old]
    p.stop()
    def heartbeats():
        return [r for r in list(fake_apns.requests)
                if r.headers.get("apns-push-type") == "background"]
    p = proxyd_factory(interval="0", name="proxyd")
    before = len(heartbeats())
    tok = random_apns_token()
    assert p.register(tok) == (200, b"")
    assert [t for t, _ in p.db_rows()] == [old]      # nothing new
    assert p.metric("registrations_ignored_total") == 1
    time.sleep(2.5)
    assert len(heartbeats()) == before
    assert p.notify(tok)[0] == 200                   # pushes still go


def test_register_heartbeats_survive_restart_until_gone(proxyd_factory,
                                                        fake_apns, apns_pki):
    """/register stores the decrypted APNs token; silent pushes follow every
    --interval (2 s, jitter a tenth: +/- 0.2 s), across a restart (the
    schedule is in --db); Apple's 410 for a heartbeat removes the token.

    Fails with a fixed +/- 60 s jitter: the next heartbeat would then be
    anywhere from 58 s in the past (sent at once, again and again) to
    62 s away."""
    interval, jitter = 2.0, 0.2
    p = proxyd_factory(interval="2s")
    token = APNS_K1["expected"]
    t_reg = time.time()
    assert p.register(APNS_K1["input"]) == (200, b"")
    rows = p.db_rows()
    assert [t for t, _ in rows] == [token]
    due = rows[0][1] / 1000.0
    assert t_reg + interval - jitter - 0.1 <= due <= \
        time.time() + interval + jitter + 0.1, (due - t_reg)
    m = p.metrics()
    assert m["heartbeat_registrations_total"] == 1
    assert m["heartbeat_tokens"] == 1

    hb = fake_apns.wait_for(2, timeout=3 * interval)
    for r in hb:
        assert_heartbeat(r, token, apns_pki)
    times = [t_reg] + [r.t for r in hb]
    gaps = [b - a for a, b in zip(times, times[1:])]
    for g in gaps:
        assert interval - jitter - 0.1 <= g <= interval + jitter + 0.5, gaps
    # The fake records a push before it answers; proxyd counts the answer.
    wait_until(lambda: p.metric("heartbeat_notifications_total") >= 2,
               timeout=5, what="heartbeat_notifications_total >= 2")

    p.restart()
    t_restart = time.time()
    assert [t for t, _ in p.db_rows()] == [token]
    assert p.metric("heartbeat_tokens") == 1
    after = fake_apns.wait_for(
        lambda reqs: [r for r in reqs if r.t > t_restart],
        timeout=interval + jitter + 2)
    assert_heartbeat(after[0], token, apns_pki)
    assert after[0].t - t_restart <= interval + jitter + 0.5

    fake_apns.set_replies(token, (410, "Unregistered"))
    gone = fake_apns.wait_for(
        lambda reqs: [r for r in reqs if r.status == 410],
        timeout=interval + jitter + 2)
    assert gone[0].token == token
    wait_until(lambda: p.db_rows() == [], timeout=5,
               what="the gone token to leave the db")
    assert p.metric("heartbeat_tokens") == 0
    assert p.failures().get(("APNS", "410", "Unregistered")) == 1


def test_register_rejects_what_cannot_get_heartbeats(proxyd, fake_apns):
    """Only APNs tokens register: FCM, Web Push, UBports, undecryptable and
    malformed tokens and bad JSON are 400, and nothing is stored."""
    bad = [
        BY_NAME["core_fcm_k2"]["input"],
        BY_NAME["core_webpush_k1"]["input"],
        BY_NAME["core_ubports_k2"]["input"],
        BY_NAME["neg_wrong_key"]["input"],
        "fcm-chat.delta:" + "a" * 40,
        "not a token",
    ]
    for t in bad:
        assert proxyd.register(t)[0] == 400, t[:40]
    for body in (b"{", b"", b"null", b"[]", b'"token"', b"{}",
                 b'{"token": ""}', b'{"token": 5}', b'{"token": null}',
                 b'{"tokens": "00"}',
                 b'{"token": "%s", "token": "%s"}' % (
                     APNS_K1["expected"].encode(),
                     APNS_K1["expected"].encode())):
        assert proxyd.register(body=body)[0] == 400, body
    assert proxyd.db_rows() == []
    m = proxyd.metrics()
    assert m["heartbeat_registrations_total"] == 0
    assert m["heartbeat_tokens"] == 0
    assert fake_apns.requests == []
    # And the good one still works on the same connection.
    assert proxyd.register(APNS_K1["input"]) == (200, b"")
    assert [t for t, _ in proxyd.db_rows()] == [APNS_K1["expected"]]


# ---- credentials ------------------------------------------------------------


def test_token_auth_reuses_one_jwt(proxyd_factory, fake_apns_factory,
                                   apns_pki):
    """Token auth (.p8): every push carries a valid ES256 provider token of
    our key and team, and the same one each time (the fake answers 429
    TooManyProviderTokenUpdates to a new one within 20 minutes). Ten
    pushes arrive at once after the first: a new token connection allows
    one stream until a valid JWT, as at Apple."""
    fake = fake_apns_factory("token")
    p = proxyd_factory(apns=fake, auth="token")
    t_start = int(time.time())
    tokens = [random_apns_token() for _ in range(11)]
    assert p.notify(tokens[0]) == (200, b"")
    results = {}

    def send(t):
        results[t] = p.notify(t, keep_alive=False)
    threads = [threading.Thread(target=send, args=(t,)) for t in tokens[1:]]
    for th in threads:
        th.start()
    for th in threads:
        th.join(30)
    assert results == {t: (200, b"") for t in tokens[1:]}

    reqs = fake.requests
    assert sorted(r.token for r in reqs) == sorted(tokens)
    assert all(r.status == 200 and r.auth == "token" for r in reqs), reqs
    assert {r.headers["authorization"] for r in reqs} == \
        {reqs[0].headers["authorization"]}, "the JWT changed"
    jwt = reqs[0].jwt
    assert jwt["alg"] == "ES256" and jwt["kid"] == apns_pki.key_id
    assert jwt["iss"] == apns_pki.team_id
    assert t_start - 2 <= jwt["iat"] <= time.time() + 2
    assert len(fake.provider_tokens[apns_pki.team_id]) == 1
    assert fake.token_updates_refused == 0
    for r in reqs:
        assert r.headers["apns-topic"] == apns_pki.topic


def test_legacy_rc2_p12_certificate(proxyd_factory, fake_apns, apns_pki):
    """A .p12 exported the old way (RC2-40 + 3DES, SHA-1 MAC) loads
    (OpenSSL's legacy provider) and authenticates the TLS connection."""
    p = proxyd_factory(p12=apns_pki.client_p12_legacy)
    token = random_apns_token()
    assert p.notify(token) == (200, b"")
    req = fake_apns.requests[0]
    assert req.auth == "cert" and req.topic == apns_pki.topic
    assert_visible_push(req, token, apns_pki)


def test_wrong_p12_password_stops_the_start(proxyd_factory, apns_pki):
    for p12 in (apns_pki.client_p12, apns_pki.client_p12_legacy):
        p = proxyd_factory(p12=p12, password="not-the-password", start=False,
                           name="proxyd-" + os.path.basename(p12))
        rc, out = p.run_to_exit()
        assert rc != 0, out
        assert "wrong password" in out, out


def test_password_file(proxyd_factory, fake_apns, apns_pki, tmpdir):
    """--password-file (one line, its newline not part of the password)
    unlocks the .p12 like --password; a wrong one stops the start."""
    good = os.path.join(tmpdir, "p12-password")
    with open(good, "w") as f:
        f.write(apns_pki.p12_password + "\n")
    p = proxyd_factory(password_file=good)
    assert apns_pki.p12_password not in " ".join(p.argv)
    token = random_apns_token()
    assert p.notify(token) == (200, b"")
    assert fake_apns.requests[0].auth == "cert"
    bad = os.path.join(tmpdir, "bad-password")
    with open(bad, "w") as f:
        f.write("not-the-password\n")
    rc, out = proxyd_factory(password_file=bad, start=False,
                             name="proxyd-bad").run_to_exit()
    assert rc != 0 and "wrong password" in out, (rc, out)


def test_certificate_refused_by_apple_is_500_not_410(proxyd_factory,
                                                      fake_apns, apns_pki):
    """A client certificate of another CA fails the TLS handshake: no push,
    500 (the relay retries), never 410 (the relay would drop the
    token)."""
    p = proxyd_factory(p12=apns_pki.other_client_p12)
    status, _ = p.notify(random_apns_token())
    assert status == 500
    assert fake_apns.requests == []
    assert fake_apns.tls_failures, "the fake saw no handshake"
    assert p.metric("direct_notifications_total") == 0


def test_clock_an_hour_off_is_a_configuration_error(proxyd_factory,
                                                     fake_apns_factory):
    """APNs answers ExpiredProviderToken for the JWT proxyd just made (the
    fake judges iat as a host whose clock is an hour behind would make
    it): every push fails, so each is a configuration failure (500, never
    410), counted, and one error line says what to check, once for the
    whole episode; the first push Apple takes again ends it."""
    fake = fake_apns_factory("token", token_max_age=-3600)
    p = proxyd_factory(apns=fake, auth="token")
    for _ in range(5):
        assert p.notify(random_apns_token())[0] == 500
    failures = p.failures()
    assert sum(v for (prov, reason, det), v in failures.items()
               if prov == "APNS" and reason == "config") == 5, failures
    assert p.metric('provider_credential_refused_total{provider="APNS"}'
                    ) == 5
    log = p.log_text()
    assert log.count("check NTP") == 1, log
    assert "error: push APNS refuses the credential we just made" in log
    fake.token_max_age = 3600                   # the clock fixed
    assert p.notify(random_apns_token())[0] == 200
    assert "push APNS takes our credential again" in p.log_text()


def test_no_credentials_warns_and_answers_500(proxyd_factory, fake_apns):
    p = proxyd_factory(auth=None)
    assert "no APNs credentials" in p.log_text()
    assert p.notify(random_apns_token()) == (500,
                                             b"provider not configured\n")
    assert p.notify(APNS_K1["input"])[0] == 500
    assert fake_apns.requests == [] and fake_apns.connections == 0
    assert p.failures() == {("APNS", "no_certificate", ""): 2}


def test_unsendable_push_is_never_debounced(proxyd_factory, fake_apns):
    """A push proxyd cannot send fails at once, every time: a debounce
    window must not answer 200 for it and hide the failure from the relay
    (found by exploring: an FCM token got 500, then 200 inside the
    window)."""
    p = proxyd_factory(debounce="10s")
    fcm = BY_NAME["core_fcm_k2"]["input"]
    for _ in range(3):
        assert p.notify(fcm) == (500, b"provider not configured\n")
    assert fake_apns.requests == []


# ---- hygiene ----------------------------------------------------------------


def test_debug_log_never_shows_a_token(proxyd_factory, fake_apns,
                                       fake_apns_factory):
    """With --log-level debug, after every path a token can take (pushed,
    gone, temporary failure, undecryptable, malformed, other provider,
    registered, heartbeat), the log mentions the pushes but holds no
    fragment of any token or ciphertext."""
    sandbox = fake_apns_factory("cert")
    p = proxyd_factory(apns=fake_apns, sandbox=sandbox, interval="1s")
    plain, gone, temp = (random_apns_token() for _ in range(3))
    fake_apns.set_replies(gone, (410, "Unregistered"))
    fake_apns.set_replies(temp, (500, "InternalServerError"))
    sent = [APNS_K1["input"], BY_NAME["core_apns_sandbox_k2"]["input"],
            BY_NAME["core_fcm_k2"]["input"], BY_NAME["neg_wrong_key"]["input"],
            BY_NAME["neg_ciphertext_bitflip"]["input"], plain, gone, temp,
            "sandbox:" + plain, "not-a-token-" + plain]
    for t in sent:
        p.notify(t)
    assert p.register(APNS_K1["input"])[0] == 200
    fake_apns.wait_for(lambda reqs: [r for r in reqs
                                     if r.push_type == "background"],
                       timeout=5)
    p.stop()
    log = p.log_text()
    assert "proxy push token=" in log and "gone" in log, \
        "no debug lines about pushes: nothing was checked"
    secrets_sent = set(sent) | {APNS_K1["expected"],
                                BY_NAME["core_apns_sandbox_k2"]["expected"],
                                BY_NAME["core_fcm_k2"]["expected"]}
    assert leaked_secrets(log, {s for s in secrets_sent if len(s) >= 16}) \
        == []


def test_sigterm_answers_the_push_in_flight_and_exits_0(proxyd_factory,
                                                         fake_apns_factory):
    """SIGTERM while Apple is still answering: the waiting request gets its
    200 (within the 5 s grace) and proxyd exits 0."""
    fake = fake_apns_factory("cert", delay=1.0)
    p = proxyd_factory(apns=fake)
    token = random_apns_token()
    result = {}
    th = threading.Thread(target=lambda: result.update(
        r=p.notify(token, keep_alive=False)))
    th.start()
    fake.wait_for(1, timeout=5)           # recorded, answer 1 s away
    t0 = time.monotonic()
    assert p.stop() == 0
    th.join(10)
    assert result.get("r") == (200, b"")
    assert time.monotonic() - t0 < 5
    with pytest.raises(OSError):
        http_request(p.port, "GET", "/", timeout=1.0)
