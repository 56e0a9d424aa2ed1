"""pytest fixtures for the end-to-end tests (real Dovecot, real daemons).

It serves every test below this directory: the daemons' tests in
daemons/ and the fakes' own tests in fakes/tests/. It puts fakes/ on
sys.path (this directory is there already, as pytest imports this file
from it), so that tests import `harness` and the fakes (`fake_apns`,
`pki`, ...) by module name wherever they live.

Fixtures (function-scoped unless said otherwise; every test gets a fresh
metadata-dictd with an empty database):

  tmpdir          world-traversable (0755) temp dir, removed afterwards
                  (kept when E2E_KEEP_TMP=1 is set)
  dictd_factory   dictd_factory(name=..., extra_args=[...]) starts another
                  metadata-dictd in its own sub-directory
  dictd           metadata-dictd in tmpdir: socket tmpdir/dict.sock (0666),
                  db tmpdir/relay.db, notify datagram socket
                  tmpdir/notify.sock, log tmpdir/dictd.log, --log-level
                  debug; extra flags with @pytest.mark.dictd_args(...)
  dovecot_server  (module scope) Dovecot 2.3 per
                  docs/dovecot-test-harness.md in its own temp dir,
                  with the project's dovecot-conf/95-chatmail-push.conf and
                  push.lua; IMAP on an OS-chosen 127.0.0.1 port, LMTP on
                  <tmp>/run/lmtp, dict socket <tmp>/dict.sock
  dovecot         dovecot_server for one test; makes `dictd` listen on
                  Dovecot's dict socket and checks dovecot.log afterwards
                  (@pytest.mark.dictd_bind_notify(False): `dictd` leaves its
                  notify socket path to a real notifierd)
  fake_proxy      fake_proxy.FakeProxy answering 200, started; stopped in
                  teardown
  relay_db        harness.RelayDb on tmpdir/relay.db (the path `dictd` uses)
  notifierd_factory
                  notifierd_factory(proxy_url=None, db_path=None,
                  **options) starts a harness.Notifierd on tmpdir/relay.db
                  (or db_path), POSTing to
                  fake_proxy unless told otherwise; options as in
                  Notifierd (retry_base, poll, deadline, wake_socket, ...)

  apns_pki        (session scope) pki.make_pki() in a temp dir: test CA,
                  the fake's server certificate, APNs client .p12 files
                  (modern and legacy RC2-40), the token key .p8
  fake_apns_factory
                  fake_apns_factory(mode="cert", **kw) starts a
                  fake_apns.FakeApns on apns_pki (fresh state per test);
                  teardown stops it and fails the test on an exception
                  inside the fake
  fake_apns       fake_apns_factory("cert")
  proxyd_factory  proxyd_factory(apns=None, auth="cert", start=True,
                  name="proxyd", **options) starts a harness.Proxyd in
                  tmpdir against `apns` (default: the test's fake_apns) with
                  apns_pki's CA and credentials; options as in Proxyd
                  (sandbox, keyring, debounce, interval, p12, password, ...)
  proxyd          proxyd_factory() with its defaults (cert auth, --debounce
                  1s, keyring-v6.asc)
  redis_factory   redis_factory(name=None, start=True, **options) starts a
                  redis_harness.RedisServer in tmpdir/<name> (names redis,
                  redis1, ...); options as in RedisServer (port, password,
                  replicaof, persistence, extra_conf)
  sentinel_factory
                  sentinel_factory(master, name=None, start=True,
                  **options): a redis_harness.RedisSentinel watching
                  `master` (a RedisServer or (host, port)); options
                  master_name ("mymaster"), quorum (2), down_after_ms
                  (1000), failover_timeout_ms (5000), ...
  haproxy_factory haproxy_factory(servers, name="haproxy", start=True,
                  wait_up=True, **options): a redis_harness.HAProxy on the
                  shipped deploy/haproxy/haproxy.cfg in front of `servers`
                  (Proxyd objects, "host:port" or (name, "host:port")),
                  TLS with apns_pki's server certificate; wait_up waits
                  for every server's first good health check; options
                  health_path, template, maxconn
                  These three skip the test when their binary is missing,
                  or fail it when the environment has CI set.
  openpgp_js      (session scope) harness.openpgp_js_encrypt once
                  tests/e2e/openpgp_js/node_modules is there: `npm ci` runs
                  if it is missing (an npm failure fails the tests that need
                  it); skipped without `node`

Every daemon is stopped in teardown and must exit 0 (else the test errors),
and its log must not contain any device token that a test sent;
a Dovecot log with "Panic:" or "Fatal:" fails the test too. When a test
fails, the tails of dovecot.log and of each daemon's log are added to the
report. Helpers (wait_until, DictClient, Imap, ...) live in harness.py.
"""

