"""Helpers for the end-to-end tests: a real Dovecot 2.3 and our daemons in one
throw-away directory.

Everything here is plain stdlib. conftest.py turns these classes into pytest
fixtures; test files import the helpers they call directly (wait_until,
DictClient, tab-escaping, ...) from this module.

Rules kept throughout (see docs/dovecot-test-harness.md and the
"Testing" part of the style guide):
  * only loopback TCP and Unix sockets;
  * wait for conditions, never for time (wait_until);
  * a daemon is started, polled for readiness with a deadline (failing at once
    if the child died), stopped with SIGTERM, and must exit 0;
  * Dovecot is stopped through the pid in its master.pid, never by name.
"""

import collections
import os
import pwd
import grp
import re
import shutil
import signal
import smtplib
import socket
import sqlite3
import subprocess
import tempfile
import time
import uuid

E2E_DIR = os.path.dirname(os.path.abspath(__file__))
REPO_DIR = os.path.dirname(os.path.dirname(E2E_DIR))
PUSHSTACK_BIN = os.environ.get("PUSHSTACK_BIN",
                               os.path.join(REPO_DIR, "build", "bin"))
DOVECOT_CONF_DIR = os.path.join(REPO_DIR, "dovecot-conf")

# Paths inside the project's drop-in that the tests rewrite.
DROPIN_DICT_SOCKET = "/run/metadata-dictd/dict.sock"
DROPIN_PUSH_LUA = "/etc/dovecot/push.lua"

USERS = {
    "alice@example.org": "alicepass",
    "bob@example.org": "bobpass",
}

READY_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 10.0


class WaitTimeout(AssertionError):
    pass


# Device tokens the tests sent (Imap.set_devicetoken registers them). The
# dictd fixture checks in teardown that none shows up in a daemon log.
SECRETS = set()


def register_secret(token):
    if isinstance(token, bytes):
        token = token.decode("utf-8", "replace")
    if len(token) >= 16:
        SECRETS.add(token)


def secret_fragments(token):
    """The token and three 12-character pieces of its random part: a log
    line that carries even a truncated token contains one of them."""
    body = token.split(":", 1)[1] if token.startswith(("openpgp:",
                                                       "sandbox:")) else token
    mid = len(body) // 2
    return {token, body[:12], body[mid:mid + 12], body[-12:]}


def leaked_secrets(text, secrets=None):
    """The secrets (tokens) of which some fragment appears in text."""
    return sorted(t[:20] + "..." for t in (SECRETS if secrets is None
                                           else secrets)
                  if any(f in text for f in secret_fragments(t)))


