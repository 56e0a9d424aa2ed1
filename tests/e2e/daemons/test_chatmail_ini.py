"""--config: chatmail relay's chatmail.ini read by metadata-dictd and
notifierd (docs/metadata-dictd.md, "Settings from chatmail.ini";
docs/notifierd.md).

The file is laid out as `cmdeploy init` writes it (chatmail_relay.py).
metadata-dictd answers the IMAP METADATA server entries from it, through
a real Dovecot, as chatmaild's metadata.py does: irohrelay from
iroh_relay (absent: https://<mail_domain>; empty: NIL), turn from
mail_domain and turn_socket_path; flags win; every key the daemon does
not use is logged once at debug; a malformed file stops the start with
its line number.
"""

import os
import subprocess

from chatmail_relay import ChatmailRelayTree, chatmail_ini_text
from harness import PUSHSTACK_BIN
from test_metadata_dictd import (ALICE, BOB, DELTACHAT, SERVER_ENTRIES,
                                 FakeTurnHelper)

DICTD = os.path.join(PUSHSTACK_BIN, "metadata-dictd")
NOTIFIERD = os.path.join(PUSHSTACK_BIN, "notifierd")
DOMAIN = "chat.example.org"


def key_lines(text):
    """{key: line number} of the key lines of an ini text."""
    out = {}
    for n, line in enumerate(text.split("\n"), 1):
        s = line.strip()
        if s and s[0] not in "#;[" and "=" in s:
            out[s.split("=", 1)[0].strip()] = n
    return out


def unused_lines(log, path):
    """The "config key not used" lines of one file in a log."""
    return [line for line in log.splitlines()
            if "config key not used" in line and "file=%s " % path in line]


def server_entries(dovecot, user=ALICE):
    with dovecot.imap(user) as c:
        r, md = c.getmetadata("", *SERVER_ENTRIES)
        assert r.status == "OK", r.text
    return md


def test_config_answers_server_entries(dovecot, dictd, tmpdir):
    turn_path = os.path.join(tmpdir, "turn.sock")
    helper = FakeTurnHelper(turn_path)
    # As on a relay: the template, plus what the operator set (cmdeploy
    # appends keys the template lacks); one key nobody knows.
    tree = ChatmailRelayTree(os.path.join(tmpdir, "relay"), DOMAIN,
                             max_user_send_per_minute="80",
                             turn_socket_path=turn_path,
                             some_future_key="1")
    try:
        dictd.restart(extra_args=["--config", tree.ini_path])
        md = server_entries(dovecot)
        # config.py: no iroh_relay -> "https://" + mail_domain;
        # metadata.py: turn -> f"{mail_domain}:3478:{credentials}";
        # maxsmtprecipients is a constant there (1000), appversions a
        # file of chatmaild's package: neither comes from chatmail.ini.
        assert md == {
            DELTACHAT + "irohrelay": b"https://" + DOMAIN.encode(),
            DELTACHAT + "turn": ("%s:3478:%s" % (
                DOMAIN, helper.credentials(1))).encode(),
            DELTACHAT + "maxsmtprecipients": b"1000",
            DELTACHAT + "appversions": None,
        }, md
        log = dictd.log_text()
        assert ("config file=%s mail_domain=%s iroh_relay=https://%s "
                "turn_host=%s turn_socket=%s flags_over_file=none" % (
                    tree.ini_path, DOMAIN, DOMAIN, DOMAIN, turn_path)) \
            in log, log

        # Every key not used: one debug line each, with its line; the
        # used ones (mail_domain, turn_socket_path) none.
        with open(tree.ini_path) as f:
            lines = key_lines(f.read())
        got = unused_lines(log, tree.ini_path)
        want = sorted(
            "line=%d section=params key=%s" % (n, k)
            for k, n in lines.items()
            if k not in ("mail_domain", "turn_socket_path"))
        assert sorted(g.split("file=%s " % tree.ini_path)[1]
                      for g in got) == want, got
        assert any("key=some_future_key" in g for g in got)

        # At the default level, not a line of them.
        dictd.restart(extra_args=["--config", tree.ini_path,
                                  "--log-level", "info"])
        assert len(unused_lines(dictd.log_text(), tree.ini_path)) == \
            len(got)

        # iroh_relay set: that URL; set empty: NIL (chatmaild answers
        # irohrelay only when it is not empty).
        tree.write_ini(turn_socket_path=turn_path,
                       iroh_relay="https://iroh.example.net/")
        dictd.restart(extra_args=["--config", tree.ini_path])
        assert server_entries(dovecot, BOB)[DELTACHAT + "irohrelay"] == \
            b"https://iroh.example.net/"
        tree.write_ini(turn_socket_path=turn_path, iroh_relay="")
        dictd.restart(extra_args=["--config", tree.ini_path])
        md = server_entries(dovecot)
        assert md[DELTACHAT + "irohrelay"] is None, md
        assert md[DELTACHAT + "turn"].startswith(b"%s:3478:" %
                                                 DOMAIN.encode())
    finally:
        helper.stop()


