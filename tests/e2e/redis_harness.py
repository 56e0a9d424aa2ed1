"""Redis, Redis Sentinel and HAProxy for the end-to-end tests: several
proxyd sharing state through Redis behind a balancer (issue 15).

Each runs in the foreground (no daemonizing) in its own directory of the
test's temp dir, on free 127.0.0.1 ports, logging to a file there, and is
stopped with SIGTERM (exit 0 required) like every harness.Daemon.
conftest.py turns them into fixtures (redis_factory, sentinel_factory,
haproxy_factory).

  RedisServer    redis-server from a generated config: no persistence
                 unless asked, optional replicaof and requirepass;
                 cli(*args) speaks RESP2 itself (no redis-py)
  RedisSentinel  redis-sentinel monitoring one master, test-sized
                 down-after and failover timeouts; master_addr()
  HAProxy        haproxy -db on deploy/haproxy/haproxy.cfg, the shipped
                 file, with its ports, paths and servers substituted
                 (render_haproxy_cfg); HTTPS requests through it with the
                 test CA; server states from its stats socket

Debian 12: redis-server and redis-sentinel 7.0, haproxy 2.6.
"""

import csv
import http.client
import io
import os
import re
import shutil
import socket
import ssl

from harness import (REPO_DIR, Daemon, DaemonError, free_tcp_port, tail,
                     wait_until)

REDIS_SERVER = os.environ.get("REDIS_SERVER", "/usr/bin/redis-server")
REDIS_SENTINEL = os.environ.get("REDIS_SENTINEL", "/usr/bin/redis-sentinel")
HAPROXY = os.environ.get("HAPROXY", "/usr/bin/haproxy")
HAPROXY_CFG = os.path.join(REPO_DIR, "deploy", "haproxy", "haproxy.cfg")


def find_binary(path):
    """The path if executable, else the name looked up in PATH, else
    None."""
    if os.access(path, os.X_OK):
        return path
    return shutil.which(os.path.basename(path))


# ---- RESP2 -----------------------------------------------------------------


class RedisError(Exception):
    """An error reply (-ERR ...) from Redis or Sentinel."""


class Resp:
    """A minimal RESP2 client on one TCP connection: call(*args) sends a
    command as an array of bulk strings and returns the reply decoded
    (str, int, None, list); an error reply raises RedisError."""

    def __init__(self, port, host="127.0.0.1", timeout=5.0, password=None):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.f = self.sock.makefile("rb")
        if password is not None:
            self.call("AUTH", password)

    def close(self):
        self.f.close()
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def call(self, *args):
        out = [b"*%d\r\n" % len(args)]
        for a in args:
            a = a if isinstance(a, bytes) else str(a).encode()
            out.append(b"$%d\r\n%s\r\n" % (len(a), a))
        self.sock.sendall(b"".join(out))
        return self._reply()

    def _reply(self):
        line = self.f.readline()
        if not line.endswith(b"\r\n"):
            raise ConnectionError("connection closed by Redis")
        kind, rest = line[:1], line[1:-2]
        if kind == b"+":
            return rest.decode()
        if kind == b"-":
            raise RedisError(rest.decode())
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            if n < 0:
                return None
            data = self.f.read(n + 2)
            return data[:-2].decode("utf-8", "backslashreplace")
        if kind == b"*":
            n = int(rest)
            return None if n < 0 else [self._reply() for _ in range(n)]
        raise ConnectionError("bad RESP reply %r" % line)


def parse_info(text):
    """INFO's "key:value" lines as a dict (values as strings)."""
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#") and ":" in line:
            k, v = line.split(":", 1)
            out[k] = v
    return out


def _pairs(flat):
    """A flat [k1, v1, k2, v2, ...] reply (SENTINEL MASTER) as a dict."""
    return dict(zip(flat[0::2], flat[1::2]))


# ---- Redis and Sentinel ----------------------------------------------------


