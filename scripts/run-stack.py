#!/usr/bin/python3
"""Run the push stack locally, in a temp dir, until Ctrl-C.

The whole chain: a real Dovecot (IMAP + LMTP, the project's dovecot-conf
drop-in and push.lua), metadata-dictd, notifierd, proxyd with the
repository's test keyring (tests/data/openpgp), and local fake providers
standing in for the real ones (no credentials needed):

  fake APNs     tests/e2e/fakes/fake_apns.py: HTTP/2 over TLS, checks the
                client certificate proxyd presents (--certificate-file)
  fake FCM      tests/e2e/fakes/fake_fcm.py: OAuth2 token endpoint that
                verifies the service-account assertion, and messages:send
                over HTTP/2 (--fcm-key-path, --fcm-api-url)
  fake Web Push tests/e2e/fakes/fake_webpush.py: checks the VAPID JWT and
                decrypts the RFC 8291 payload as the browser would
                (--vapid-key-path; --webpush-allow-private, since it
                listens on loopback)
  fake UBports  tests/e2e/fakes/fake_ubports.py (--ubports-url)

It registers one demo device per provider for alice@example.org the way
chatmail core 2.58 does (no CAPABILITY command: XDELTAPUSH is read from
the greeting and LOGIN's answer; then SETMETADATA with the `openpgp:`
token as a quoted string, encrypted by OpenPGP.js exactly as core
encrypts it; without Node.js the APNs token is a pre-encrypted test
vector and the others go in clear), delivers a mail over LMTP, and shows each push
arriving at its fake provider with the latency measured from MAIL FROM.
Then it keeps running, printing every further push, until Ctrl-C or
SIGTERM; it stops everything it started and checks that no process of
it is left.

Uses the end-to-end harness (tests/e2e/harness.py), so the demo and the
tests start everything the same way. RUN_STACK_KEEP=1 keeps the temp dir
(logs, databases) after the exit.
"""
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The harness, and the fakes in its fakes/ folder.
sys.path[:0] = [os.path.join(ROOT, "tests", "e2e"),
               os.path.join(ROOT, "tests", "e2e", "fakes")]

import harness  # noqa: E402
from fake_apns import FakeApns  # noqa: E402
from fake_fcm import FakeFcm  # noqa: E402
from fake_ubports import FakeUbports  # noqa: E402
from fake_webpush import FakeWebPush  # noqa: E402
from pki import make_pki  # noqa: E402

OPENPGP_JS_DIR = os.path.join(ROOT, "tests", "e2e", "openpgp_js")
FCM_PACKAGE = "chat.delta"
VAPID_SUBJECT = "mailto:postmaster@example.org"
USER = "alice@example.org"
SENDER = "bob@example.org"
STOP_DEADLINE_S = 10.0


class Stop(Exception):
    """SIGTERM or SIGHUP: stop like Ctrl-C."""


def on_signal(signum, frame):
    raise Stop(signal.Signals(signum).name)


def have_openpgp_js():
    """True when OpenPGP.js can run (installing it with npm ci once)."""
    if not (shutil.which("node") and shutil.which("npm")):
        return False
    if not os.path.isdir(os.path.join(OPENPGP_JS_DIR, "node_modules",
                                      "openpgp")):
        print("installing OpenPGP.js (npm ci in tests/e2e/openpgp_js)")
        r = subprocess.run(["npm", "ci", "--no-audit", "--no-fund"],
                           cwd=OPENPGP_JS_DIR, capture_output=True,
                           timeout=300)
        if r.returncode != 0:
            print("note: npm ci failed (%d): %s" % (
                r.returncode, r.stderr.decode(errors="replace")[-300:]))
            return False
    return True


def as_core_stores(plain, js):
    """What chatmail core stores for the plain token: openpgp: + the
    OpenPGP.js encryption to the test keyring's certificate."""
    if js:
        return harness.openpgp_js_encrypt(plain)
    return plain