def test_flags_win_over_config(dovecot, dictd, tmpdir):
    turn_path = os.path.join(tmpdir, "turn.sock")
    helper = FakeTurnHelper(turn_path)
    tree = ChatmailRelayTree(os.path.join(tmpdir, "relay"), DOMAIN,
                             turn_socket_path=turn_path)
    try:
        # Before or after --config on the line: the flag wins.
        dictd.restart(extra_args=[
            "--iroh-relay", "https://iroh.flag.example",
            "--config", tree.ini_path,
            "--turn-host", "turn.flag.example"])
        md = server_entries(dovecot)
        assert md[DELTACHAT + "irohrelay"] == b"https://iroh.flag.example"
        # the host from the flag, the helper's socket from the file
        assert md[DELTACHAT + "turn"] == (
            "turn.flag.example:3478:" + helper.credentials(1)).encode()
        assert ("iroh_relay=https://iroh.flag.example "
                "turn_host=turn.flag.example turn_socket=%s "
                "flags_over_file=iroh_relay,turn_host" % turn_path) \
            in dictd.log_text()

        # "" turns an entry off whatever the file says.
        dictd.restart(extra_args=["--config", tree.ini_path,
                                  "--iroh-relay", "", "--turn-host", ""])
        md = server_entries(dovecot)
        assert md[DELTACHAT + "irohrelay"] is None
        assert md[DELTACHAT + "turn"] is None
        assert helper.connections == 1
    finally:
        helper.stop()


def bad_configs(tmpdir):
    """(name, file text or None, expected error) rows: each must stop
    metadata-dictd and notifierd at start."""
    good = chatmail_ini_text(DOMAIN)
    lines = good.split("\n")
    n = key_lines(good)["privacy_mail"]
    no_equals = "\n".join(lines[:n - 1] + ["privacy_mail example.org"] +
                          lines[n:])
    dup = good + "\nmail_domain = other.example.org\n"
    return [
        ("no-equals", no_equals,
         ":%d: expected key = value, [section] or a comment" % n),
        ("duplicate", dup, ":%d: duplicate key mail_domain in [params] "
         "(first on line %d)" % (len(lines) + 1,
                                 key_lines(good)["mail_domain"])),
        ("no-params", good.replace("[params]", "[chatmail]"),
         ": no [params] section"),
        ("key-first", "mail_domain = x\n" + good,
         ":1: key before the first [section]"),
        ("control", good.replace("privacy_pdo =", "privacy_pdo = a\x01b"),
         ":%d: control character 0x01" % key_lines(good)["privacy_pdo"]),
        ("too-large", good + "#" + "x" * 70000,
         ": %d bytes, at most 65536" % (len(good) + 70001)),
        ("missing", None, ": No such file or directory"),
    ]


def test_malformed_config_fails_at_start_with_line(tmpdir):
    sock = os.path.join(tmpdir, "dict.sock")
    for name, text, err in bad_configs(tmpdir):
        path = os.path.join(tmpdir, name + ".ini")
        if text is not None:
            with open(path, "w") as f:
                f.write(text)
        for argv in ([DICTD, "--socket", sock, "--db",
                      os.path.join(tmpdir, "relay.db"), "--config", path],
                     [NOTIFIERD, "--db", os.path.join(tmpdir, "relay.db"),
                      "--config", path]):
            r = subprocess.run(argv, capture_output=True, timeout=10)
            out = r.stderr.decode()
            assert r.returncode == 1, (name, argv[0], r)
            assert ("--config: " + path + err) in out, (name, out)
        assert not os.path.exists(sock), name

    # Values metadata-dictd cannot answer: line-numbered too (notifierd
    # takes none of them, so it does not look at them).
    for text, err in (
            (chatmail_ini_text("{mail_domain}"),
             ":4: mail_domain: expected a domain name"),
            (chatmail_ini_text(DOMAIN, iroh_relay="iroh.example.org"),
             ":%d: iroh_relay: expected an http:// or https:// URL" %
             (len(chatmail_ini_text(DOMAIN).split("\n")) + 1)),
            (chatmail_ini_text(DOMAIN, turn_socket_path="turn.sock"),
             ": turn_socket_path: expected an absolute path")):
        path = os.path.join(tmpdir, "value.ini")
        with open(path, "w") as f:
            f.write(text)
        r = subprocess.run([DICTD, "--socket", sock, "--db",
                            os.path.join(tmpdir, "relay.db"),
                            "--config", path],
                           capture_output=True, timeout=10)
        assert r.returncode == 1 and err in r.stderr.decode(), r
    assert not os.path.exists(sock)


def test_notifierd_takes_the_file_and_uses_none(notifierd_factory, tmpdir):
    tree = ChatmailRelayTree(os.path.join(tmpdir, "relay"), DOMAIN,
                             some_future_key="1")
    n = notifierd_factory(extra_args=["--config", tree.ini_path])
    log = n.log_text()
    with open(tree.ini_path) as f:
        lines = key_lines(f.read())
    got = unused_lines(log, tree.ini_path)
    assert sorted(g.split("file=%s " % tree.ini_path)[1] for g in got) == \
        sorted("line=%d section=params key=%s" % (v, k)
               for k, v in lines.items()), got
    assert "keys=%d (none used by notifierd)" % len(lines) in log