class _RedisBase(Daemon):
    """What a Redis server and a Sentinel share: a config file written
    once, a port, PING as readiness, cli()."""

    password = None

    def __init__(self, binary, workdir, name, conf_lines):
        self.workdir = workdir
        os.makedirs(workdir, exist_ok=True)
        self.conf_path = os.path.join(workdir, name + ".conf")
        with open(self.conf_path, "w") as f:
            f.write("\n".join(conf_lines) + "\n")
        super().__init__([binary, self.conf_path],
                         os.path.join(workdir, name + ".log"))
        self.name = name

    @property
    def addr(self):
        return ("127.0.0.1", self.port)

    def cli(self, *args, timeout=5.0):
        """One command on a connection of its own (AUTH first when the
        server has a password): the decoded reply; RedisError on an error
        reply."""
        with Resp(self.port, timeout=timeout, password=self.password) as r:
            return r.call(*args)

    def ping(self):
        try:
            return self.cli("PING", timeout=1.0) == "PONG"
        except (OSError, RedisError):
            return False

    def ready(self):
        return self.ping()

    def wait_ready(self, timeout=10.0):
        return wait_until(self.ping, timeout=timeout,
                          what="%s answering PING" % self.name)

    def info(self, section=None):
        """INFO [section] parsed into a dict."""
        args = ("INFO", section) if section else ("INFO",)
        return parse_info(self.cli(*args))

    def kill(self):
        """SIGKILL: a crash (nothing saved, nothing said to replicas).
        The exit status goes to exit_codes; start() runs it again on the
        same port."""
        if self.proc is None:
            return None
        proc, self.proc = self.proc, None
        proc.kill()
        proc.wait()
        self.exit_codes.append(proc.returncode)
        return proc.returncode


class RedisServer(_RedisBase):
    """redis-server on 127.0.0.1:port (free unless given) in workdir.

    persistence=False: `save ""` and `appendonly no` (nothing on disk);
    True: RDB saves at Redis's defaults and an append-only file with
    fsync every second. replicaof: a RedisServer or (host, port) to
    follow (masterauth is the password, if any). password: requirepass
    (and masterauth, so that a replica promoted by Sentinel can follow
    another). extra_conf: more config lines.
    """

    def __init__(self, workdir, name="redis", port=None, password=None,
                 replicaof=None, persistence=False, extra_conf=(),
                 binary=None):
        self.port = port or free_tcp_port()
        self.password = password
        conf = ["port %d" % self.port, "bind 127.0.0.1",
                "daemonize no", "supervised no", 'logfile ""',
                "dir %s" % workdir, "pidfile %s" % os.path.join(
                    workdir, name + ".pid"),
                "dbfilename %s.rdb" % name,
                # Sentinel sees replicas at the address they announce.
                "replica-announce-ip 127.0.0.1"]
        if persistence:
            conf += ["save 3600 1 300 100 60 10000", "appendonly yes",
                     "appendfilename %s.aof" % name,
                     "appendfsync everysec"]
        else:
            conf += ['save ""', "appendonly no"]
        if password is not None:
            conf += ["requirepass %s" % password,
                     "masterauth %s" % password]
        if replicaof is not None:
            host, rport = (replicaof.addr if isinstance(replicaof,
                                                        RedisServer)
                           else replicaof)
            conf.append("replicaof %s %d" % (host, rport))
        conf += list(extra_conf)
        super().__init__(binary or find_binary(REDIS_SERVER) or REDIS_SERVER,
                         workdir, name, conf)

    @property
    def url(self):
        """redis://[:password@]127.0.0.1:port/0, as proxyd's --redis
        takes it."""
        auth = ":%s@" % self.password if self.password else ""
        return "redis://%s127.0.0.1:%d/0" % (auth, self.port)

    def restart(self):
        """Stop (SIGTERM, exit 0) unless already dead, and start on the
        same port with the same config."""
        if self.proc is not None:
            self.stop()
        return self.start()

    def flushall(self):
        return self.cli("FLUSHALL")

    def dbsize(self):
        return self.cli("DBSIZE")

    def role(self):
        """"master" or "slave" (INFO replication's role)."""
        return self.info("replication").get("role")

    def wait_replicas(self, n=1, timeout=10.0):
        """Until n replicas are connected and online (INFO replication of
        this master)."""
        def online():
            info = self.info("replication")
            ok = [k for k, v in info.items()
                  if re.fullmatch(r"slave\d+", k) and "state=online" in v]
            return len(ok) >= n
        return wait_until(online, timeout=timeout,
                          what="%d replica(s) online at %s" % (n, self.name))

    def wait_synced(self, timeout=10.0):
        """Until this replica's link to its master is up."""
        return wait_until(
            lambda: self.info("replication").get("master_link_status")
            == "up", timeout=timeout,
            what="%s synced with its master" % self.name)