import os
import shutil
import subprocess
import sys
import tempfile

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "fakes"))

from fake_proxy import FakeProxy  # noqa: E402
from harness import (Dictd, Dovecot, DaemonError, Notifierd,  # noqa: E402
                     OPENPGP_JS_DIR, Proxyd, RelayDb, SECRETS, leaked_secrets,
                     make_world_tmpdir, openpgp_js_encrypt, tail)


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "dictd_args(*args): extra metadata-dictd arguments for "
        "the dictd fixture")
    config.addinivalue_line(
        "markers", "dictd_bind_notify(bind): False leaves the dictd "
        "fixture's notify socket path free for a real notifierd")
    config.addinivalue_line(
        "markers", "not_again_under_san: run by `make e2e`, not again by "
        "`make e2e-san` (-m 'not not_again_under_san'): a test of the "
        "harness itself, or a long test of timing whose daemon code paths "
        "shorter tests run under the sanitizers too")


def pytest_collection_modifyitems(config, items):
    """The fakes' own tests (fakes/tests/) run none of our daemons: once
    is enough, not again under the sanitizers."""
    fakes = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                         "fakes", "tests") + os.sep
    for item in items:
        if str(item.fspath).startswith(fakes):
            item.add_marker(pytest.mark.not_again_under_san)


def _register_log(request, title, path):
    logs = getattr(request.node, "_e2e_logs", [])
    logs.append((title, path))
    request.node._e2e_logs = logs


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.failed and rep.when in ("setup", "call"):
        for title, path in getattr(item, "_e2e_logs", []):
            rep.sections.append(("tail of %s (%s)" % (title, path),
                                 tail(path)))


@pytest.fixture
def tmpdir():
    """A fresh world-traversable temp dir (mail processes run as nobody)."""
    path = make_world_tmpdir()
    yield path
    if os.environ.get("E2E_KEEP_TMP") != "1":
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def dictd_factory(tmpdir, request):
    made = []

    def make(name=None, extra_args=(), socket_path=None, start=True,
             bind_notify=True):
        workdir = tmpdir if name is None else os.path.join(tmpdir, name)
        os.makedirs(workdir, exist_ok=True)
        os.chmod(workdir, 0o755)
        d = Dictd(workdir, socket_path=socket_path, extra_args=extra_args,
                  bind_notify=bind_notify)
        made.append(d)
        _register_log(request, "metadata-dictd log", d.log_path)
        if start:
            d.start()
        return d

    yield make
    errors = []
    for d in made:
        try:
            d.stop()
        except DaemonError as e:
            errors.append(str(e))
        finally:
            d.close()
        if os.path.exists(d.log_path):
            leaked = leaked_secrets(d.log_text())
            if leaked:
                errors.append("device tokens in clear in %s: %s"
                              % (d.log_path, ", ".join(leaked)))
    if errors:
        pytest.fail("\n\n".join(errors), pytrace=False)


@pytest.fixture
def dictd(dictd_factory, request):
    marker = request.node.get_closest_marker("dictd_args")
    socket_path = None
    if "dovecot" in request.fixturenames:
        # Dovecot's config names the socket: listen where it connects.
        socket_path = request.getfixturevalue("dovecot_server").dict_socket
    bind = request.node.get_closest_marker("dictd_bind_notify")
    return dictd_factory(extra_args=marker.args if marker else (),
                         socket_path=socket_path,
                         bind_notify=bind.args[0] if bind else True)