def demo_devices(apns, fcm, wp, ub, js):
    """[(provider, fake, plain token, matcher, stored token)], one device
    per provider. matcher(request) says whether a request at the fake is
    the push for this device."""
    if js:
        apns_plain = secrets.token_hex(32)
        apns_stored = as_core_stores(apns_plain, js)
    else:
        row = next(r for r in harness.openpgp_vectors()
                   if r["name"] == "core_apns_k1")
        apns_plain, apns_stored = row["expected"], row["input"]
    reg = secrets.token_urlsafe(120).replace("-", "_")
    fcm_plain = "fcm-%s:%s" % (FCM_PACKAGE, reg)
    sub = wp.subscribe()
    ub_tok = ub.make_token()
    return [
        ("APNs", apns, apns_plain,
         lambda r: getattr(r, "token", None) == apns_plain, apns_stored),
        ("FCM", fcm, fcm_plain,
         lambda r: r.kind == "send" and r.info.get("token") == reg,
         as_core_stores(fcm_plain, js)),
        ("Web Push", wp, sub.token,
         lambda r: r.sub_id == sub.id, as_core_stores(sub.token, js)),
        ("UBports", ub, "ubports-" + ub_tok,
         lambda r: r.info.get("token") == ub_tok,
         as_core_stores("ubports-" + ub_tok, js)),
    ]


def pushes(fake, matcher):
    """Requests at the fake for one device, in arrival order."""
    return [r for r in list(fake.requests) if matcher(r)]


def mono_of(wall):
    """A wall-clock stamp (the fakes') on the monotonic clock."""
    return wall - time.time() + time.monotonic()


def processes():
    """(pid, ppid, session id) of every process, from /proc."""
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % name) as f:
                stat = f.read()
        except OSError:
            continue        # gone meanwhile
        # After "pid (comm) ": state, ppid, pgrp, session, ...
        fields = stat[stat.rindex(")") + 2:].split()
        yield int(name), int(fields[1]), int(fields[3])


def left_running(dovecot_sid):
    """Pids of ours still running: our children, and Dovecot's processes
    (its master calls setsid, so they share its session id)."""
    me = os.getpid()
    return sorted(pid for pid, ppid, sid in processes()
                  if ppid == me or (dovecot_sid is not None and
                                    sid == dovecot_sid))