class RedisSentinel(_RedisBase):
    """redis-sentinel on 127.0.0.1:port watching master `master_name` at
    `master` (a RedisServer or (host, port)) with `quorum`.

    down_after_ms: how long a silent master is only subjectively down;
    failover_timeout_ms: Sentinel's failover-timeout (also how long before
    the same master can be failed over again: twice that). The config file
    is Sentinel's to rewrite (it records what it learns there).
    """

    def __init__(self, workdir, master, master_name="mymaster", quorum=2,
                 name="sentinel", port=None, down_after_ms=1000,
                 failover_timeout_ms=5000, password=None, extra_conf=(),
                 binary=None):
        self.port = port or free_tcp_port()
        self.master_name = master_name
        if password is None and isinstance(master, RedisServer):
            password = master.password
        host, mport = master.addr if isinstance(master, RedisServer) \
            else master
        conf = ["port %d" % self.port, "bind 127.0.0.1",
                "daemonize no", 'logfile ""', "dir %s" % workdir,
                "pidfile %s" % os.path.join(workdir, name + ".pid"),
                "sentinel resolve-hostnames no",
                "sentinel announce-hostnames no",
                "sentinel announce-ip 127.0.0.1",
                "sentinel monitor %s %s %d %d" % (master_name, host, mport,
                                                  quorum),
                "sentinel down-after-milliseconds %s %d" % (master_name,
                                                            down_after_ms),
                "sentinel failover-timeout %s %d" % (master_name,
                                                     failover_timeout_ms),
                "sentinel parallel-syncs %s 1" % master_name]
        if password is not None:
            conf.append("sentinel auth-pass %s %s" % (master_name, password))
        conf += list(extra_conf)
        # The sentinel itself has no password: the master's is not ours
        # to send to it.
        self.password = None
        super().__init__(binary or find_binary(REDIS_SENTINEL)
                         or REDIS_SENTINEL, workdir, name, conf)

    @property
    def address(self):
        """"127.0.0.1:port", an entry of proxyd's --redis-sentinel."""
        return "127.0.0.1:%d" % self.port

    def master_addr(self):
        """(host, port) of the current master as this sentinel knows it
        (SENTINEL GET-MASTER-ADDR-BY-NAME), or None."""
        r = self.cli("SENTINEL", "GET-MASTER-ADDR-BY-NAME", self.master_name)
        return None if r is None else (r[0], int(r[1]))

    def master_info(self):
        """SENTINEL MASTER <name> as a dict (flags, num-slaves,
        num-other-sentinels, ...)."""
        return _pairs(self.cli("SENTINEL", "MASTER", self.master_name))

    def wait_sees(self, replicas=0, sentinels=0, timeout=15.0):
        """Until this sentinel knows at least `replicas` replicas of the
        master and `sentinels` other sentinels. Sentinel asks the master
        for its replicas every 10 s (at start at once: start the replicas
        first) and hears the others' hellos every 2 s."""
        def sees():
            m = self.master_info()
            return (int(m["num-slaves"]) >= replicas and
                    int(m["num-other-sentinels"]) >= sentinels)
        return wait_until(sees, timeout=timeout, interval=0.1,
                          what="%s seeing %d replica(s), %d other "
                          "sentinel(s)" % (self.name, replicas, sentinels))

    def wait_master(self, pred, timeout=15.0):
        """Until pred(master_addr()) holds; returns the address."""
        def check():
            a = self.master_addr()
            return a if pred(a) else None
        return wait_until(check, timeout=timeout, interval=0.1,
                          what="%s's master address to change" % self.name)