@pytest.fixture(scope="module")
def dovecot_server():
    """One Dovecot per test module: its master takes ~3 s to shut down,
    too long to pay per test. Tests stay independent because all state
    they check lives in the per-test metadata-dictd database; mailbox
    names a test creates must be unique."""
    tmp = make_world_tmpdir("e2e-dovecot-")
    dv = Dovecot(tmp, os.path.join(tmp, "dict.sock"))
    try:
        dv.start()
        yield dv
    finally:
        dv.stop()
        if os.environ.get("E2E_KEEP_TMP") != "1":
            shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture
def dovecot(dovecot_server, dictd, request):
    """The module's Dovecot, talking to this test's metadata-dictd. Fails
    the test if Dovecot logged a Panic or Fatal line meanwhile (an imap
    process panics on a malformed dict reply)."""
    dv = dovecot_server
    _register_log(request, "dovecot.log", dv.log_path)
    start = len(dv.log_text())
    yield dv
    if not dv.ready():
        pytest.fail("dovecot is no longer running; log:\n"
                    + tail(dv.log_path), pytrace=False)
    text = dv.log_text()[start:]
    bad = [line for line in text.splitlines()
           if "Panic:" in line or "Fatal:" in line]
    if bad:
        pytest.fail("dovecot.log has Panic/Fatal lines:\n" + "\n".join(bad),
                    pytrace=False)
    # The drop-in leaves mail_debug off: Dovecot logs no token either.
    leaked = leaked_secrets(text)
    if leaked:
        pytest.fail("device tokens in clear in dovecot.log: %s"
                    % ", ".join(leaked), pytrace=False)


@pytest.fixture
def fake_proxy():
    """The push proxy's stand-in (fake_proxy.py), answering 200."""
    proxy = FakeProxy(default=200).start()
    yield proxy
    proxy.stop()


@pytest.fixture
def relay_db(tmpdir):
    """The relay database at tmpdir/relay.db (where `dictd` keeps it),
    schema created if missing, for inserting tokens and jobs directly."""
    return RelayDb(os.path.join(tmpdir, "relay.db"))


@pytest.fixture
def notifierd_factory(tmpdir, request):
    """notifierd_factory(proxy_url=None, start=True, db_path=None,
    **options): a Notifierd on tmpdir/relay.db (or db_path). Without
    proxy_url it POSTs to the
    test's fake_proxy. Teardown stops each (exit 0 required after SIGTERM)
    and fails the test if its log holds a token in clear (SECRETS plus the
    instance's own .secrets)."""
    made = []

    def make(proxy_url=None, start=True, db_path=None, **options):
        if proxy_url is None:
            proxy_url = request.getfixturevalue("fake_proxy").url
        n = Notifierd(tmpdir, db_path or os.path.join(tmpdir, "relay.db"),
                      proxy_url,
                      log_name="notifierd%s.log" % (len(made) or ""),
                      **options)
        made.append(n)
        _register_log(request, "notifierd log", n.log_path)
        if start:
            n.start()
        return n

    yield make
    errors = []
    for n in made:
        try:
            n.stop()
        except DaemonError as e:
            errors.append(str(e))
        if os.path.exists(n.log_path):
            leaked = leaked_secrets(n.log_text(), SECRETS | n.secrets)
            if leaked:
                errors.append("device tokens in clear in %s: %s"
                              % (n.log_path, ", ".join(leaked[:10])))
    if errors:
        pytest.fail("\n\n".join(errors), pytrace=False)


# ---- proxyd ---------------------------------------------------------------


@pytest.fixture(scope="session")
def apns_pki():
    """One test PKI (pki.make_pki) for the session: making the legacy
    .p12 runs openssl several times."""
    from pki import make_pki
    d = tempfile.mkdtemp(prefix="e2e-proxyd-pki-")
    os.chmod(d, 0o755)
    yield make_pki(d)
    if os.environ.get("E2E_KEEP_TMP") != "1":
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def fake_apns_factory(apns_pki):
    """fake_apns_factory(mode="cert", **kw): a started FakeApns; stopped
    in teardown, which fails the test if the fake itself raised."""
    from fake_apns import FakeApns
    fakes = []

    def make(mode="cert", **kw):
        f = FakeApns(apns_pki, mode=mode, **kw).start()
        fakes.append(f)
        return f
    yield make
    for f in fakes:
        f.stop()
    errors = [e for f in fakes for e in f.errors]
    if errors:
        pytest.fail("exceptions inside the fake APNs: %r" % errors,
                    pytrace=False)