class Stack:
    def __init__(self):
        self.tmp = harness.make_world_tmpdir("push-stack-")
        self.fakes = []
        self.daemons = []          # harness.Daemon, in start order
        self.dovecot = None
        self.dovecot_sid = None
        self.devices = []
        self.seen = {}

    def start(self):
        tmp = self.tmp
        pki = make_pki(os.path.join(tmp, "pki"))
        apns = FakeApns(pki, mode="cert")
        self.fakes.append(apns)
        apns.start()
        fcm = FakeFcm(pki)
        self.fakes.append(fcm)
        fcm.start()
        wp = FakeWebPush(pki)
        self.fakes.append(wp)
        wp.start()
        ub = FakeUbports(pki)
        self.fakes.append(ub)
        ub.start()
        self.apns, self.fcm, self.wp, self.ub = apns, fcm, wp, ub

        fcm_key = fcm.write_key_file(os.path.join(tmp, "fcm-service-account"
                                                  ".json"))
        vapid_key = os.path.join(tmp, "vapid.pem")
        subprocess.run(["openssl", "ecparam", "-name", "prime256v1",
                        "-genkey", "-noout", "-out", vapid_key], check=True,
                       capture_output=True)
        proxyd = harness.Proxyd(
            tmp, apns=apns, pki=pki, debounce="10s", interval="20m",
            log_level="info", ubports_url=ub.url,
            extra_args=["--fcm-key-path", fcm_key,
                        "--fcm-api-url", fcm.api_url,
                        "--vapid-key-path", vapid_key,
                        "--vapid-subject", VAPID_SUBJECT,
                        "--webpush-allow-private"])
        self.daemons.append(proxyd)
        proxyd.start()
        self.dictd_metrics = harness.free_tcp_port()
        dictd = harness.Dictd(tmp, log_level="info", bind_notify=False,
                              extra_args=["--metrics", "127.0.0.1:%d"
                                          % self.dictd_metrics])
        self.daemons.append(dictd)
        dictd.start()
        notifierd = harness.Notifierd(
            tmp, dictd.db_path, "http://127.0.0.1:%d/notify" % proxyd.port,
            wake_socket=dictd.notify_path, retry_base="8s", poll="1s",
            log_level="info")
        self.daemons.append(notifierd)
        notifierd.start()
        self.dovecot = harness.Dovecot(tmp, dictd.socket_path)
        self.dovecot.start()
        self.dovecot_sid = self.dovecot.master_pid
        self.proxyd, self.dictd, self.notifierd = proxyd, dictd, notifierd

    def print_where(self):
        d, p, n = self.dovecot, self.proxyd, self.notifierd
        rows = [
            ("IMAP", "127.0.0.1:%d  (%s)" % (d.imap_port, ", ".join(
                "%s / %s" % kv for kv in harness.USERS.items()))),
            ("LMTP", d.lmtp_path),
            ("metadata-dictd", "%s  (metrics http://127.0.0.1:%d/metrics)"
             % (self.dictd.socket_path, self.dictd_metrics)),
            ("relay database", self.dictd.db_path),
            ("notifierd", "wake-up %s  (metrics %s)"
             % (n.wake_socket, n.metrics_url)),
            ("proxyd", "http://127.0.0.1:%d/notify  (metrics %s)"
             % (p.port, p.metrics_url)),
            ("fake APNs", "%s  (client certificate required)"
             % self.apns.url),
            ("fake FCM", "%s  (token endpoint %s)"
             % (self.fcm.api_url, self.fcm.token_url)),
            ("fake Web Push", self.wp.origin),
            ("fake UBports", self.ub.url),
            ("logs", "%s/*.log, %s" % (self.tmp, d.log_path)),
        ]
        print("push stack running in %s" % self.tmp)
        for name, where in rows:
            print("  %-16s%s" % (name, where))

    def register(self):
        js = have_openpgp_js()
        if not js:
            print("note: no OpenPGP.js: the APNs token is a "
                  "pre-encrypted test vector, the others are stored in "
                  "clear (proxyd takes both)")
        self.devices = demo_devices(self.apns, self.fcm, self.wp, self.ub,
                                    js)
        # One IMAP session per device, as each phone has its own; each
        # does what chatmail core 2.58 does (harness.register_like_core):
        # no CAPABILITY command, XDELTAPUSH read from the greeting and
        # LOGIN's answer, the token as a quoted string.
        for provider, _, _, _, stored in self.devices:
            reg = harness.register_like_core(self.dovecot, USER, stored)
            kind = "openpgp:" if stored.startswith("openpgp:") else \
                "in clear"
            print("client %s (%s device): push-capable by %s; SETMETADATA "
                  "\"INBOX\" (/private/devicetoken \"<%d chars, %s>\") -> %s"
                  % (USER, provider, reg.push_by, len(stored), kind,
                     reg.result.status if reg.result else "not sent"))
            if reg.result is None or reg.result.status != "OK":
                raise RuntimeError("SETMETADATA failed: %s"
                                   % (reg.result.text if reg.result
                                      else "server not push-capable"))

    def deliver_and_measure(self):
        timing = {}
        self.dovecot.lmtp_deliver(SENDER, USER, subject="demo",
                                  timing=timing)
        lmtp_ms = (timing["done"] - timing["start"]) * 1000
        print("mail %s -> %s over LMTP: %.1f ms from MAIL FROM to the "
              "final 250" % (SENDER, USER, lmtp_ms))
        deadline = time.monotonic() + 15
        for provider, fake, plain, match, _ in self.devices:
            got = harness.wait_until(
                lambda: pushes(fake, match),
                timeout=max(0.1, deadline - time.monotonic()),
                what="the push at the fake %s" % provider)
            first = got[0]
            ms = (mono_of(first.t) - timing["start"]) * 1000
            print("  push at fake %-9s %6.1f ms after MAIL FROM  (%s)"
                  % (provider, ms, self.describe(provider, first, plain)))
            self.seen[provider] = len(got)

    @staticmethod
    def describe(provider, req, plain):
        if provider == "APNs":
            return "device token matches: %s, apns-push-type %s" % (
                req.token == plain, req.push_type)
        if provider == "FCM":
            return ("registration token matches, HTTP/%s, priority %s; "
                    "proxyd fetched its OAuth2 access token at start" % (
                        req.http,
                        req.info["message"]["android"]["priority"]))
        if provider == "Web Push":
            return "VAPID ok, decrypted payload %r" % (req.payload,)
        return "appid %s" % req.info.get("appid")

    def watch(self):
        """Print every further push until a signal ends the loop."""
        print("Ctrl-C stops everything. Another mail, to watch the "
              "debounce (10 s window: a trailing push) at work:")
        print("  %s -c \"import smtplib; smtplib.LMTP('%s').sendmail("
              "'%s', ['%s'], b'Subject: hi\\r\\n\\r\\nhi')\""
              % (sys.executable, self.dovecot.lmtp_path, SENDER, USER))
        while True:
            for provider, fake, _, match, _ in self.devices:
                got = pushes(fake, match)
                for r in got[self.seen.get(provider, 0):]:
                    print("%s push at fake %s (status %s)"
                          % (time.strftime("%H:%M:%S",
                                           time.localtime(r.t)),
                             provider, r.status))
                self.seen[provider] = len(got)
            for d in self.daemons:
                if not d.running:
                    raise RuntimeError("%s exited; log:\n%s"
                                       % (d.name, harness.tail(d.log_path)))
            time.sleep(0.25)   # the fakes record; this only reports

    def stop(self):
        """Stop everything started, in reverse order; True when it all
        exited cleanly and nothing is left."""
        ok = True
        if self.dovecot is not None:
            if self.dovecot_sid is None:
                try:
                    with open(self.dovecot.pidfile) as f:
                        self.dovecot_sid = int(f.read().split()[0])
                except (OSError, ValueError, IndexError):
                    pass
            try:
                self.dovecot.stop(check=False)
            except Exception as e:  # noqa: BLE001 - keep stopping
                print("dovecot: %s" % e)
                ok = False
        for d in reversed(self.daemons):
            try:
                d.stop()
            except Exception as e:  # noqa: BLE001
                print("%s" % e)
                d.kill()
                ok = False
        for d in self.daemons:
            if isinstance(d, harness.Dictd):
                d.close()
        for f in reversed(self.fakes):
            try:
                # FakeWebPush.close() also removes its certificate dir.
                getattr(f, "close", f.stop)()
            except Exception as e:  # noqa: BLE001
                print("%s: %s" % (type(f).__name__, e))
                ok = False
        return self.check_left() and ok

    def check_left(self):
        """Wait for our children and Dovecot's processes to be gone; kill
        and report what is still there at the deadline."""
        try:
            harness.wait_until(lambda: not left_running(self.dovecot_sid),
                               STOP_DEADLINE_S, what="every process to exit")
        except harness.WaitTimeout:
            pids = left_running(self.dovecot_sid)
            print("still running after %.0f s, killed: %s"
                  % (STOP_DEADLINE_S, pids))
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            return False
        return True


def main():
    if os.geteuid() != 0:
        sys.exit("run-stack: run as root (Dovecot's master switches users)")
    # Ctrl-C raises KeyboardInterrupt even when SIGINT came in ignored
    # (a shell's background job).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)
    stack = Stack()
    failed = False
    try:
        stack.start()
        stack.print_where()
        stack.register()
        stack.deliver_and_measure()
        stack.watch()
    except (KeyboardInterrupt, Stop):
        print()
    except Exception as e:  # noqa: BLE001 - report, then stop everything
        print("run-stack: %s" % e, file=sys.stderr)
        failed = True
    finally:
        # A second Ctrl-C must not cut the clean-up short.
        for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(s, signal.SIG_IGN)
        print("stopping")
        clean = stack.stop()
        keep = os.environ.get("RUN_STACK_KEEP") == "1" or failed
        if keep:
            print("kept %s" % stack.tmp)
        else:
            shutil.rmtree(stack.tmp, ignore_errors=True)
        print("stopped: %s" % ("every process exited, nothing left running"
                               if clean else "see the messages above"))
    sys.exit(1 if failed or not clean else 0)


if __name__ == "__main__":
    main()
