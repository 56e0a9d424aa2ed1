"""notifierd against a proxy that speaks HTTP/2 over TLS: requests are
multiplexed over one connection, and the proxy's certificate is verified
against --ca-file (a wrong CA delivers nothing)."""
import os
import socket
import sqlite3
import time

import pytest

import harness
from h2_server import H2Server, make_cert

N_JOBS = 200


def insert_jobs(db_path, tokens):
    now = int(time.time() * 1000)
    con = sqlite3.connect(db_path, timeout=10)
    with con:
        for i, tok in enumerate(tokens):
            cur = con.execute(
                "INSERT INTO tokens(user, token, token_hash, mailbox, "
                "updated_at) VALUES (?, ?, ?, 'g', ?)",
                ("user%d@example.org" % i, tok, i + 1, now))
            con.execute("INSERT INTO queue(token_id, user, created_at, "
                        "next_at) VALUES (?, ?, ?, ?)",
                        (cur.lastrowid, "user%d@example.org" % i, now, now))
    con.close()


def queue_length(db_path):
    con = sqlite3.connect("file:%s?mode=ro" % db_path, uri=True, timeout=10)
    try:
        return con.execute("SELECT count(*) FROM queue").fetchone()[0]
    finally:
        con.close()


def start_notifierd(tmpdir, url, ca_file):
    db = os.path.join(tmpdir, "relay.db")
    wake = os.path.join(tmpdir, "wake.sock")
    d = harness.Daemon([os.path.join(harness.PUSHSTACK_BIN, "notifierd"),
                        "--db", db, "--proxy-url", url, "--ca-file", ca_file,
                        "--wake-socket", wake, "--concurrency", "64",
                        "--retry-base", "200ms", "--poll", "200ms",
                        "--log-level", "debug"],
                       os.path.join(tmpdir, "notifierd.log"))
    d.ready = lambda: os.path.exists(wake)
    return d.start(), db, wake


def wake(path):
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        s.sendto(b"w", path)


@pytest.fixture
def h2proxy(tmpdir):
    cert, key = make_cert(tmpdir)
    srv = H2Server(cert, key)
    yield srv, cert
    srv.stop()


def test_http2_multiplexed_over_one_tls_connection(tmpdir, h2proxy):
    srv, cert = h2proxy
    d, db, wake_path = start_notifierd(tmpdir, srv.url, cert)
    try:
        tokens = ["openpgp:h2-%04d-" % i + "Q" * 600 for i in range(N_JOBS)]
        for t in tokens:
            harness.register_secret(t.encode())
        insert_jobs(db, tokens)
        wake(wake_path)
        assert srv.wait_for(N_JOBS, 20), "got %d of %d" % (
            len(srv.bodies), N_JOBS)
        harness.wait_until(lambda: queue_length(db) == 0, 10,
                           what="queue drained")
        assert sorted(b.decode() for b in srv.bodies) == sorted(tokens)
        # One TLS connection carried every request, negotiated as h2.
        assert srv.connections == 1, srv.connections
        assert srv.alpn == ["h2"]
    finally:
        d.stop()
    log = open(d.log_path, "rb").read()
    assert harness.leaked_secrets(log.decode(errors="replace")) == []


def test_wrong_ca_delivers_nothing(tmpdir, h2proxy):
    srv, _ = h2proxy
    other_dir = os.path.join(tmpdir, "other")
    os.mkdir(other_dir)
    other_cert, _ = make_cert(other_dir)
    d, db, wake_path = start_notifierd(tmpdir, srv.url, other_cert)
    try:
        insert_jobs(db, ["openpgp:untrusted-" + "Q" * 100])
        wake(wake_path)
        # The TLS handshake fails: the job is retried, never delivered.
        harness.wait_until(
            lambda: sqlite3.connect(db).execute(
                "SELECT attempts FROM queue").fetchone()[0] >= 2, 10,
            what="retries after certificate failures")
        assert srv.bodies == []
        assert queue_length(db) == 1
    finally:
        d.stop()