@pytest.fixture
def fake_apns(fake_apns_factory):
    """A fake APNs in cert mode, answering 200 unless scripted."""
    return fake_apns_factory("cert")


@pytest.fixture
def proxyd_factory(tmpdir, request, apns_pki):
    """proxyd_factory(apns=None, auth="cert", start=True, name="proxyd",
    **options): a harness.Proxyd in tmpdir against `apns` (default: the
    test's fake_apns). Teardown stops each (exit 0 required after SIGTERM)
    and fails the test if its log holds a token in clear (SECRETS plus the
    instance's .secrets)."""
    made = []

    def make(apns=None, auth="cert", start=True, name=None, **options):
        if apns is None:
            apns = request.getfixturevalue("fake_apns")
        name = name or "proxyd%s" % (len(made) or "")
        p = Proxyd(tmpdir, apns=apns, pki=apns_pki, auth=auth, name=name,
                   **options)
        made.append(p)
        _register_log(request, "proxyd log", p.log_path)
        if start:
            p.start()
        return p

    yield make
    errors = []
    for p in made:
        try:
            p.stop()
        except DaemonError as e:
            errors.append(str(e))
        if os.path.exists(p.log_path):
            leaked = leaked_secrets(p.log_text(), SECRETS | p.secrets)
            if leaked:
                errors.append("device tokens in clear in %s: %s"
                              % (p.log_path, ", ".join(leaked[:10])))
    if errors:
        pytest.fail("\n\n".join(errors), pytrace=False)


@pytest.fixture
def proxyd(proxyd_factory):
    return proxyd_factory()


@pytest.fixture(scope="session")
def openpgp_js():
    """harness.openpgp_js_encrypt, with OpenPGP.js installed from
    openpgp_js/package-lock.json (`npm ci`) when node_modules is missing.
    Skips when there is no `node`; an npm failure is an error, not a
    skip."""
    if shutil.which("node") is None:
        pytest.skip("node is not installed: cannot encrypt with OpenPGP.js")
    if not os.path.isdir(os.path.join(OPENPGP_JS_DIR, "node_modules",
                                      "openpgp")):
        if shutil.which("npm") is None:
            pytest.fail("node is installed but npm is not: cannot install "
                        "OpenPGP.js into %s" % OPENPGP_JS_DIR, pytrace=False)
        r = subprocess.run(["npm", "ci", "--no-audit", "--no-fund"],
                           cwd=OPENPGP_JS_DIR, capture_output=True,
                           timeout=300)
        if r.returncode != 0:
            pytest.fail("npm ci in %s failed (%d):\n%s" % (
                OPENPGP_JS_DIR, r.returncode,
                (r.stdout + r.stderr).decode(errors="replace")[-3000:]),
                pytrace=False)
    return openpgp_js_encrypt


# ---- the other providers' fakes (FCM, UBports, Web Push) ----------------


@pytest.fixture
def fake_fcm(apns_pki):
    """A started FakeFcm (OAuth2 token endpoint + messages:send); teardown
    fails the test on an exception inside it or a message proxyd must not
    send (violations)."""
    from fake_fcm import FakeFcm
    f = FakeFcm(apns_pki).start()
    yield f
    f.stop()
    assert not f.errors, f.errors
    assert not f.violations, f.violations


@pytest.fixture
def fake_ubports(apns_pki):
    """A started FakeUbports, checked like fake_fcm in teardown."""
    from fake_ubports import FakeUbports
    f = FakeUbports(apns_pki).start()
    yield f
    f.stop()
    assert not f.errors, f.errors
    assert not f.violations, f.violations


@pytest.fixture
def webpush_factory(apns_pki):
    """webpush_factory(**kw): a started FakeWebPush(apns_pki, **kw);
    teardown closes each (certificate directory removed) and fails the
    test on an exception inside one."""
    from fake_webpush import FakeWebPush
    made = []

    def make(**kw):
        f = FakeWebPush(apns_pki, **kw).start()
        made.append(f)
        return f
    yield make
    for f in made:
        f.close()
    errors = [e for f in made for e in f.errors]
    assert not errors, errors


