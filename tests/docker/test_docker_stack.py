"""The push stack in containers, tested as a client would use it.

scripts/docker-test.sh (make docker-test) builds the images and runs this
file; it brings up compose.yaml's two hosts with tests/docker/
compose.test.yaml on top:

  relay    dovecot, metadata-dictd, notifierd   (image chatmail-push-relay)
  central  proxyd                               (image chatmail-push-central)
  fakes    fake APNs, FCM and Web Push          (tests/docker/fakes_server.py)

and talks to them from the host through ports published on 127.0.0.1:
IMAP as chatmail core 2.58 does (capabilities from the greeting and LOGIN,
SETMETADATA with the token as a quoted string), mail over LMTP, and the
fakes' control port to see what reached the providers. Everything it
starts is removed at the end (containers, networks, volumes).
"""
import json
import os
import shutil
import smtplib
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(REPO, "tests", "e2e"))

import harness  # noqa: E402

DOCKER = os.environ.get("DOCKER", "/usr/bin/docker")
COMPOSE = os.environ.get("COMPOSE", "/usr/bin/docker-compose")
PROJECT = "chatmail-push-test"
FILES = ["-f", "compose.yaml", "-f", "tests/docker/compose.test.yaml",
         "--profile", "relay", "--profile", "central"]
SERVICES = ["dovecot", "metadata-dictd", "notifierd", "proxyd", "fakes"]
USERS = {"alice@example.org": "alicepass", "bob@example.org": "bobpass",
         "carol@example.org": "carolpass", "dave@example.org": "davepass"}
SENDER = "sender@example.net"
UP_TIMEOUT_S = 90
PUSH_TIMEOUT_S = 30


def run(argv, timeout=300, check=True, env=None):
    r = subprocess.run(argv, cwd=REPO, env=env, capture_output=True,
                       text=True, timeout=timeout)
    if check and r.returncode != 0:
        raise AssertionError("%s -> %d\n%s%s" % (" ".join(argv),
                                                 r.returncode, r.stdout,
                                                 r.stderr))
    return r