# ---- HAProxy ---------------------------------------------------------------


class HaproxyConfigError(ValueError):
    """The shipped haproxy.cfg lacks a line the harness rewrites."""


def render_haproxy_cfg(text, https_port, crt, stats_port, stats_socket,
                       servers, health_path=None, maxconn=1000):
    """The shipped config (text) made runnable in a test: returns
    (config text, [(old line, new line or None)] of what changed).

    Rewrites, each of which must find its line(s) or HaproxyConfigError
    is raised: syslog -> stderr (haproxy -db logs to its log file);
    chroot, user, group, daemon dropped (runs as the test's user, in the
    foreground); the stats socket path; global maxconn (so that no open
    files limit has to be raised); the IPv4 :443 bind -> 127.0.0.1:port
    with the test certificate (the IPv6 one dropped); the stats port; the
    backend's server lines -> `servers`, [(name, "127.0.0.1:port")], with
    the first shipped server line's options; the check's path when
    health_path is given (the shipped /health otherwise).
    """
    changes = []
    out = []
    seen = set()
    servers_done = False
    server_re = re.compile(r"^(\s*)server\s+\S+\s+\S+(.*)$")
    rules = [
        ("log", re.compile(r"^(\s*)log\s+/dev/log\s+(\S+)\s*$"),
         lambda m: "%slog stderr format raw %s" % (m.group(1), m.group(2))),
        ("chroot", re.compile(r"^\s*chroot\s"), None),
        ("user", re.compile(r"^\s*user\s"), None),
        ("group", re.compile(r"^\s*group\s"), None),
        ("daemon", re.compile(r"^\s*daemon\s*$"), None),
        ("stats socket", re.compile(r"^(\s*)stats socket\s+\S+(.*)$"),
         lambda m: "%sstats socket %s%s" % (m.group(1), stats_socket,
                                            m.group(2))),
        ("maxconn", re.compile(r"^(\s*)maxconn\s+\d+\s*$"),
         lambda m: "%smaxconn %d" % (m.group(1), maxconn)),
        ("bind :443", re.compile(r"^(\s*)bind\s+:443\s+(.*)\bcrt\s+\S+(.*)$"),
         lambda m: "%sbind 127.0.0.1:%d %scrt %s%s" % (
             m.group(1), https_port, m.group(2), crt, m.group(3))),
        ("bind :::443", re.compile(r"^\s*bind\s+:::443\s"), None),
        ("bind stats", re.compile(r"^(\s*)bind\s+127\.0\.0\.1:8404(.*)$"),
         lambda m: "%sbind 127.0.0.1:%d%s" % (m.group(1), stats_port,
                                              m.group(2))),
    ]
    if health_path is not None:
        rules.append(("httpchk", re.compile(
            r"^(\s*)option httpchk GET /\S*\s*$"),
            lambda m: "%soption httpchk GET %s" % (m.group(1),
                                                   health_path)))
    for line in text.splitlines():
        stripped = line.lstrip()
        if stripped.startswith("#"):
            out.append(line)
            continue
        m = server_re.match(line)
        if m:
            seen.add("server")
            if not servers_done:
                servers_done = True
                new = ["%sserver %s %s%s" % (m.group(1), name, addr,
                                             m.group(2))
                       for name, addr in servers]
                out += new
                changes.append((line, "\n".join(new)))
            else:
                changes.append((line, None))
            continue
        for what, rx, repl in rules:
            m = rx.match(line)
            if m:
                seen.add(what)
                new = None if repl is None else repl(m)
                changes.append((line, new))
                if new is not None:
                    out.append(new)
                break
        else:
            out.append(line)
    missing = [w for w, _, _ in rules if w not in seen]
    if "server" not in seen:
        missing.append("server")
    if missing:
        raise HaproxyConfigError(
            "deploy/haproxy/haproxy.cfg: no line for %s; "
            "tests/e2e/redis_harness.py (render_haproxy_cfg) rewrites "
            "them" % ", ".join(missing))
    return "\n".join(out) + "\n", changes


