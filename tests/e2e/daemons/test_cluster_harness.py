"""The harness of issue 15's tests on its own (redis_harness.py): Redis,
Sentinel failover and the HAProxy configuration we ship, with no proxyd.

- RedisServer: PING, SET/GET through the harness's own RESP2 client,
  requirepass, SIGKILL and a restart on the same port (empty again: no
  persistence unless asked), and an append-only file surviving SIGKILL
  when asked.
- A master, a replica and three sentinels (quorum 2, down-after 1 s):
  killing the master makes the sentinels promote the replica; every
  sentinel then names the replica's address.
- deploy/haproxy/haproxy.cfg: `haproxy -c` on the shipped file with only
  its certificate path filled in, and the test's rendering of it changes
  only the lines render_haproxy_cfg documents.

Each test takes a few seconds; the failover about 3-6 s of Sentinel's
own timers.
"""
import os
import re
import subprocess
import time

import pytest

from harness import wait_until
from redis_harness import (HAPROXY_CFG, RedisError, render_haproxy_cfg)


# Tests of the harness itself (no daemon of ours): once is enough.
pytestmark = pytest.mark.not_again_under_san


def test_redis_server_ping_set_get_kill_restart(redis_factory):
    r = redis_factory()
    assert r.cli("PING") == "PONG"
    assert r.cli("SET", "k", "v\r\nwith CRLF") == "OK"
    assert r.cli("GET", "k") == "v\r\nwith CRLF"
    assert r.cli("GET", "missing") is None
    assert r.cli("INCRBY", "n", 5) == 5
    assert r.cli("RPUSH", "l", "a", "b") == 2
    assert r.cli("LRANGE", "l", 0, -1) == ["a", "b"]
    with pytest.raises(RedisError, match="WRONGTYPE"):
        r.cli("GET", "l")
    assert r.dbsize() == 3
    info = r.info("server")
    assert info["tcp_port"] == str(r.port)
    assert info["redis_version"].startswith("7."), info["redis_version"]
    assert r.info("persistence")["aof_enabled"] == "0"

    port = r.port
    assert r.kill() == -9
    assert not r.ping()
    r.start()
    assert r.port == port and r.ping()
    assert r.dbsize() == 0, "no persistence: a crash loses everything"
    r.cli("SET", "k", "again")
    r.restart()
    assert r.dbsize() == 0
    r.cli("SET", "x", "1")
    assert r.flushall() == "OK" and r.dbsize() == 0


def test_redis_password_and_persistence(redis_factory):
    r = redis_factory(password="s3cret", persistence=True)
    assert r.url == "redis://:s3cret@127.0.0.1:%d/0" % r.port
    # Redis writes the append-only file before it answers (fsync comes
    # later, everysec): a process crash loses nothing answered.
    assert r.cli("SET", "kept", "yes") == "OK"
    r.kill()
    r.start()
    assert r.cli("GET", "kept") == "yes"
    # Without the password: refused.
    r.password = None
    with pytest.raises(RedisError, match="NOAUTH"):
        r.cli("GET", "kept")
    r.password = "s3cret"


def test_sentinel_promotes_the_replica_when_the_master_dies(
        redis_factory, sentinel_factory):
    master = redis_factory(name="master")
    replica = redis_factory(name="replica", replicaof=master)
    replica.wait_synced()
    master.wait_replicas(1)
    master.cli("SET", "before", "failover")
    wait_until(lambda: replica.cli("GET", "before") == "failover",
               what="the write replicated")
    # Replicas first: a sentinel asks the master for them at once when it
    # starts, then only every 10 s.
    sentinels = [sentinel_factory(master, name="sentinel%d" % i, quorum=2)
                 for i in range(3)]
    for s in sentinels:
        s.wait_sees(replicas=1, sentinels=2)
        assert s.master_addr() == master.addr
    assert replica.role() == "slave"

    t0 = time.monotonic()
    master.kill()
    for s in sentinels:
        s.wait_master(lambda a: a == replica.addr, timeout=20.0)
    took = time.monotonic() - t0
    print("sentinel failover took %.1f s" % took)
    assert took < 12.0, took
    wait_until(lambda: replica.role() == "master",
               what="the replica promoted")
    assert replica.cli("GET", "before") == "failover"
    assert replica.cli("SET", "after", "failover") == "OK"


def test_shipped_haproxy_cfg_passes_haproxy_check(tmpdir, apns_pki,
                                                  haproxy_factory):
    """`haproxy -c` on deploy/haproxy/haproxy.cfg as shipped, only the
    certificate path pointing to a real file (the user haproxy, its
    chroot and /run/haproxy are not needed for a check)."""
    h = haproxy_factory(["127.0.0.1:1"], start=False)
    with open(HAPROXY_CFG) as f:
        text = f.read()
    assert "/etc/haproxy/certs/push.example.org.pem" in text
    path = os.path.join(tmpdir, "shipped.cfg")
    with open(path, "w") as f:
        f.write(text.replace("/etc/haproxy/certs/push.example.org.pem",
                             h.crt))
    r = subprocess.run([h.binary, "-c", "-f", path], capture_output=True,
                       timeout=30)
    out = (r.stdout + r.stderr).decode()
    assert r.returncode == 0, out
    assert "WARNING" not in out and "ALERT" not in out, out


def test_test_config_is_the_shipped_one(tmpdir, apns_pki, haproxy_factory):
    """What the tests run differs from the shipped file only in the
    documented lines: environment (ports, paths, log, privileges) and the
    servers; never a timeout, a check, a header rule or a TLS setting."""
    with open(HAPROXY_CFG) as f:
        text = f.read()
    cfg, changes = render_haproxy_cfg(
        text, 4430, "/tmp/x.pem", 8405, "/tmp/admin.sock",
        [("a", "127.0.0.1:1"), ("b", "127.0.0.1:2")])
    allowed = re.compile(r"\s*(log /dev/log|chroot|user|group|daemon|"
                         r"stats socket|maxconn|bind|server) ")
    for old, _ in changes:
        assert allowed.match(old + " "), old
    kept = [ln for ln in text.splitlines()
            if ln not in {o for o, _ in changes}]
    assert kept == [ln for ln in cfg.splitlines()
                    if ln in set(text.splitlines())]
    for must in ("option forwardfor", "http-request del-header "
                 "X-Forwarded-For", "option httpchk GET /health",
                 "http-check expect status 200", "balance roundrobin",
                 "ssl-min-ver TLSv1.2", "alpn h2,http/1.1",
                 "timeout server 30s", "timeout http-request 10s"):
        assert must in cfg, must
    assert "\tserver a 127.0.0.1:1 check\n\tserver b 127.0.0.1:2 check\n" \
        in cfg