@pytest.fixture
def fake_webpush(webpush_factory):
    """One FakeWebPush over HTTPS on 127.0.0.1."""
    return webpush_factory()


@pytest.fixture(scope="session")
def vapid_key(tmp_path_factory):
    """A VAPID key as operators make it (openssl ecparam: SEC1 PEM)."""
    path = str(tmp_path_factory.mktemp("vapid") / "vapid.pem")
    subprocess.run(["openssl", "ecparam", "-name", "prime256v1", "-genkey",
                    "-noout", "-out", path], check=True)
    return path


# ---- Redis, Sentinel, HAProxy (issue 15: proxyd instances sharing state) --


def _need_binary(path, package):
    """The binary's path; skips the test when it is missing, or fails it
    under CI (where scripts/install-deps.sh must have installed it)."""
    from redis_harness import find_binary
    found = find_binary(path)
    if found is None:
        msg = ("%s is not installed (Debian package %s; "
               "scripts/install-deps.sh installs it)"
               % (os.path.basename(path), package))
        if os.environ.get("CI"):
            pytest.fail(msg + "; CI is set, so this is an error",
                        pytrace=False)
        pytest.skip(msg)
    return found


def _stop_all(made, what):
    """Stop each (SIGTERM, exit 0 required; killed ones are left alone)
    and fail the test with every error."""
    errors = []
    for d in reversed(made):
        try:
            d.stop()
        except (DaemonError, OSError) as e:
            errors.append("%s: %s" % (what, e))
    if errors:
        pytest.fail("\n\n".join(errors), pytrace=False)


@pytest.fixture
def redis_factory(tmpdir, request):
    """redis_factory(name=None, start=True, **options): a started
    redis_harness.RedisServer in tmpdir/<name>; stopped in teardown (exit
    0 required), also when the test failed."""
    from redis_harness import REDIS_SERVER, RedisServer
    binary = _need_binary(REDIS_SERVER, "redis-server")
    made = []

    def make(name=None, start=True, **options):
        name = name or "redis%s" % (len(made) or "")
        return _keep(request, made, "redis log", RedisServer(
            os.path.join(tmpdir, name), name=name, binary=binary,
            **options), start)

    yield make
    _stop_all(made, "redis-server")


def _keep(request, made, title, proc, start):
    """A process of a factory: kept for teardown, its log in the
    report, started unless start is False."""
    made.append(proc)
    _register_log(request, title, proc.log_path)
    if start:
        proc.start()
    return proc


@pytest.fixture
def sentinel_factory(tmpdir, request):
    """sentinel_factory(master, name=None, start=True, **options): a
    started redis_harness.RedisSentinel watching `master`; stopped in
    teardown (exit 0 required)."""
    from redis_harness import REDIS_SENTINEL, RedisSentinel
    binary = _need_binary(REDIS_SENTINEL, "redis-sentinel")
    made = []

    def make(master, name=None, start=True, **options):
        name = name or "sentinel%s" % (len(made) or "")
        return _keep(request, made, "sentinel log", RedisSentinel(
            os.path.join(tmpdir, name), master, name=name, binary=binary,
            **options), start)

    yield make
    _stop_all(made, "redis-sentinel")


@pytest.fixture
def haproxy_factory(tmpdir, request, apns_pki):
    """haproxy_factory(servers, name="haproxy", start=True, wait_up=True,
    **options): a started redis_harness.HAProxy on the shipped
    deploy/haproxy/haproxy.cfg in front of `servers`; stopped in teardown
    (exit 0 required)."""
    from redis_harness import HAPROXY, HAProxy
    binary = _need_binary(HAPROXY, "haproxy")
    made = []

    def make(servers, name="haproxy", start=True, wait_up=True, **options):
        addrs = []
        for s in servers:
            if isinstance(s, Proxyd):
                addrs.append((os.path.splitext(
                    os.path.basename(s.log_path))[0],
                    "127.0.0.1:%d" % s.port))
            else:
                addrs.append(s)
        h = _keep(request, made, "haproxy log", HAProxy(
            os.path.join(tmpdir, name), addrs, apns_pki, binary=binary,
            **options), start)
        if start and wait_up:
            h.wait_servers()
        return h

    yield make
    _stop_all(made, "haproxy")