class Stack:
    """The running topology: compose, published ports, the fakes' control
    port, IMAP and LMTP as the host reaches them."""

    def __init__(self, secrets):
        self.secrets = secrets
        self.env = dict(os.environ, PUSH_TEST_SECRETS=secrets,
                        RELAY_IMAP_PUBLISH="127.0.0.1:",
                        RELAY_IMAPS_PUBLISH="127.0.0.1:",
                        PROXY_PUBLISH="127.0.0.1:",
                        PROXY_METRICS_PUBLISH="127.0.0.1:")
        self.ports = {}

    def compose(self, *args, timeout=300, check=True):
        return run([COMPOSE, "-p", PROJECT] + FILES + list(args),
                   timeout=timeout, check=check, env=self.env)

    def container(self, service):
        out = self.compose("ps", "-q", service).stdout.split()
        assert out, "no container for %s" % service
        return out[0]

    def port(self, service, port):
        out = self.compose("port", service, str(port)).stdout.strip()
        host, _, p = out.rpartition(":")
        assert host == "127.0.0.1", "%s:%d published on %r" % (
            service, port, out)
        return int(p)

    def exec(self, service, script, user=None, check=True):
        argv = [DOCKER, "exec"]
        if user is not None:
            argv += ["-u", user]
        argv += [self.container(service), "/bin/sh", "-c", script]
        return run(argv, timeout=30, check=check)

    def health(self, service):
        out = run([DOCKER, "inspect", "-f",
                   "{{if .State.Health}}{{.State.Health.Status}}"
                   "{{else}}none{{end}} {{.State.Status}}",
                   self.container(service)]).stdout.split()
        return out

    def wait_healthy(self, services=SERVICES, timeout=UP_TIMEOUT_S):
        def ok():
            return all(self.health(s) == ["healthy", "running"]
                       for s in services)
        harness.wait_until(ok, timeout=timeout, interval=0.5,
                           what="%s healthy" % ", ".join(services))

    def learn_ports(self):
        self.ports = {"imap": self.port("dovecot", 143),
                      "lmtp": self.port("dovecot", 24),
                      "control": self.port("fakes", 8080),
                      "metrics": self.port("proxyd", 9001)}

    # ---- the fakes' control port ----------------------------------------

    def control(self, method, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(
            "http://127.0.0.1:%d%s" % (self.ports["control"], path),
            data=data, method=method,
            headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.loads(r.read() or b"null")

    def pushes(self):
        return self.control("GET", "/pushes")

    def wait_pushes(self, pred, what, timeout=PUSH_TIMEOUT_S):
        """The fakes' pushes once pred holds for them."""
        seen = []

        def check():
            seen[:] = self.pushes()
            return pred(seen)
        harness.wait_until(check, timeout=timeout, interval=0.1, what=what)
        return seen

    # ---- IMAP and LMTP, as the host reaches the relay ---------------------

    def imap(self, user=None, password=None):
        c = harness.Imap(self.ports["imap"])
        if user is not None:
            c.login(user, password or USERS[user])
        return c

    def deliver(self, rcpt, attempts=60):
        """One mail over LMTP; returns (when it was sent, when the final
        250 came). A push may reach a fake before the client has read the
        250, so "after the mail" means after it was sent. An MTA retries
        a refused delivery (Dovecot restarting): so does this."""
        msg = ("From: <%s>\r\nTo: <%s>\r\nSubject: hi\r\nMessage-ID: "
               "<%s@example.net>\r\n\r\nhi\r\n" % (SENDER, rcpt,
                                                   uuid.uuid4().hex))
        for i in range(attempts):
            try:
                lmtp = smtplib.LMTP("127.0.0.1", self.ports["lmtp"],
                                    timeout=30)
                try:
                    t_sent = time.time()
                    refused = lmtp.sendmail(SENDER, [rcpt], msg.encode())
                    t_done = time.time()
                finally:
                    lmtp.quit()
                if not refused:
                    return t_sent, t_done
            except (OSError, smtplib.SMTPException):
                # restarted: docker may have published it on a new port
                try:
                    self.ports["lmtp"] = self.port("dovecot", 24)
                except AssertionError:
                    pass
            time.sleep(0.5)
        raise AssertionError("LMTP refused the mail to %s %d times"
                             % (rcpt, attempts))

    def metric(self, name):
        text = urllib.request.urlopen(
            "http://127.0.0.1:%d/metrics" % self.ports["metrics"],
            timeout=5).read().decode()
        for line in text.splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
        return 0.0


def make_secrets(directory):
    """The stack's secrets, made per run (nothing secret is in an image):
    the PKI, the APNs client certificate and its password, the FCM service
    account, the VAPID key and the test keyring."""
    run(["/usr/bin/python3", os.path.join(HERE, "fakes_server.py"),
         "--make-secrets", directory])
    # Readable by the containers' own users (proxyd is uid 990, the fakes
    # another): throw-away test credentials in a private temp dir.
    os.chmod(directory, 0o755)
    for name in os.listdir(directory):
        os.chmod(os.path.join(directory, name), 0o444)


@pytest.fixture(scope="module")
def stack():
    secrets = tempfile.mkdtemp(prefix="docker-test-secrets-")
    s = Stack(secrets)
    failed = True
    try:
        make_secrets(secrets)
        s.compose("down", "-v", "--remove-orphans", check=False)
        t0 = time.monotonic()
        s.compose("up", "-d", "--no-build", timeout=180)
        s.wait_healthy()
        s.learn_ports()
        print("\ndocker-test: stack up and healthy in %.1f s"
              % (time.monotonic() - t0))
        yield s
        failed = False
    finally:
        if failed or os.environ.get("DOCKER_TEST_LOGS") == "1":
            print(s.compose("logs", "--no-color", "--tail", "80",
                            check=False).stdout[-20000:])
        s.compose("down", "-v", "--remove-orphans", "--timeout", "20",
                  check=False)
        left = run([DOCKER, "ps", "-aq", "--filter",
                    "label=com.docker.compose.project=" + PROJECT],
                   check=False).stdout.split()
        shutil.rmtree(secrets, ignore_errors=True)
        assert not left, "containers left behind: %s" % left


@pytest.fixture(scope="module")
def encrypt(stack):
    """An encrypter of device tokens exactly as chatmail core does
    (OpenPGP.js, tests/e2e/openpgp_js), to the test keyring's cert."""
    js = os.path.join(REPO, "tests", "e2e", "openpgp_js")
    if not os.path.isdir(os.path.join(js, "node_modules", "openpgp")):
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=js,
                       check=True, capture_output=True, timeout=300)
    cert = os.path.join(REPO, "tests", "data", "openpgp", "cert-v6.asc")

    def enc(plain):
        harness.register_secret(plain)
        token = harness.openpgp_js_encrypt(plain, cert)
        harness.register_secret(token)
        return token
    return enc


def register(stack, user, token):
    """chatmail core 2.58 on a new IMAP session (harness.register_like_core):
    no CAPABILITY command, token as a quoted string."""
    reg = harness.register_like_core(stack, user, token, USERS[user])
    assert reg.push_by == "XDELTAPUSH", (reg.greeting_caps, reg.login_caps)
    assert reg.result.status == "OK", reg.result


def relay_tokens(stack, user):
    with stack.imap(user) as c:
        v = c.get_entry("INBOX", "/private/devicetoken")
    return [] if v is None else v.decode().split()


def apns_token():
    return uuid.uuid4().hex + uuid.uuid4().hex


def delivered(pushes):
    """The pushes a fake took (2xx; Web Push answers 201), not FCM's
    OAuth2 token requests."""
    return [p for p in pushes if p.get("kind", "push") in ("push", "send")
            and 200 <= p["status"] < 300]


# ---------------------------------------------------------------------------


def test_images(stack):
    """Small runtime images: no compiler, no test key, health checks
    declared; their sizes printed."""
    for image in ("chatmail-push-relay", "chatmail-push-central",
                  "chatmail-push-fakes:test", "debian:12"):
        size = int(run([DOCKER, "image", "inspect", "-f", "{{.Size}}",
                        image]).stdout)
        print("docker-test: image %-26s %5.0f MB" % (image, size / 1e6))
    for image in ("chatmail-push-relay", "chatmail-push-central"):
        hc = run([DOCKER, "image", "inspect", "-f",
                  "{{json .Config.Healthcheck}}", image]).stdout.strip()
        assert hc not in ("", "null"), "%s: no HEALTHCHECK" % image
        # no build tools; no key of any kind in a file (the test keyring,
        # the PKI, a package's generated self-signed "snakeoil" key):
        # keys come in at run time
        r = run([DOCKER, "run", "--rm", "--network", "none",
                 "--entrypoint", "/bin/sh", image,
                 "-c", "for t in cc gcc clang make ld node python3 npm; do "
                 "command -v $t; done; grep -rlsIE -e '-----BEGIN (PGP |RSA "
                 "|EC |ENCRYPTED )?PRIVATE KEY-----$' /etc /var /home /root /opt "
                 "/usr/local /srv 2>/dev/null; find / -xdev \\( -name "
                 "'*.p12' -o -name '*.p8' -o -name 'keyring*.asc' \\) "
                 "2>/dev/null; true"], timeout=120)
        assert r.stdout.strip() == "", "%s holds: %s" % (image, r.stdout)
    # compose declares process checks where there is no HTTP endpoint
    for service in ("metadata-dictd", "notifierd"):
        assert stack.health(service)[0] == "healthy"


def test_fakes_answer_like_the_providers(stack):
    """The fakes container's own check (tests/docker/check_fakes.py), from
    another container on the proxy's network, as proxyd reaches it: APNs
    over HTTP/2 with the client certificate, FCM's token exchange and
    send, an encrypted Web Push, scripted errors, the control port."""
    r = run([DOCKER, "run", "--rm", "--network", PROJECT + "_wan",
             "-v", stack.secrets + ":/secrets:ro",
             "chatmail-push-fakes:test", "python3", "/fakes/check_fakes.py",
             "--secrets", "/secrets", "--host-name", "fakes"],
            timeout=120, check=False)
    assert r.returncode == 0, r.stdout + r.stderr


def test_push_across_containers(stack, encrypt):
    """A device of each provider registers through the relay's Dovecot as
    core does; a mail over LMTP reaches each fake provider through
    metadata-dictd, notifierd and proxyd in their containers."""
    plain_apns = apns_token()
    plain_fcm = "fcm-chat.delta:" + uuid.uuid4().hex + ":" + \
        uuid.uuid4().hex
    wp = stack.control("POST", "/webpush/subscriptions", {})["token"]
    harness.register_secret(wp)
    devices = {"apns": plain_apns, "fcm": plain_fcm, "webpush": wp}
    for plain in devices.values():
        register(stack, "alice@example.org", encrypt(plain))
    assert len(relay_tokens(stack, "alice@example.org")) == 3
    stack.control("POST", "/reset", {})

    lat = {}
    for n in range(3):
        t, t_done = stack.deliver("alice@example.org")
        got = stack.wait_pushes(
            lambda ps: {p["provider"] for p in delivered(ps)
                        if p["t"] >= t} >= set(devices),
            "a push at each provider for mail %d" % n)
        for p in delivered(got):
            if p["t"] >= t:
                # from LMTP's final 250 (negative: the push was out
                # before the client read it)
                lat.setdefault(p["provider"], []).append(p["t"] - t_done)
        time.sleep(1.2)         # past proxyd's 1 s window: no coalescing
    by_token = {p["provider"]: p["token"] for p in delivered(stack.pushes())}
    assert by_token["apns"] == plain_apns
    assert plain_fcm.endswith(by_token["fcm"]), by_token["fcm"]
    assert by_token["webpush"] in wp, by_token["webpush"]
    for prov, vals in sorted(lat.items()):
        print("docker-test: LMTP 250 -> push at fake %-7s (other "
              "container): %s ms" % (prov, ", ".join(
                  "%.1f" % (v * 1000) for v in vals)))
        assert max(vals) < 10, vals


def test_gone_token_is_removed_at_the_relay(stack, encrypt):
    """The fake APNs answers 410 for one device: proxyd says 410, notifierd
    deletes the token in the relay database; the other device stays."""
    gone, kept = apns_token(), apns_token()
    for plain in (gone, kept):
        register(stack, "bob@example.org", encrypt(plain))
    before = relay_tokens(stack, "bob@example.org")
    assert len(before) == 2
    stack.control("POST", "/replies", {"provider": "apns", "token": gone,
                                       "replies": [[410, "Unregistered"]]})
    stack.deliver("bob@example.org")
    harness.wait_until(lambda: len(relay_tokens(stack,
                                                "bob@example.org")) == 1,
                       timeout=PUSH_TIMEOUT_S, interval=0.2,
                       what="the gone token deleted at the relay")
    assert [p["status"] for p in stack.pushes() if p["token"] == gone] == \
        [410]
    time.sleep(1.2)
    t, _ = stack.deliver("bob@example.org")
    stack.wait_pushes(lambda ps: any(p["token"] == kept and p["t"] >= t
                                     for p in ps), "the kept device pushed")
    assert [p for p in stack.pushes() if p["token"] == gone and
            p["t"] >= t] == []


@pytest.mark.parametrize("service", SERVICES)
def test_restart_loses_nothing(stack, encrypt, service):
    """`docker compose restart` of one service while mail keeps coming:
    every device gets a push after its last mail."""
    users = ["carol@example.org", "dave@example.org"]
    devices = {}
    for u in users:
        devices[u] = apns_token()
        register(stack, u, encrypt(devices[u]))
    last = {}
    stop = threading.Event()
    errors = []

    def mail():
        i = 0
        while not stop.is_set():
            u = users[i % len(users)]
            try:
                last[u] = stack.deliver(u)[0]
            except AssertionError as e:
                errors.append(str(e))
                return
            i += 1
            time.sleep(0.15)

    th = threading.Thread(target=mail, daemon=True)
    th.start()
    time.sleep(1)
    t0 = time.monotonic()
    stack.compose("restart", "-t", "10", service, timeout=120)
    restart_s = time.monotonic() - t0
    time.sleep(1)
    stop.set()
    th.join(60)
    assert not errors, errors
    stack.wait_healthy([service])
    stack.learn_ports()     # a restarted container may publish new ports
    for u in users:
        stack.wait_pushes(
            lambda ps, u=u: any(p["token"] == devices[u] and
                                p["t"] >= last[u] for p in delivered(ps)),
            "%s pushed after its last mail (restart of %s)" % (u, service),
            timeout=60)
    late = max(min(p["t"] for p in delivered(stack.pushes())
                   if p["token"] == devices[u] and p["t"] >= last[u]) -
               last[u] for u in users)
    print("docker-test: restart of %-14s %.1f s; every device pushed after "
          "its last mail, at most %.1f s later" % (service, restart_s, late))
    # these devices are done: out of the way of the next run
    for u in users:
        with stack.imap(u) as c:
            c.setmetadata("INBOX", [("/private/devicetoken", None)])


def test_hardening_from_inside(stack):
    """What compose.yaml declares, seen from inside the running
    containers: read-only root, no capabilities, no new privileges, the
    daemons' users, metadata-dictd without a network, the socket modes."""
    want_user = {"metadata-dictd": "991", "notifierd": "991",
                 "proxyd": "990"}
    for service, uid in want_user.items():
        out = stack.exec(service, "id -u; grep -E "
                         "'^(CapEff|CapBnd|NoNewPrivs)' /proc/1/status; "
                         "touch /probe 2>/dev/null && echo writable || "
                         "echo read-only").stdout.split("\n")
        assert out[0] == uid, (service, out)
        status = dict(line.split(":\t") for line in out[1:4])
        assert status == {"CapEff": "0000000000000000",
                          "CapBnd": "0000000000000000",
                          "NoNewPrivs": "1"}, (service, status)
        assert out[4] == "read-only", (service, out)
    # no network at all for metadata-dictd: loopback only
    devs = stack.exec("metadata-dictd",
                      "tail -n +3 /proc/net/dev | cut -d: -f1").stdout.split()
    assert devs == ["lo"], devs
    # the dict socket: group vmail, 0660 (Dovecot's mail processes, uid
    # vmail, connect); the state directory the daemons' own
    out = stack.exec("dovecot", "stat -c '%a %U %G' "
                     "/run/metadata-dictd/dict.sock "
                     "&& ls -ln /run/metadata-dictd").stdout
    assert out.splitlines()[0] == "660 991 vmail" or \
        out.splitlines()[0].startswith("660 "), out
    out = stack.exec("notifierd", "stat -c '%U %a' "
                     "/var/lib/chatmail-push/relay.db").stdout.split()
    assert out == ["chatmail-push", "644"] or out[0] == "chatmail-push", out
    # secrets are mounted, not in the image, and readable by proxyd only
    # through its mount
    assert stack.exec("proxyd", "test -r /run/secrets/keyring.asc",
                      check=False).returncode == 0


def test_no_token_in_any_log(stack):
    """No device token in clear in any container's log (proxyd and
    notifierd run at debug)."""
    logs = stack.compose("logs", "--no-color", "dovecot", "metadata-dictd",
                         "notifierd", "proxyd", check=False).stdout
    assert len(logs) > 1000, "no logs?"
    assert harness.leaked_secrets(logs) == []