def wait_until(pred, timeout=10.0, interval=0.02, what=None):
    """Poll pred() until it returns a truthy value; return that value.

    Raises WaitTimeout (an AssertionError, so pytest shows it as a failure)
    after `timeout` seconds. An exception raised by pred propagates at once.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = pred()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise WaitTimeout("timed out after %.1fs waiting for %s"
                              % (timeout, what or getattr(pred, "__name__",
                                                          "condition")))
        time.sleep(interval)  # poll interval, not synchronisation


_recent_ports = collections.deque(maxlen=2048)


def free_tcp_port():
    """An OS-chosen free port on 127.0.0.1 (closed again; small race).
    Never one of the last ports it gave out: the kernel may offer a port
    it just offered again while the first taker has not bound it yet (a
    daemon's --port and --metrics got the same one)."""
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in _recent_ports:
            _recent_ports.append(port)
            return port
    raise OSError("no fresh free TCP port in 100 tries")


def make_world_tmpdir(prefix="e2e-"):
    """A fresh temp dir that uid nobody can traverse (mode 0755).

    mkdtemp under the system temp dir keeps paths short: Unix socket paths
    must fit in 108 bytes, and Dovecot puts sockets two levels below base_dir.
    """
    path = tempfile.mkdtemp(prefix=prefix)
    os.chmod(path, 0o755)
    return path


def tail(path, lines=60):
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        return "<cannot read %s: %s>" % (path, e)
    text = data.decode("utf-8", "backslashreplace")
    return "\n".join(text.splitlines()[-lines:])


def pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# ---------------------------------------------------------------------------
# Dict protocol (docs/dovecot-dict-protocol.md, section 1)

_ESC = {0x01: b"\x011", 0x09: b"\x01t", 0x0d: b"\x01r", 0x0a: b"\x01n"}
_UNESC = {ord("1"): 0x01, ord("t"): 0x09, ord("r"): 0x0d, ord("n"): 0x0a,
          ord("0"): 0x00}


def tab_escape(raw: bytes) -> bytes:
    out = bytearray()
    for b in raw:
        e = _ESC.get(b)
        if e is None:
            out.append(b)
        else:
            out += e
    return bytes(out)


def tab_unescape(data: bytes) -> bytes:
    out = bytearray()
    i = 0
    while i < len(data):
        b = data[i]
        if b == 0x01 and i + 1 < len(data):
            n = data[i + 1]
            out.append(_UNESC.get(n, n))
            i += 2
        else:
            out.append(b)
            i += 1
    return bytes(out)


HANDSHAKE = b"H3\t2\t0\t\tmetadata\n"


def dict_reply_fields(line: bytes):
    """Split a reply line into (code, first field unescaped, other fields).

    Timing fields that the server may append after a TAB are returned raw in
    the third element and otherwise ignored, as Dovecot's client does.
    """
    code = line[:1]
    fields = line[1:].split(b"\t")
    return code, tab_unescape(fields[0]), fields[1:]


class DictClient:
    """A raw client of the dict socket, speaking like Dovecot 2.3.19."""

    def __init__(self, path, handshake=True, timeout=5.0):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(path)
        self.buf = b""
        if handshake:
            self.send(HANDSHAKE)

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def send(self, data: bytes):
        self.sock.sendall(data)

    def readline(self):
        """One reply line without its LF; None on EOF/reset."""
        while b"\n" not in self.buf:
            try:
                chunk = self.sock.recv(65536)
            except ConnectionResetError:
                chunk = b""
            if not chunk:
                return None
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return line

    def wait_closed(self):
        """True if the server closed the connection without sending a
        single byte more (EOF or reset before the socket timeout).
        A reply line or a timeout counts as "not closed" (False)."""
        if self.buf:
            return False
        try:
            chunk = self.sock.recv(65536)
        except ConnectionResetError:
            return True
        except socket.timeout:
            return False
        return chunk == b""

    # Commands. Fields are raw bytes/str; they are tab-escaped here.
    @staticmethod
    def _f(x):
        if isinstance(x, str):
            x = x.encode()
        return tab_escape(x)

    def lookup(self, key, user):
        self.send(b"L" + self._f(key) + b"\t" + self._f(user) + b"\n")
        line = self.readline()
        assert line is not None, "connection closed instead of L reply"
        return line

    def lookup_value(self, key, user):
        """Value (bytes) if found, None if N; asserts on anything else."""
        line = self.lookup(key, user)
        code, first, _ = dict_reply_fields(line)
        if code == b"N":
            return None
        assert code == b"O", "unexpected L reply %r" % line
        return first

    def transaction(self, tid, user, sets=(), unsets=()):
        """B, S..., U..., C in one write; returns the commit reply line."""
        out = b"B%d\t" % tid + self._f(user) + b"\n"
        for k, v in sets:
            out += b"S%d\t" % tid + self._f(k) + b"\t" + self._f(v) + b"\n"
        for k in unsets:
            out += b"U%d\t" % tid + self._f(k) + b"\n"
        out += b"C%d\n" % tid
        self.send(out)
        line = self.readline()
        assert line is not None, "connection closed instead of C reply"
        return line

    def iterate(self, path, user, flags=9):
        self.send(b"I%d\t0\t" % flags + self._f(path) + b"\t" +
                  self._f(user) + b"\n")
        rows = []
        while True:
            line = self.readline()
            assert line is not None, "connection closed during iteration"
            if line == b"" or line[:1] == b"\t":
                return rows
            assert line[:1] == b"O", "unexpected iterate row %r" % line
            rows.append(line)


# ---------------------------------------------------------------------------
# Daemons


class DaemonError(AssertionError):
    pass


class Daemon:
    """A child process of ours, logging stderr (and stdout) to a file.

    Readiness is checked by ready(), which subclasses override. stop() sends
    SIGTERM and raises DaemonError unless the child exits 0.
    """

    name = "daemon"

    def __init__(self, argv, log_path, env=None):
        self.argv = list(argv)
        self.log_path = log_path
        self.env = env
        # Run in the child before exec (a umask, a resource limit); set
        # it before start().
        self.preexec_fn = None
        self.proc = None
        self.exit_codes = []

    def ready(self):
        return True

    def start(self):
        if not os.access(self.argv[0], os.X_OK):
            raise DaemonError("%s: binary %s missing or not executable "
                              "(build it first)" % (self.name, self.argv[0]))
        logf = open(self.log_path, "ab")
        logf.write(("=== start %s\n" % " ".join(self.argv)).encode())
        logf.flush()
        try:
            self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL,
                                         stdout=logf, stderr=logf,
                                         env=self.env,
                                         preexec_fn=self.preexec_fn)
        finally:
            logf.close()
        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:
            rc = self.proc.poll()
            if rc is not None:
                self.proc = None
                raise DaemonError("%s exited with %d during start-up; log:\n%s"
                                  % (self.name, rc, tail(self.log_path)))
            try:
                if self.ready():
                    return self
            except OSError:
                pass
            if time.monotonic() >= deadline:
                self.kill()
                raise DaemonError("%s not ready after %.0fs; log:\n%s"
                                  % (self.name, READY_TIMEOUT_S,
                                     tail(self.log_path)))
            time.sleep(0.02)  # readiness poll interval

    @property
    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self):
        """SIGTERM, wait, and require exit code 0."""
        if self.proc is None:
            return None
        proc, self.proc = self.proc, None
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            rc = proc.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise DaemonError("%s did not exit within %.0fs of SIGTERM; "
                              "log:\n%s" % (self.name, STOP_TIMEOUT_S,
                                            tail(self.log_path)))
        self.exit_codes.append(rc)
        if rc != 0:
            raise DaemonError("%s exited with %d (expected 0 after SIGTERM); "
                              "log:\n%s" % (self.name, rc,
                                            tail(self.log_path)))
        return rc

    def kill(self):
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.kill()
            self.proc.wait()
            self.proc = None

    def restart(self):
        self.stop()
        return self.start()

    def log_text(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "backslashreplace")


class Dictd(Daemon):
    """metadata-dictd in `workdir`: socket mode 0666, db, notify socket.

    The notify socket is a Unix datagram socket bound by this helper (it
    plays notifierd); read it with notify_drain(). With bind_notify=False
    the helper leaves the path alone, so that a real notifierd can bind it
    (Notifierd(..., wake_socket=dictd.notify_path)); notify_drain() then
    returns [].
    """

    name = "metadata-dictd"

    def __init__(self, workdir, socket_path=None, extra_args=(),
                 log_level="debug", binary=None, bind_notify=True):
        self.workdir = workdir
        self.socket_path = socket_path or os.path.join(workdir, "dict.sock")
        self.db_path = os.path.join(workdir, "relay.db")
        self.notify_path = os.path.join(workdir, "notify.sock")
        self.notify_sock = None
        if bind_notify:
            self.notify_sock = socket.socket(socket.AF_UNIX,
                                             socket.SOCK_DGRAM)
            if os.path.exists(self.notify_path):
                os.unlink(self.notify_path)
            self.notify_sock.bind(self.notify_path)
            os.chmod(self.notify_path, 0o666)
            self.notify_sock.setblocking(False)
        self.notify_received = []
        self.extra_args = list(extra_args)
        binary = binary or os.path.join(PUSHSTACK_BIN, "metadata-dictd")
        argv = [binary, "--socket", self.socket_path, "--db", self.db_path,
                "--socket-mode", "0666", "--notify-socket", self.notify_path,
                "--log-level", log_level]
        self.n_base_args = len(argv)
        argv += self.extra_args
        super().__init__(argv, os.path.join(workdir, "dictd.log"))

    def restart(self, extra_args=None):
        """Stop (exit 0 required) and start again, with other extra
        arguments if given."""
        self.stop()
        if extra_args is not None:
            self.extra_args = list(extra_args)
            self.argv = self.argv[:self.n_base_args] + self.extra_args
        return self.start()

    def ready(self):
        if not os.path.exists(self.socket_path):
            return False
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(1.0)
            s.connect(self.socket_path)
        return True

    def close(self):
        if self.notify_sock is not None:
            self.notify_sock.close()

    def client(self, **kw):
        return DictClient(self.socket_path, **kw)

    def db_query(self, sql, params=()):
        """Rows of a query on the daemon's database, opened read-only."""
        con = sqlite3.connect("file:%s?mode=ro" % self.db_path, uri=True,
                              timeout=5.0)
        try:
            return con.execute(sql, params).fetchall()
        finally:
            con.close()

    def notify_drain(self):
        """Read every datagram waiting on the notify socket; return the
        total list received so far."""
        if self.notify_sock is None or self.notify_sock.fileno() < 0:
            return self.notify_received
        while True:
            try:
                self.notify_received.append(self.notify_sock.recv(65536))
            except BlockingIOError:
                return self.notify_received