class HAProxy(Daemon):
    """haproxy -db on the shipped deploy/haproxy/haproxy.cfg (or
    `template`), in workdir: HTTPS on 127.0.0.1:https_port with the test
    PKI's server certificate (SAN 127.0.0.1), round robin over `servers`
    (["127.0.0.1:port"] or [(name, "host:port")]; names default to
    proxyd1, proxyd2, ...), stats page on stats_port and the admin socket
    workdir/admin.sock. health_path replaces the path of the shipped
    check (GET /health; None keeps it). The config is checked with
    `haproxy -c` first.

    Readiness: the stats socket answers. wait_servers() waits for server
    states (each server's first check passed: "UP", or "DOWN").
    """

    name = "haproxy"

    def __init__(self, workdir, servers, pki, health_path=None,
                 template=None, binary=None, maxconn=1000):
        self.workdir = workdir
        os.makedirs(workdir, exist_ok=True)
        self.pki = pki
        self.port = free_tcp_port()
        self.stats_port = free_tcp_port()
        self.stats_socket = os.path.join(workdir, "admin.sock")
        self.crt = os.path.join(workdir, "server-with-key.pem")
        with open(self.crt, "wb") as out:
            for p in (pki.server_cert, pki.server_key):
                with open(p, "rb") as f:
                    out.write(f.read())
        os.chmod(self.crt, 0o600)
        self.servers = [s if isinstance(s, tuple) else
                        ("proxyd%d" % (i + 1), s)
                        for i, s in enumerate(servers)]
        self.template = template or HAPROXY_CFG
        with open(self.template) as f:
            text = f.read()
        self.config, self.changes = render_haproxy_cfg(
            text, self.port, self.crt, self.stats_port, self.stats_socket,
            self.servers, health_path=health_path, maxconn=maxconn)
        self.cfg_path = os.path.join(workdir, "haproxy.cfg")
        with open(self.cfg_path, "w") as f:
            f.write(self.config)
        self.binary = binary or find_binary(HAPROXY) or HAPROXY
        super().__init__([self.binary, "-db", "-f", self.cfg_path],
                         os.path.join(workdir, "haproxy.log"))
        self._conns = {}

    @property
    def url(self):
        return "https://127.0.0.1:%d" % self.port

    def check_config(self):
        """`haproxy -c -f` on the generated file: (exit code, output)."""
        import subprocess
        r = subprocess.run([self.binary, "-c", "-f", self.cfg_path],
                           capture_output=True, timeout=30)
        return r.returncode, (r.stdout + r.stderr).decode(
            "utf-8", "backslashreplace")

    def start(self):
        rc, out = self.check_config()
        if rc != 0:
            raise DaemonError("haproxy -c -f %s failed (%d):\n%s"
                              % (self.cfg_path, rc, out))
        return super().start()

    def ready(self):
        return "Name: HAProxy" in self.admin("show info", timeout=1.0)

    def stop(self):
        """SIGUSR1, HAProxy's soft stop (SIGTERM kills it at once, by the
        signal): listeners closed, idle connections dropped, exit 0 once
        the requests in progress are answered."""
        import signal
        import subprocess
        for c in self._conns.values():
            c.close()
        self._conns.clear()
        if self.proc is None:
            return None
        proc, self.proc = self.proc, None
        if proc.poll() is None:
            proc.send_signal(signal.SIGUSR1)
        try:
            rc = proc.wait(timeout=10.0)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise DaemonError("haproxy did not exit within 10s of SIGUSR1; "
                              "log:\n%s" % tail(self.log_path))
        self.exit_codes.append(rc)
        if rc != 0:
            raise DaemonError("haproxy exited with %d (expected 0 after "
                              "SIGUSR1); log:\n%s" % (rc,
                                                      tail(self.log_path)))
        return rc

    # -- the admin socket --

    def admin(self, command, timeout=5.0):
        """One command on the stats socket (level admin); its output."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(timeout)
            s.connect(self.stats_socket)
            s.sendall(command.encode() + b"\n")
            chunks = []
            while True:
                data = s.recv(65536)
                if not data:
                    break
                chunks.append(data)
        return b"".join(chunks).decode("utf-8", "backslashreplace")

    def stats(self):
        """`show stat` as a list of dicts (pxname, svname, status,
        check_status, stot, ...)."""
        text = self.admin("show stat")
        text = text.lstrip("# ")
        return list(csv.DictReader(io.StringIO(text)))

    def server_states(self, backend="proxyd"):
        """{server name: status} of the backend: "UP", "DOWN",
        "UP 1/2" (going down), "DOWN 1/1" (going up), "MAINT", ..."""
        return {r["svname"]: r["status"] for r in self.stats()
                if r["pxname"] == backend
                and r["svname"] not in ("FRONTEND", "BACKEND")}

    def server_sessions(self, backend="proxyd"):
        """{server name: requests/sessions it got in all (stot)}."""
        return {r["svname"]: int(r["stot"] or 0) for r in self.stats()
                if r["pxname"] == backend
                and r["svname"] not in ("FRONTEND", "BACKEND")}

    def wait_servers(self, timeout=10.0, backend="proxyd", **want):
        """Until each named server has the wanted status, e.g.
        wait_servers(proxyd1="UP", proxyd2="DOWN"); without names, until
        every server is "UP" after at least one passed check."""
        def check():
            rows = {r["svname"]: r for r in self.stats()
                    if r["pxname"] == backend}
            if want:
                return all(rows[n]["status"] == s for n, s in want.items())
            return all(rows[n]["status"] == "UP" and
                       rows[n]["check_status"].startswith("L7OK")
                       for n, _ in self.servers)
        return wait_until(check, timeout=timeout, interval=0.05,
                          what="haproxy servers %s" % (
                              want or "all UP"))

    # -- HTTPS through the frontend --

    def ssl_context(self):
        ctx = ssl.create_default_context(cafile=self.pki.ca_cert)
        ctx.set_alpn_protocols(["http/1.1"])
        return ctx

    def connection(self, source=None, timeout=10.0):
        """A new HTTPS connection to the frontend (from the loopback
        address `source`, e.g. "127.0.0.5", when given)."""
        return http.client.HTTPSConnection(
            "127.0.0.1", self.port, timeout=timeout,
            context=self.ssl_context(),
            source_address=(source, 0) if source else None)

    def request(self, method, path, body=None, headers=None, source=None,
                keep_alive=True):
        """(status, body bytes) of one HTTP/1.1 request over TLS; on one
        kept-alive connection per source address unless
        keep_alive=False."""
        if isinstance(body, str):
            body = body.encode()
        conn = self._conns.get(source) if keep_alive else None
        if conn is None:
            conn = self.connection(source)
            if keep_alive:
                self._conns[source] = conn
        try:
            conn.request(method, path, body=body, headers=dict(
                headers or {}))
            r = conn.getresponse()
            return r.status, r.read()
        except (http.client.HTTPException, OSError):
            conn.close()
            self._conns.pop(source, None)
            raise
        finally:
            if not keep_alive:
                conn.close()

    def notify(self, token, **kw):
        """POST /notify with the token as the whole body."""
        return self.request("POST", "/notify", token, **kw)


def wait_port_closed(port, timeout=5.0):
    """Until nothing accepts on 127.0.0.1:port."""
    def closed():
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        except OSError:
            return True
        return False
    return wait_until(closed, timeout=timeout,
                      what="127.0.0.1:%d closed" % port)
