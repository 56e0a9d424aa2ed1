"""proxyd's HTTP/2 client to APNs (proxyd/transport/h2client.c) against the fake
APNs: what a long-lived multiplexed connection to Apple meets in
production. Concurrency limits (Apple starts token-auth connections at one
stream), GOAWAY with streams in flight (answered ones kept, refused ones
sent again on a new connection), a dropped connection, a server that does
not answer (--timeout), a server that is down and comes back.

Pushes go to distinct tokens so that the debounce never hides one.
"""
import concurrent.futures
import secrets
import time

from harness import http_request, register_secret, wait_until


def tokens(n):
    out = [secrets.token_hex(32) for _ in range(n)]
    for t in out:
        register_secret(t)
    return out


def notify_all(p, toks, workers=16):
    """Status of /notify for each token, sent concurrently."""
    with concurrent.futures.ThreadPoolExecutor(workers) as ex:
        return list(ex.map(lambda t: http_request(p.port, "POST", "/notify",
                                                  t, timeout=20)[0], toks))


def test_many_streams_share_one_connection(proxyd_factory, fake_apns):
    """200 concurrent pushes: one TCP connection, streams multiplexed, every
    push answered 200 and seen once by the fake."""
    p = proxyd_factory()
    toks = tokens(200)
    assert notify_all(p, toks, workers=32) == [200] * 200
    assert sorted(r.token for r in fake_apns.requests) == sorted(toks)
    assert fake_apns.connections == 1
    assert fake_apns.peak_streams > 1


def test_server_stream_limit_is_respected(proxyd_factory,
                                          fake_apns_factory):
    """A server allowing 2 concurrent streams: nghttp2 queues the rest, the
    fake never has to refuse a stream, all 40 pushes arrive."""
    fake = fake_apns_factory("cert", max_concurrent_streams=2, delay=0.02)
    p = proxyd_factory(apns=fake)
    toks = tokens(40)
    assert notify_all(p, toks) == [200] * 40
    assert fake.peak_streams <= 2
    assert fake.refused_streams == 0
    assert len(fake.requests) == 40


def test_token_auth_starts_with_one_stream(proxyd_factory,
                                           fake_apns_factory):
    """Apple's token-auth connections allow one stream until the first
    provider token is accepted, then raise the limit."""
    fake = fake_apns_factory("token")
    p = proxyd_factory(apns=fake, auth="token")
    toks = tokens(30)
    assert notify_all(p, toks) == [200] * 30
    assert len(fake.requests) == 30


def test_goaway_moves_new_pushes_to_a_new_connection(proxyd_factory,
                                                     fake_apns):
    """After Apple's GOAWAY the pushes in flight are answered on the old
    connection and later ones go on a new connection."""
    p = proxyd_factory()
    first, later = tokens(10), tokens(10)
    fake_apns.delay = 0.3
    with concurrent.futures.ThreadPoolExecutor(1) as ex:
        f = ex.submit(notify_all, p, first)
        wait_until(lambda: len(fake_apns.requests) == 10, timeout=10)
        assert fake_apns.goaway("Shutdown") == 1
        assert f.result() == [200] * 10
    fake_apns.delay = 0.0
    assert notify_all(p, later) == [200] * 10
    assert fake_apns.connections == 2
    assert len(fake_apns.requests) == 20


def test_streams_refused_by_goaway_are_sent_again(proxyd_factory,
                                                  fake_apns):
    """GOAWAY with last-stream-id 0 while pushes wait: none was processed,
    so proxyd sends them again on a new connection (each arrives once
    there) and the relay sees 200, not 500."""
    p = proxyd_factory()
    assert notify_all(p, tokens(1)) == [200]      # the connection is up
    toks = tokens(8)
    fake_apns.delay = 0.5
    with concurrent.futures.ThreadPoolExecutor(1) as ex:
        f = ex.submit(notify_all, p, toks)
        wait_until(lambda: len(fake_apns.requests) == 9, timeout=10)
        fake_apns.goaway("Shutdown", last_stream_id=1)
        assert f.result() == [200] * 8
    # Streams 3.. were beyond last-stream-id 1: the fake dropped them
    # unanswered; each came again, once, on the second connection.
    assert fake_apns.connections == 2
    first = min(r.conn for r in fake_apns.requests)
    again = [r.token for r in fake_apns.requests if r.conn != first]
    assert sorted(again) == sorted(toks)