class Dovecot:
    """A throw-away Dovecot 2.3 as in docs/dovecot-test-harness.md,
    configured with the project's drop-in (dovecot-conf/95-chatmail-push.conf
    and push.lua), talking to the dict server at `dict_socket`."""

    def __init__(self, tmp, dict_socket, imap_capability=None):
        self.tmp = tmp
        self.dict_socket = dict_socket
        # None: the drop-in's imap_capability line as it is; a string: that
        # line's value instead (e.g. "+XCHATMAIL", a server that does not
        # advertise XDELTAPUSH)
        self.imap_capability = imap_capability
        self.conf = os.path.join(tmp, "dovecot.conf")
        self.run_dir = os.path.join(tmp, "run")
        self.log_path = os.path.join(tmp, "log", "dovecot.log")
        self.pidfile = os.path.join(self.run_dir, "master.pid")
        self.lmtp_path = os.path.join(self.run_dir, "lmtp")
        self.push_lua = os.path.join(tmp, "push.lua")
        self.imap_port = None
        self.master_pid = None

    def base_config(self):
        t = self.tmp
        return f"""\
base_dir = {t}/run
state_dir = {t}/state
log_path = {t}/log/dovecot.log
info_log_path = {t}/log/dovecot.log
debug_log_path = {t}/log/dovecot.log

protocols = imap lmtp
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
default_internal_user = dovecot
default_login_user = dovenull

passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {t}/passwd
}}
userdb {{
  driver = static
  args = uid=nobody gid=nogroup home={t}/home/%u allow_all_users=yes
}}
mail_location = maildir:~/Maildir
namespace inbox {{
  inbox = yes
}}

service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {self.imap_port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service lmtp {{
  unix_listener lmtp {{
    mode = 0666
  }}
}}
"""

    def project_dropin(self):
        """95-chatmail-push.conf with its two absolute paths pointed into
        the temp dir. Fails loudly if the drop-in no longer has them."""
        path = os.path.join(DOVECOT_CONF_DIR, "95-chatmail-push.conf")
        with open(path) as f:
            text = f.read()
        for p in (DROPIN_DICT_SOCKET, DROPIN_PUSH_LUA):
            if p not in text:
                raise AssertionError("dovecot-conf/95-chatmail-push.conf no "
                                     "longer mentions %s; update harness.py"
                                     % p)
        text = text.replace(DROPIN_DICT_SOCKET, self.dict_socket)
        if self.imap_capability is not None:
            text, n = re.subn(r"(?m)^imap_capability = .*$",
                              "imap_capability = " + self.imap_capability,
                              text)
            if n != 1:
                raise AssertionError("dovecot-conf/95-chatmail-push.conf: "
                                     "no single imap_capability line")
        return text.replace(DROPIN_PUSH_LUA, self.push_lua)

    def write_files(self):
        t = self.tmp
        for d in ("run", "state", "log", "home"):
            os.makedirs(os.path.join(t, d), exist_ok=True)
        uid = pwd.getpwnam("nobody").pw_uid
        gid = grp.getgrnam("nogroup").gr_gid
        os.chown(os.path.join(t, "home"), uid, gid)
        for user in USERS:
            home = os.path.join(t, "home", user)
            os.makedirs(home, exist_ok=True)
            os.chown(home, uid, gid)
        with open(os.path.join(t, "passwd"), "w") as f:
            for user, pw in USERS.items():
                f.write("%s:{PLAIN}%s\n" % (user, pw))
        os.chmod(os.path.join(t, "passwd"), 0o644)
        shutil.copyfile(os.path.join(DOVECOT_CONF_DIR, "push.lua"),
                        self.push_lua)
        os.chmod(self.push_lua, 0o644)
        with open(self.conf, "w") as f:
            f.write(self.base_config())
            f.write("\n# ---- dovecot-conf/95-chatmail-push.conf ----\n")
            f.write(self.project_dropin())

    def ready(self):
        try:
            with open(self.pidfile) as f:
                pid = int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            return False
        if not pid_alive(pid):
            return False
        self.master_pid = pid
        if not os.path.exists(self.lmtp_path):
            return False
        try:
            with socket.create_connection(("127.0.0.1", self.imap_port),
                                          timeout=2) as s:
                greeting = s.makefile("rb").readline()
        except OSError:
            return False
        return greeting.startswith(b"* OK")

    def start(self):
        if os.geteuid() != 0:
            raise DaemonError("the Dovecot harness needs root: its master "
                              "switches to uid nobody for mail processes")
        for tool in ("doveconf", "dovecot"):
            if shutil.which(tool) is None:
                raise DaemonError("%s not found: install dovecot-core, "
                                  "dovecot-imapd and dovecot-lmtpd "
                                  "(make deps)" % tool)
        self.imap_port = free_tcp_port()
        self.write_files()
        r = subprocess.run(["doveconf", "-c", self.conf, "-n"],
                           capture_output=True, text=True)
        if r.returncode != 0:
            raise DaemonError("doveconf rejected the config:\n%s\n%s"
                              % (r.stdout, r.stderr))
        # The master daemonizes and keeps inherited fds open: give it a
        # file, not a pipe, or waiting for the pipe's EOF would hang.
        out_path = os.path.join(self.tmp, "log", "dovecot-start.out")
        with open(out_path, "wb") as out:
            r = subprocess.run(["dovecot", "-c", self.conf],
                               stdin=subprocess.DEVNULL, stdout=out,
                               stderr=out)
        if r.returncode != 0:
            raise DaemonError("dovecot failed to start (%d): %s\nlog:\n%s"
                              % (r.returncode, tail(out_path),
                                 tail(self.log_path)))
        try:
            wait_until(self.ready, READY_TIMEOUT_S, interval=0.05,
                       what="dovecot readiness")
        except WaitTimeout:
            self.stop(check=False)
            raise DaemonError("dovecot not ready; log:\n%s"
                              % tail(self.log_path))
        return self

    def stop(self, check=True):
        pid = self.master_pid
        if pid is None:
            try:
                with open(self.pidfile) as f:
                    pid = int(f.read().split()[0])
            except (OSError, ValueError, IndexError):
                return
        self.master_pid = None
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        try:
            wait_until(lambda: not pid_alive(pid), STOP_TIMEOUT_S,
                       what="dovecot master %d to exit" % pid)
        except WaitTimeout:
            os.kill(pid, signal.SIGKILL)
            if check:
                raise

    def log_text(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "backslashreplace")
        except FileNotFoundError:
            return ""

    def imap(self, user=None, password=None):
        """An IMAP connection, logged in when a user is given."""
        c = Imap(self.imap_port)
        if user is not None:
            c.login(user, password if password is not None else USERS[user])
        return c

    def lmtp_deliver(self, sender, rcpts, subject="hello", body="hi\r\n",
                     timing=None):
        """Deliver one message over LMTP; returns sendmail's refused dict
        (empty when every recipient got 250). With a dict as `timing`, it
        gets "start" (time.monotonic() before MAIL FROM, on an open
        connection) and "done" (after the last reply to the data)."""
        if isinstance(rcpts, str):
            rcpts = [rcpts]
        msg = ("From: <%s>\r\nTo: %s\r\nSubject: %s\r\n"
               "Message-ID: <%s@example.org>\r\n"
               "Date: Thu, 01 Jan 2026 00:00:00 +0000\r\n\r\n%s"
               % (sender, ", ".join("<%s>" % r for r in rcpts), subject,
                  uuid.uuid4().hex, body))
        lmtp = smtplib.LMTP(self.lmtp_path, timeout=30)
        try:
            if timing is not None:
                lmtp.ehlo_or_helo_if_needed()
                timing["start"] = time.monotonic()
            refused = lmtp.sendmail(sender, rcpts, msg.encode())
            if timing is not None:
                timing["done"] = time.monotonic()
            return refused
        finally:
            lmtp.quit()


