"""pytest fixtures for the end-to-end tests (real Dovecot, real daemons).

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
                  shared/docs/dovecot-test-harness.md in its own temp dir,
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

Every daemon is stopped in teardown and must exit 0 (else the test errors),
and its log must not contain any device token that a test sent;
a Dovecot log with "Panic:" or "Fatal:" fails the test too. When a test
fails, the tails of dovecot.log and of each daemon's log are added to the
report. Helpers (wait_until, DictClient, Imap, ...) live in harness.py.
"""

import os
import shutil

import pytest

from fake_proxy import FakeProxy
from harness import (Dictd, Dovecot, DaemonError, Notifierd, RelayDb,
                     SECRETS, leaked_secrets, make_world_tmpdir, tail)


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "dictd_args(*args): extra metadata-dictd arguments for "
        "the dictd fixture")
    config.addinivalue_line(
        "markers", "dictd_bind_notify(bind): False leaves the dictd "
        "fixture's notify socket path free for a real notifierd")


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
    bad = [line for line in dv.log_text()[start:].splitlines()
           if "Panic:" in line or "Fatal:" in line]
    if bad:
        pytest.fail("dovecot.log has Panic/Fatal lines:\n" + "\n".join(bad),
                    pytrace=False)


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