def test_dropped_connection_fails_in_flight_then_reconnects(proxyd_factory,
                                                            fake_apns):
    """A TCP reset with pushes in flight: those get 500 (the relay will
    retry), the next push opens a new connection and gets 200."""
    p = proxyd_factory()
    fake_apns.delay = 1.0
    toks = tokens(5)
    with concurrent.futures.ThreadPoolExecutor(1) as ex:
        f = ex.submit(notify_all, p, toks)
        wait_until(lambda: len(fake_apns.requests) == 5, timeout=10)
        fake_apns.drop_connections()
        assert f.result() == [500] * 5
    fake_apns.delay = 0.0
    assert notify_all(p, tokens(3)) == [200] * 3
    assert fake_apns.connections == 2


def test_no_answer_times_out_with_500(proxyd_factory, fake_apns):
    """Apple holds the stream: --timeout 1s later the relay gets 500 and
    the failure is counted; the connection stays usable."""
    p = proxyd_factory(timeout="1s")
    fake_apns.delay = 5.0
    t0 = time.monotonic()
    assert notify_all(p, tokens(2)) == [500, 500]
    took = time.monotonic() - t0
    assert 0.9 <= took < 3.0, took
    fake_apns.delay = 0.0
    assert notify_all(p, tokens(1)) == [200]


def test_unresponsive_connection_is_replaced(proxyd_factory, fake_apns):
    """Three pushes in a row time out with no answer between them: the
    connection is given up and the next push opens a new one."""
    p = proxyd_factory(timeout="1s")
    assert notify_all(p, tokens(1)) == [200]
    fake_apns.delay = 5.0
    assert notify_all(p, tokens(3)) == [500] * 3
    fake_apns.delay = 0.0
    assert notify_all(p, tokens(1)) == [200]
    assert fake_apns.connections == 2


def test_server_down_then_back(proxyd_factory, fake_apns_factory,
                               apns_pki):
    """Nothing listens: 500 at once (connection refused), no hang. The
    server comes up on the same port: the next push connects and gets
    200."""
    fake = fake_apns_factory("cert")
    port = fake.port
    fake.stop()
    p = proxyd_factory(apns=fake)
    t0 = time.monotonic()
    assert notify_all(p, tokens(3)) == [500] * 3
    assert time.monotonic() - t0 < 3.0
    back = fake_apns_factory("cert", port=port)
    assert notify_all(p, tokens(2)) == [200] * 2
    assert len(back.requests) == 2


def test_untrusted_server_certificate_is_refused(proxyd_factory, fake_apns,
                                                 apns_pki):
    """--ca-file names another CA than the one that signed the server's
    certificate: the handshake fails, no push leaves, 500."""
    p = proxyd_factory(extra_args=("--ca-file", apns_pki.other_ca_cert))
    assert notify_all(p, tokens(2)) == [500, 500]
    assert fake_apns.requests == []


def test_goaway_then_close_resends_streams_never_sent(proxyd_factory,
                                                      fake_apns_factory):
    """A one-stream server says GOAWAY, answers its stream and closes, as
    Apple does, while five pushes still wait in proxyd for a free stream:
    they were never sent, so they go out on a new connection and the
    relay sees 200 for all six."""
    fake = fake_apns_factory("cert", max_concurrent_streams=1, delay=0.5)
    p = proxyd_factory(apns=fake)
    assert notify_all(p, tokens(1)) == [200]    # limit 1 acknowledged
    toks = tokens(6)
    with concurrent.futures.ThreadPoolExecutor(1) as ex:
        f = ex.submit(notify_all, p, toks)
        wait_until(lambda: len(fake.requests) == 2, timeout=10)
        time.sleep(0.1)             # the other five are queued in proxyd
        fake.goaway("Shutdown")
        fake.delay = 0.0
        assert f.result() == [200] * 6
    assert fake.connections == 2
    assert sorted(r.token for r in fake.requests[1:]) == sorted(toks)