# ---------------------------------------------------------------------------
# IMAP client


class ImapResult:
    def __init__(self, status, text, untagged):
        self.status = status          # "OK", "NO" or "BAD"
        self.text = text              # rest of the tagged line (str)
        self.untagged = untagged      # list of responses (list of parts)

    def __repr__(self):
        return "ImapResult(%s %r, %d untagged)" % (self.status, self.text,
                                                   len(self.untagged))

    def metadata(self):
        """{entry name (str): value (bytes or None)} from every untagged
        METADATA response, and the mailbox names seen."""
        entries = {}
        for parts in self.untagged:
            toks = imap_tokenize(parts)
            if (len(toks) < 3 or toks[0] != "*" or
                    not (isinstance(toks[1], str) and
                         toks[1].upper() == "METADATA")):
                continue
            lst = toks[3] if len(toks) > 3 else None
            if not isinstance(lst, list):
                continue
            assert len(lst) % 2 == 0, "odd METADATA list %r" % lst
            for i in range(0, len(lst), 2):
                name = lst[i]
                if isinstance(name, bytes):
                    name = name.decode()
                entries[name] = lst[i + 1]
        return entries


class _Lit(bytes):
    """A literal or quoted string (as opposed to an atom)."""


def imap_tokenize(parts):
    """Tokenize one untagged response given as [text, literal, text, ...].

    Atoms come back as str, NIL as None, quoted strings and literals as
    bytes, parenthesised lists as Python lists.
    """
    stack = [[]]
    pi = 0
    while pi < len(parts):
        text = parts[pi]
        i = 0
        n = len(text)
        while i < n:
            c = text[i:i + 1]
            if c in (b" ", b"\r", b"\n"):
                i += 1
            elif c == b"(":
                stack.append([])
                i += 1
            elif c == b")":
                lst = stack.pop()
                stack[-1].append(lst)
                i += 1
            elif c == b'"':
                i += 1
                out = bytearray()
                while text[i:i + 1] != b'"':
                    if text[i:i + 1] == b"\\":
                        i += 1
                    out += text[i:i + 1]
                    i += 1
                i += 1
                stack[-1].append(_Lit(out))
            elif c == b"{":
                # literal: the bytes are the next part
                j = text.index(b"}", i)
                size = int(text[i + 1:j].rstrip(b"+"))
                lit = parts[pi + 1]
                assert len(lit) == size
                stack[-1].append(_Lit(lit))
                i = n
                pi += 1
            else:
                j = i
                while j < n and text[j:j + 1] not in (b" ", b"(", b")",
                                                        b"\r", b"\n"):
                    if text[j:j + 1] == b"[":
                        # keep [..] response codes in one atom
                        k = text.find(b"]", j)
                        j = k if k >= 0 else j
                    j += 1
                atom = text[i:j].decode("utf-8", "replace")
                stack[-1].append(None if atom.upper() == "NIL" else atom)
                i = j
        pi += 1
    assert len(stack) == 1, "unbalanced parentheses in %r" % parts
    return stack[0]


def imap_quote(s):
    if isinstance(s, str):
        s = s.encode()
    return b'"' + s.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'


def imap_literal_plus(value: bytes) -> bytes:
    """A non-synchronizing literal (RFC 7888 LITERAL+), as chatmail core
    before 2.58 sent the device token: {N+}CRLF followed by N bytes."""
    return b"{%d+}\r\n" % len(value) + value


def imap_quotable(value: bytes) -> bool:
    """Whether `value` fits an IMAP quoted string (RFC 3501 TEXT-CHAR:
    7-bit, no NUL, CR or LF)."""
    return all(0 < b < 0x80 and b not in (0x0a, 0x0d) for b in value)


def imap_capability_code(line: bytes):
    """The capabilities of a `[CAPABILITY ...]` response code in a
    greeting or tagged line, as a set, or None when it has none."""
    m = re.search(rb"\[CAPABILITY ([^\]]*)\]", line, re.IGNORECASE)
    return set(m.group(1).decode().split()) if m else None


class Imap:
    """Minimal raw-socket IMAP client with literal parsing."""

    def __init__(self, port, timeout=15.0):
        self.sock = socket.create_connection(("127.0.0.1", port),
                                             timeout=timeout)
        self.f = self.sock.makefile("rb")
        self.tagn = 0
        self.login_caps = None
        self.greeting = self._read_response()
        assert self.greeting[0].startswith(b"* OK"), self.greeting

    def close(self):
        try:
            self.f.close()
        finally:
            self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        try:
            if exc[0] is None:
                self.command(b"LOGOUT")
        finally:
            self.close()

    def _read_response(self):
        """One response: [text, literal, text, ...] (CRLF stripped)."""
        parts = []
        while True:
            line = self.f.readline()
            if not line:
                raise ConnectionError("IMAP server closed the connection")
            assert line.endswith(b"\r\n"), "bad IMAP line %r" % line
            line = line[:-2]
            m = re.search(rb"\{(\d+)\}$", line)
            parts.append(line)
            if not m:
                return parts
            size = int(m.group(1))
            data = self.f.read(size)
            if len(data) != size:
                raise ConnectionError("short literal")
            parts.append(data)

    def command(self, cmd: bytes) -> ImapResult:
        """Send `<tag> cmd` and collect the untagged responses until the
        tagged one. cmd may hold LITERAL+ literals."""
        if isinstance(cmd, str):
            cmd = cmd.encode()
        self.tagn += 1
        tag = b"t%d" % self.tagn
        self.sock.sendall(tag + b" " + cmd + b"\r\n")
        untagged = []
        while True:
            parts = self._read_response()
            first = parts[0]
            if first.startswith(tag + b" "):
                rest = first[len(tag) + 1:].decode("utf-8", "replace")
                status, _, text = rest.partition(" ")
                return ImapResult(status, text, untagged)
            if first.startswith(b"+"):
                raise AssertionError("unexpected continuation request %r "
                                     "(literals are sent as LITERAL+)"
                                     % first)
            untagged.append(parts)

    def ok(self, cmd):
        r = self.command(cmd)
        assert r.status == "OK", "%r -> %s %s" % (cmd[:200], r.status, r.text)
        return r

    def capabilities(self):
        r = self.ok(b"CAPABILITY")
        for parts in r.untagged:
            if parts[0].upper().startswith(b"* CAPABILITY "):
                return set(parts[0].decode().split()[2:])
        raise AssertionError("no CAPABILITY response: %r" % r.untagged)

    def login(self, user, password):
        """LOGIN; the capabilities of its tagged OK (Dovecot sends them as
        a response code) are kept in self.login_caps (None: none sent)."""
        r = self.ok(b"LOGIN " + imap_quote(user) + b" " +
                    imap_quote(password))
        self.login_caps = imap_capability_code(r.text.encode())
        return r

    def greeting_capabilities(self):
        """The capabilities of the greeting's response code, or None."""
        return imap_capability_code(self.greeting[0])

    def set_devicetoken(self, token, mailbox=b'"INBOX"', form=None):
        """What chatmail core sends. form "quoted" (core 2.58 and later):
        SETMETADATA "INBOX" (/private/devicetoken "<token>"); form
        "literal" (before 2.58): the token as a LITERAL+ literal,
        (/private/devicetoken {N+}\\r\\n<token>). By default the quoted
        form, or the literal one for a value a quoted string cannot hold
        (the tests of what the dict server refuses send such values)."""
        if isinstance(token, str):
            token = token.encode()
        register_secret(token)
        if form is None:
            form = "quoted" if imap_quotable(token) else "literal"
        if form == "quoted":
            assert imap_quotable(token), "not quotable: %r" % token[:40]
            value = imap_quote(token)
        elif form == "literal":
            value = imap_literal_plus(token)
        else:
            raise ValueError("form: quoted or literal, not %r" % form)
        return self.command(b"SETMETADATA " + mailbox +
                            b" (/private/devicetoken " + value + b")")

    def setmetadata(self, mailbox, entries):
        """entries: [(name, value)], value bytes -> LITERAL+ literal,
        str -> quoted string, None -> NIL."""
        items = []
        for name, value in entries:
            if value is None:
                v = b"NIL"
            elif isinstance(value, bytes):
                v = imap_literal_plus(value)
            else:
                v = imap_quote(value)
            items.append(name.encode() + b" " + v)
        return self.command(b"SETMETADATA " + imap_quote(mailbox) + b" (" +
                            b" ".join(items) + b")")

    def create(self, mailbox):
        return self.ok(b"CREATE " + imap_quote(mailbox))

    def delete(self, mailbox):
        return self.ok(b"DELETE " + imap_quote(mailbox))

    def getmetadata(self, mailbox, *names, depth=None):
        """Returns (ImapResult, {entry: value bytes or None})."""
        opts = b"(DEPTH %s) " % str(depth).encode() if depth is not None \
            else b""
        if len(names) == 1:
            ent = names[0].encode()
        else:
            ent = b"(" + b" ".join(n.encode() for n in names) + b")"
        r = self.command(b"GETMETADATA " + opts + imap_quote(mailbox) +
                         b" " + ent)
        return r, r.metadata()

    def get_entry(self, mailbox, name):
        """The value (bytes) or None for NIL; asserts OK."""
        r, md = self.getmetadata(mailbox, name)
        assert r.status == "OK", "GETMETADATA %s %s -> %s %s" % (
            mailbox, name, r.status, r.text)
        assert name in md, "no %s in %r" % (name, r.untagged)
        return md[name]


# The server metadata chatmail core reads after LOGIN (one GETMETADATA on
# the empty mailbox name); an answer for maxsmtprecipients alone makes a
# server push-capable to core, as XDELTAPUSH does.
CORE_SERVER_METADATA = ("/shared/comment", "/shared/admin",
                        "/shared/vendor/deltachat/irohrelay",
                        "/shared/vendor/deltachat/turn",
                        "/shared/vendor/deltachat/maxsmtprecipients")


class CoreRegistration:
    """What register_like_core saw and did."""

    def __init__(self):
        self.greeting_caps = None   # set, or None when the greeting had none
        self.login_caps = None      # the same for LOGIN's tagged OK
        self.server_metadata = {}   # CORE_SERVER_METADATA answers
        self.push_by = None         # "XDELTAPUSH", "maxsmtprecipients", None
        self.result = None          # SETMETADATA's ImapResult, or None


def register_like_core(dovecot, user, token, password=None, form="quoted"):
    """Register `token` for `user` as chatmail core 2.58 does on every new
    IMAP session: it sends no CAPABILITY command but reads the
    capabilities of the greeting and of LOGIN's answer; after LOGIN it
    asks for the server metadata; the server takes tokens if it
    advertises XDELTAPUSH or answers maxsmtprecipients; then SETMETADATA
    "INBOX" (/private/devicetoken "<token>") as a quoted string (form
    "literal": the LITERAL+ form of core before 2.58). Returns a
    CoreRegistration; .result is None when the server is not
    push-capable by that rule (core then stores nothing)."""
    reg = CoreRegistration()
    with dovecot.imap() as c:
        reg.greeting_caps = c.greeting_capabilities()
        c.login(user, password if password is not None else USERS[user])
        reg.login_caps = c.login_caps
        caps = (reg.greeting_caps or set()) | (reg.login_caps or set())
        if "METADATA" in caps or "METADATA-SERVER" in caps:
            r, reg.server_metadata = c.getmetadata(
                "", *CORE_SERVER_METADATA)
            assert r.status == "OK", "GETMETADATA \"\" -> %s %s" % (
                r.status, r.text)
        if "XDELTAPUSH" in caps:
            reg.push_by = "XDELTAPUSH"
        elif reg.server_metadata.get(
                "/shared/vendor/deltachat/maxsmtprecipients") is not None:
            reg.push_by = "maxsmtprecipients"
        if reg.push_by is not None:
            reg.result = c.set_devicetoken(token, form=form)
    return reg


# ---------------------------------------------------------------------------
# notifierd and direct access to the relay database


# Version 1 of the relay schema, exactly as common/relay_db.c creates it.
# A database made here is at user_version 1, so a daemon whose schema has
# moved on migrates it like any old database: this stays valid as long as
# migration 0 -> 1 is never edited (relay_db.c forbids that).
RELAY_SCHEMA_V1 = """
CREATE TABLE tokens(
  id INTEGER PRIMARY KEY,
  user TEXT NOT NULL,
  token TEXT NOT NULL,
  token_hash INTEGER NOT NULL,
  mailbox TEXT NOT NULL,
  updated_at INTEGER NOT NULL);
CREATE UNIQUE INDEX tokens_by_user ON tokens(user, token_hash);
CREATE INDEX tokens_by_updated ON tokens(updated_at);
CREATE TABLE metadata(
  user TEXT NOT NULL,
  key TEXT NOT NULL,
  value BLOB NOT NULL,
  PRIMARY KEY (user, key)) WITHOUT ROWID;
CREATE TABLE queue(
  id INTEGER PRIMARY KEY,
  token_id INTEGER NOT NULL
    REFERENCES tokens(id) ON DELETE CASCADE,
  user TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  attempts INTEGER NOT NULL DEFAULT 0,
  next_at INTEGER NOT NULL,
  state INTEGER NOT NULL DEFAULT 0);
CREATE INDEX queue_by_due ON queue(state, next_at);
CREATE INDEX queue_by_token ON queue(token_id);
"""


def unix_ms():
    return int(time.time() * 1000)


class RelayDb:
    """The relay database (tokens, queue) driven directly with sqlite3,
    for notifierd tests that need no Dovecot. Creates the schema (version
    1) when the file has none. Every call opens its own connection, so no
    lock is held between calls while the daemons run.

    token_hash is random: notifierd never recomputes it, it only has to
    keep (user, token_hash) unique."""

    def __init__(self, path):
        self.path = path
        con = self._connect()
        try:
            if con.execute("PRAGMA user_version").fetchone()[0] == 0:
                con.execute("PRAGMA journal_mode=WAL")
                con.executescript("BEGIN IMMEDIATE;" + RELAY_SCHEMA_V1 +
                                  "PRAGMA user_version=1; COMMIT;")
        finally:
            con.close()

    def _connect(self):
        con = sqlite3.connect(self.path, timeout=10.0, isolation_level=None)
        con.execute("PRAGMA foreign_keys=ON")
        return con

    def _write(self, fn):
        con = self._connect()
        try:
            con.execute("BEGIN IMMEDIATE")
            try:
                result = fn(con)
            except BaseException:
                con.execute("ROLLBACK")
                raise
            con.execute("COMMIT")
            return result
        finally:
            con.close()

    def add_tokens(self, pairs, mailbox="", updated_at=None):
        """Insert (user, token) pairs; returns their ids in order."""
        now = unix_ms() if updated_at is None else updated_at

        def run(con):
            ids = []
            for user, token in pairs:
                cur = con.execute(
                    "INSERT INTO tokens(user, token, token_hash, mailbox, "
                    "updated_at) VALUES (?, ?, ?, ?, ?)",
                    (user, token, int.from_bytes(os.urandom(8), "big") >> 1,
                     mailbox, now))
                ids.append(cur.lastrowid)
            return ids
        return self._write(run)

    def add_token(self, user, token, **kw):
        return self.add_tokens([(user, token)], **kw)[0]

    def add_jobs(self, token_ids, created_at=None, next_at=None, attempts=0,
                 state=0):
        """One queue row per token id (the user is the token's); created_at
        and next_at default to now (unix ms). Returns the row ids."""
        now = unix_ms()
        created = now if created_at is None else created_at
        due = created if next_at is None else next_at

        def run(con):
            ids = []
            for tid in token_ids:
                cur = con.execute(
                    "INSERT INTO queue(token_id, user, created_at, attempts, "
                    "next_at, state) SELECT id, user, ?, ?, ?, ? FROM tokens "
                    "WHERE id = ?", (created, attempts, due, state, tid))
                assert cur.rowcount == 1, "no token with id %d" % tid
                ids.append(cur.lastrowid)
            return ids
        return self._write(run)

    def add_job(self, token_id, **kw):
        return self.add_jobs([token_id], **kw)[0]

    def query(self, sql, params=()):
        con = sqlite3.connect("file:%s?mode=ro" % self.path, uri=True,
                              timeout=10.0)
        try:
            return con.execute(sql, params).fetchall()
        finally:
            con.close()

    def count(self, table, where="1", params=()):
        return self.query("SELECT count(*) FROM %s WHERE %s" % (table, where),
                          params)[0][0]

    def jobs(self):
        """[(id, token, state, attempts, created_at, next_at)] by id."""
        return self.query(
            "SELECT q.id, t.token, q.state, q.attempts, q.created_at, "
            "q.next_at FROM queue q LEFT JOIN tokens t ON t.id = q.token_id "
            "ORDER BY q.id")

    def tokens(self):
        return sorted(r[0] for r in self.query("SELECT token FROM tokens"))


def http_get(url, timeout=5.0):
    """(status, headers, body text) of a GET on loopback, bypassing any
    proxy from the environment."""
    import urllib.request
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(url, timeout=timeout) as r:
        return r.status, r.headers, r.read().decode()


_LABEL_RE = re.compile(r'\s*([A-Za-z_][A-Za-z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"'
                       r'\s*,?')


def parse_openmetrics(text):
    """{series: value} for every sample line. A series is the metric name,
    with its labels sorted as name{k="v",...} when it has any, e.g.
    'notifierd_failures_total{reason="transport"}'."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        if "{" in line:
            name, rest = line.split("{", 1)
            labels_text, rest = rest.rsplit("}", 1)
            labels = sorted(_LABEL_RE.findall(labels_text))
            series = name + "{" + ",".join('%s="%s"' % kv
                                           for kv in labels) + "}"
        else:
            series, rest = line.split(None, 1)
        out[series] = float(rest.split()[0])
    return out


class Notifierd(Daemon):
    """notifierd on `db_path` (the same file as a Dictd's db_path when the
    two run together), POSTing to `proxy_url`, with test-sized timings.

    wake_socket: a path (default <workdir>/wake.sock), or None for none;
    pass dictd.notify_path (with Dictd(..., bind_notify=False)) to be woken
    by metadata-dictd. Metrics always listen on an OS-chosen loopback port:
    readiness is the metrics endpoint answering (the wake socket is bound
    before it). Keyword options map to the flags (retry_base="200ms" ->
    --retry-base 200ms); None leaves a flag out.
    """

    name = "notifierd"

    def __init__(self, workdir, db_path, proxy_url, wake_socket="",
                 retry_base="200ms", poll="200ms", deadline=None,
                 timeout="5s", grace=None, concurrency=None,
                 log_level="debug", extra_args=(), binary=None,
                 log_name="notifierd.log"):
        self.workdir = workdir
        self.db_path = db_path
        self.proxy_url = proxy_url
        self.wake_socket = (os.path.join(workdir, "wake.sock")
                            if wake_socket == "" else wake_socket)
        self.metrics_port = free_tcp_port()
        binary = binary or os.path.join(PUSHSTACK_BIN, "notifierd")
        argv = [binary, "--db", db_path, "--proxy-url", proxy_url,
                "--metrics", "127.0.0.1:%d" % self.metrics_port,
                "--log-level", log_level]
        if self.wake_socket:
            argv += ["--wake-socket", self.wake_socket]
        for flag, value in (("--retry-base", retry_base), ("--poll", poll),
                            ("--deadline", deadline), ("--timeout", timeout),
                            ("--grace", grace),
                            ("--concurrency", concurrency)):
            if value is not None:
                argv += [flag, str(value)]
        argv += list(extra_args)
        # Tokens this instance handles that are not in SECRETS (a bulk
        # test keeps its 10,000 out of the global set); checked in
        # teardown like SECRETS.
        self.secrets = set()
        super().__init__(argv, os.path.join(workdir, log_name))

    def ready(self):
        if self.wake_socket and not os.path.exists(self.wake_socket):
            return False
        status, _, _ = http_get(self.metrics_url, timeout=1.0)
        return status == 200

    @property
    def metrics_url(self):
        return "http://127.0.0.1:%d/metrics" % self.metrics_port

    def metrics_text(self):
        status, headers, text = http_get(self.metrics_url)
        assert status == 200, status
        return text

    def metrics(self):
        """The current samples, parsed (parse_openmetrics)."""
        return parse_openmetrics(self.metrics_text())

    def metric(self, name, default=0.0):
        """One series' value, `default` when it is absent."""
        return self.metrics().get(name, default)

    def wake(self, path=None):
        """Send one wake-up datagram, as metadata-dictd does."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
            s.sendto(b"w", path or self.wake_socket)

    def kill9(self):
        """SIGKILL: a crash. The process is reaped; start() runs it
        again."""
        proc, self.proc = self.proc, None
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        self.exit_codes.append(proc.returncode)
        return proc.returncode


# ---------------------------------------------------------------------------
# proxyd (the central push proxy) and its test data

# The repository's test data, tests/data ($TESTDATA overrides, as for the
# unit tests and the benchmarks): the OpenPGP keys and vectors.tsv
# (tests/data/openpgp/README.md says how they are made).
TESTDATA_DIR = os.environ.get("TESTDATA") or os.path.join(
    REPO_DIR, "tests", "data")
OPENPGP_DIR = os.path.join(TESTDATA_DIR, "openpgp")
OPENPGP_JS_DIR = os.path.join(E2E_DIR, "openpgp_js")


def openpgp_vectors():
    """The rows of tests/data/openpgp/vectors.tsv as dicts (name,
    keyring, input, expected), in file order."""
    rows = []
    with open(os.path.join(OPENPGP_DIR, "vectors.tsv"),
              encoding="ascii") as f:
        header = f.readline().rstrip("\n").split("\t")
        for line in f:
            if line.strip():
                rows.append(dict(zip(header, line.rstrip("\n").split("\t"))))
    return rows


def is_apns_token(plain):
    """docs/push-providers.md 5.1: hex, or sandbox:hex (the environment)."""
    body = plain[len("sandbox:"):] if plain.startswith("sandbox:") else plain
    return bool(re.fullmatch(r"(?:[0-9a-fA-F]{2})+", body))


def http_request(port, method, path, body=None, headers=None, chunked=False,
                 timeout=10.0, conn=None):
    """(status, body bytes) of one HTTP/1.1 request to 127.0.0.1:port; any
    status is returned, not raised. `conn`: an http.client connection to
    reuse (keep-alive)."""
    import http.client
    own = conn is None
    if own:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        hdrs = dict(headers or {})
        if isinstance(body, str):
            body = body.encode()
        if chunked:
            conn.request(method, path, body=iter([body]), headers=hdrs,
                         encode_chunked=True)
        else:
            conn.request(method, path, body=body, headers=hdrs)
        r = conn.getresponse()
        return r.status, r.read()
    finally:
        if own:
            conn.close()


class Proxyd(Daemon):
    """proxyd in `workdir`, talking to fake APNs servers (fake_apns.py).

    apns: the FakeApns for --apns-production-url (and --apns-sandbox-url
    unless `sandbox` names another one); pki: pki.Pki, whose CA goes to
    --ca-file. auth: "cert" (--certificate-file p12 or pki.client_p12,
    --password password or pki.p12_password; --password-file
    password_file instead when given), "token" (--apns-key-path
    pki.token_key, --apns-key-id, --apns-team-id, --topic pki.topic) or
    None (no credentials). The API and the metrics listen on free loopback
    ports, kept across restarts, as is the database (<workdir>/<name>.db).
    Readiness: GET / answers "Hello, world!" and /metrics answers. Keyword
    options map to flags (debounce="1s" -> --debounce 1s); None leaves a
    flag out.
    """

    name = "proxyd"

    def __init__(self, workdir, apns=None, pki=None, sandbox=None,
                 auth="cert", keyring=None, p12=None, password=None,
                 password_file=None, debounce="1s", interval=None,
                 timeout="5s", workers=None, cache_size=None,
                 log_level="debug", extra_args=(), binary=None,
                 name="proxyd", ubports_url=None):
        self.workdir = workdir
        self.port = free_tcp_port()
        self.metrics_port = free_tcp_port()
        self.db_path = os.path.join(workdir, name + ".db")
        self.keyring = keyring or os.path.join(OPENPGP_DIR, "keyring-v6.asc")
        binary = binary or os.path.join(PUSHSTACK_BIN, "proxyd")
        argv = [binary, "--openpgp-keyring-path", self.keyring,
                "--port", str(self.port), "--db", self.db_path,
                "--metrics", "127.0.0.1:%d" % self.metrics_port,
                "--log-level", log_level]
        if apns is not None:
            argv += ["--apns-production-url", apns.url,
                     "--apns-sandbox-url", (sandbox or apns).url]
        if pki is not None:
            argv += ["--ca-file", pki.ca_cert]
        if auth == "cert":
            argv += ["--certificate-file", p12 or pki.client_p12]
            if password_file is not None:
                argv += ["--password-file", password_file]
            else:
                argv += ["--password", pki.p12_password if password is None
                         else password]
        elif auth == "token":
            argv += ["--apns-key-path", pki.token_key, "--apns-key-id",
                     pki.key_id, "--apns-team-id", pki.team_id,
                     "--topic", pki.topic]
        elif auth is not None:
            raise ValueError("auth must be cert, token or None")
        # UBports needs no credentials, so it is always on: never let a
        # test reach push.ubports.com (nothing listens on port 1 here).
        argv += ["--ubports-url", ubports_url or "https://127.0.0.1:1/notify"]
        for flag, value in (("--debounce", debounce),
                            ("--interval", interval),
                            ("--timeout", timeout), ("--workers", workers),
                            ("--cache-size", cache_size)):
            if value is not None:
                argv += [flag, str(value)]
        argv += list(extra_args)
        # Tokens of this instance's tests beyond SECRETS; checked in
        # teardown like SECRETS.
        self.secrets = set()
        self._conn = None
        super().__init__(argv, os.path.join(workdir, name + ".log"))

    def ready(self):
        status, body = http_request(self.port, "GET", "/", timeout=1.0)
        if status != 200 or body != b"Hello, world!":
            return False
        status, _, _ = http_get(self.metrics_url, timeout=1.0)
        return status == 200

    def stop(self):
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        return super().stop()

    def request(self, method, path, body=None, keep_alive=True, **kw):
        """(status, body bytes); on one keep-alive connection unless
        keep_alive=False."""
        import http.client
        if not keep_alive:
            return http_request(self.port, method, path, body, **kw)
        if self._conn is None:
            self._conn = http.client.HTTPConnection("127.0.0.1", self.port,
                                                    timeout=10.0)
        try:
            return http_request(self.port, method, path, body,
                                conn=self._conn, **kw)
        except (http.client.HTTPException, OSError):
            self._conn.close()
            self._conn = None
            raise

    def notify(self, token, **kw):
        """POST /notify with the token as the whole body."""
        return self.request("POST", "/notify", token, **kw)

    def register(self, token=None, body=None, **kw):
        """POST /register {"token": token} (or a raw body)."""
        import json
        if body is None:
            body = json.dumps({"token": token})
        return self.request("POST", "/register", body, **kw)

    @property
    def metrics_url(self):
        return "http://127.0.0.1:%d/metrics" % self.metrics_port

    def metrics(self):
        status, _, text = http_get(self.metrics_url)
        assert status == 200, status
        return parse_openmetrics(text)

    def metric(self, name, default=0.0):
        return self.metrics().get(name, default)

    def failures(self):
        """{(provider, reason, details): count} of notification_failures."""
        out = {}
        for series, value in self.metrics().items():
            if series.startswith("notification_failures_total{"):
                labels = dict(kv.split("=", 1) for kv in
                              series[series.index("{") + 1:-1].split(","))
                key = tuple(labels[k].strip('"') for k in
                            ("provider", "reason", "details"))
                out[key] = value
        return out

    def db_rows(self):
        """[(token, next_at ms)] of the heartbeat schedule, read-only."""
        con = sqlite3.connect("file:%s?mode=ro" % self.db_path, uri=True,
                              timeout=5.0)
        try:
            return con.execute("SELECT token, next_at FROM heartbeat "
                               "ORDER BY token").fetchall()
        finally:
            con.close()

    def run_to_exit(self, timeout=10.0):
        """Run the same command line in the foreground, for a start that
        must fail: (exit code, output). Also appended to the log."""
        r = subprocess.run(self.argv, stdin=subprocess.DEVNULL,
                           capture_output=True, timeout=timeout)
        out = (r.stdout + r.stderr).decode("utf-8", "backslashreplace")
        with open(self.log_path, "a") as f:
            f.write("=== run %s\n%s" % (" ".join(self.argv), out))
        return r.returncode, out


def openpgp_js_encrypt(token, cert=None, timeout=30.0):
    """`openpgp:` + base64 of `token` encrypted by OpenPGP.js exactly as
    chatmail core does (openpgp_js/encrypt.mjs); needs node and
    openpgp_js/node_modules (the openpgp_js fixture installs it)."""
    argv = ["node", os.path.join(OPENPGP_JS_DIR, "encrypt.mjs"), token]
    if cert is not None:
        argv.append(cert)
    r = subprocess.run(argv, capture_output=True, timeout=timeout,
                       env=dict(os.environ, TESTDATA=TESTDATA_DIR))
    if r.returncode != 0:
        raise AssertionError("encrypt.mjs failed (%d): %s" % (
            r.returncode, r.stderr.decode(errors="replace")))
    return r.stdout.decode().strip()
