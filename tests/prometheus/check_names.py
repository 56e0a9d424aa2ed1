#!/usr/bin/env python3
"""Every metric the alert rules and the dashboard use is one a daemon has.

The daemons' metrics are read from the C sources: every call of
metrics_counter(), metrics_gauge(), metrics_histogram() and
metrics_counter_labeled() with a literal name, rendered as common/metrics.c
renders it (counters NAME_total, histograms NAME_bucket, NAME_sum,
NAME_count). Each must have HELP text. With --scrape BINDIR the three
daemons are also started from BINDIR and their /metrics compared with
that list, which checks the reading of the sources.

The rules and the dashboard: every metric name in an expression (rules'
expr, the dashboard's targets and template queries) must be one of those
or Prometheus's own `up`. The rules must give every alert a severity,
a summary and a description, and the unit tests must show every alert
both firing and quiet.

    tests/prometheus/check_names.py [--scrape BINDIR]

Exit status 0, or 1 with one line per problem.
"""

import argparse
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
SOURCE_DIRS = ("common", "metadata-dictd", "notifierd", "proxyd")
RULES = os.path.join(ROOT, "deploy/prometheus/chatmail-push.rules.yml")
RULES_TEST = os.path.join(ROOT, "tests/prometheus/chatmail-push.rules.test.yml")
DASHBOARD = os.path.join(ROOT, "deploy/grafana/chatmail-push.json")
# Series Prometheus makes itself: per target, and of its alerts.
PROMETHEUS_NAMES = {"up", "ALERTS"}
SEVERITIES = {"critical", "warning", "info"}

STRING = r'"(?:[^"\\\n]|\\.)*"'
STRINGS = r'(?:%s\s*)+' % STRING
REGISTER = re.compile(
    r'\bmetrics_(counter_labeled|counter|gauge|histogram)\s*\(\s*'
    r'[^,()]+,\s*(' + STRINGS + r'),\s*(' + STRINGS + r'|[A-Za-z_]\w*)')
SUFFIXES = {"counter": ("_total",), "gauge": ("",),
            "histogram": ("_bucket", "_sum", "_count")}


def c_string(text):
    """The value of adjacent C string literals (no escapes but \\")."""
    return "".join(m.group(0)[1:-1].replace('\\"', '"')
                   for m in re.finditer(STRING, text))


def source_metrics():
    """{rendered name: (kind, base name, help, file)} and problems."""
    found, problems = {}, []
    for top in SOURCE_DIRS:
        for dirpath, _, files in os.walk(os.path.join(ROOT, top)):
            for f in sorted(files):
                if not f.endswith(".c"):
                    continue
                path = os.path.join(dirpath, f)
                rel = os.path.relpath(path, ROOT)
                text = open(path, encoding="utf-8").read()
                for m in REGISTER.finditer(text):
                    kind = m.group(1).replace("counter_labeled", "counter")
                    name = c_string(m.group(2))
                    help_arg = m.group(3)
                    if help_arg.startswith('"'):
                        help_text = c_string(help_arg)
                    else:
                        d = re.search(r'\b%s\s*=\s*(%s);' % (
                            re.escape(help_arg), STRINGS), text)
                        if d is None:
                            problems.append("%s: %s: HELP is %s, not found "
                                            "in the file" % (rel, name,
                                                             help_arg))
                            continue
                        help_text = c_string(d.group(1))
                    if not help_text.strip():
                        problems.append("%s: %s has no HELP text"
                                        % (rel, name))
                    for suffix in SUFFIXES[kind]:
                        full = name + suffix
                        old = found.get(full)
                        if old is not None and old[0] != kind:
                            problems.append("%s: %s is a %s in %s and a %s "
                                            "here" % (rel, full, old[0],
                                                      old[3], kind))
                        found.setdefault(full, (kind, name, help_text, rel))
    if not found:
        problems.append("no metric registration found under %s"
                        % ", ".join(SOURCE_DIRS))
    return found, problems


# ---- metric names in PromQL -------------------------------------------------

KEYWORDS = {"and", "or", "unless", "by", "without", "on", "ignoring",
            "group_left", "group_right", "bool", "offset", "inf", "nan",
            "atan2"}


def promql_names(expr):
    """The metric names an expression selects (an approximation of the
    grammar that is exact for selectors written as name{...}[...])."""
    # label_values(metric, label): only the first argument is a series
    expr = re.sub(r'label_values\s*\(\s*([^,()]*(?:\{[^}]*\})?)\s*,[^)]*\)',
                  r'(\1)', expr)
    expr = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`', '""',
                  expr)
    expr = re.sub(r'\{[^}]*\}', ' ', expr)
    expr = re.sub(r'\[[^\]]*\]', ' ', expr)
    expr = re.sub(r'\b(by|without|on|ignoring|group_left|group_right)'
                  r'\s*\([^)]*\)', ' ', expr)
    expr = re.sub(r'\$\{[^}]*\}|\$\w+', ' ', expr)
    names = set()
    for m in re.finditer(r'(?<![\w.])([A-Za-z_:][\w:]*)(?!\w)(\s*\()?',
                         expr):
        word = m.group(1)
        if m.group(2) or word.lower() in KEYWORDS:
            continue
        names.add(word)
    return names


def rules_exprs(problems):
    """[(where, expr)] of the rules; checks their labels and annotations."""
    doc = yaml.safe_load(open(RULES, encoding="utf-8"))
    out, alerts = [], []
    for group in doc.get("groups", []):
        for rule in group.get("rules", []):
            name = rule.get("alert") or rule.get("record")
            out.append(("rules %s" % name, rule["expr"]))
            if "alert" not in rule:
                continue
            alerts.append(name)
            if rule.get("labels", {}).get("severity") not in SEVERITIES:
                problems.append("rules %s: severity is not one of %s"
                                % (name, ", ".join(sorted(SEVERITIES))))
            ann = rule.get("annotations", {})
            for key in ("summary", "description"):
                if not str(ann.get(key, "")).strip():
                    problems.append("rules %s: no %s" % (name, key))
            if "for" not in rule:
                problems.append("rules %s: no for:" % name)
    return out, alerts


def check_tests(alerts, problems):
    """Every alert is tested firing and tested quiet."""
    doc = yaml.safe_load(open(RULES_TEST, encoding="utf-8"))
    firing, quiet = set(), set()
    for test in doc.get("tests", []):
        for case in test.get("alert_rule_test", []) or []:
            (firing if case.get("exp_alerts") else quiet).add(
                case["alertname"])
    for name in alerts:
        if name not in firing:
            problems.append("tests: %s is never tested firing" % name)
        if name not in quiet:
            problems.append("tests: %s is never tested quiet" % name)
    for name in (firing | quiet) - set(alerts):
        problems.append("tests: %s is not an alert of the rules" % name)


def dashboard_exprs(problems):
    try:
        doc = json.load(open(DASHBOARD, encoding="utf-8"))
    except (OSError, ValueError) as e:
        problems.append("dashboard: %s" % e)
        return []
    out = []

    def panels(items):
        for p in items:
            yield p
            yield from panels(p.get("panels", []))

    for p in panels(doc.get("panels", [])):
        for t in p.get("targets", []):
            if "expr" in t:
                out.append(("dashboard panel %r" % p.get("title"),
                            t["expr"]))
    for v in doc.get("templating", {}).get("list", []):
        if v.get("type") == "query":
            q = v.get("query")
            q = q.get("query") if isinstance(q, dict) else q
            out.append(("dashboard variable %s" % v.get("name"), q))
    if not out:
        problems.append("dashboard: no expression found")
    return out


# ---- --scrape ---------------------------------------------------------------

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def scrape(url, deadline):
    while True:
        try:
            with urllib.request.urlopen(url, timeout=1) as r:
                return r.read().decode()
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def scraped_names(bindir):
    """{daemon: set of sample names} from the three daemons' /metrics."""
    tmp = tempfile.mkdtemp(prefix="check-names-")
    ports = {d: free_port() for d in ("metadata-dictd", "notifierd",
                                      "proxyd")}
    db = os.path.join(tmp, "relay.db")
    argv = {
        "metadata-dictd": ["--socket", os.path.join(tmp, "dict.sock"),
                           "--db", db],
        "notifierd": ["--db", db, "--proxy-url",
                      "http://127.0.0.1:%d/notify" % free_port()],
        "proxyd": ["--openpgp-keyring-path", os.path.join(
            ROOT, "tests/data/openpgp/keyring-v6.asc"),
            "--port", str(free_port()), "--db", os.path.join(tmp, "p.db")],
    }
    procs, out = [], {}
    try:
        for d in ("metadata-dictd", "notifierd", "proxyd"):
            log = open(os.path.join(tmp, d + ".log"), "w")
            procs.append(subprocess.Popen(
                [os.path.join(bindir, d)] + argv[d] +
                ["--metrics", "127.0.0.1:%d" % ports[d]],
                stdout=log, stderr=log))
            if d == "metadata-dictd":	# notifierd opens its database
                sock = os.path.join(tmp, "dict.sock")
                deadline = time.monotonic() + 5
                while not os.path.exists(sock):
                    if time.monotonic() > deadline:
                        raise RuntimeError("metadata-dictd did not start")
                    time.sleep(0.02)
        deadline = time.monotonic() + 5
        for d in ports:
            text = scrape("http://127.0.0.1:%d/metrics" % ports[d], deadline)
            out[d] = {line.split("{")[0].split(" ")[0]
                      for line in text.splitlines()
                      if line and not line.startswith("#")}
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scrape", metavar="BINDIR",
                    help="also compare with the daemons' /metrics")
    ap.add_argument("--list", action="store_true",
                    help="print the metrics found in the sources")
    args = ap.parse_args()

    known, problems = source_metrics()
    if args.list:
        for name in sorted(known):
            kind, _, help_text, rel = known[name]
            print("%-45s %-9s %-32s %s" % (name, kind, rel, help_text))

    if args.scrape:
        scraped = scraped_names(args.scrape)
        every = set().union(*scraped.values())
        for name in sorted(every - set(known)):
            problems.append("scrape: %s is served but not found in the "
                            "sources" % name)
        # Families met at run time (labeled counters) and Redis's appear
        # only once used; everything else must be there.
        lazy = {n for n, (kind, base, _, rel) in known.items()
                if base in ("notification_failures", "notify_shed") or
                rel.startswith("proxyd/state/state_redis")}
        for name in sorted(set(known) - every - lazy):
            problems.append("scrape: %s is in the sources but no daemon "
                            "served it" % name)

    exprs, alerts = rules_exprs(problems)
    check_tests(alerts, problems)
    exprs += dashboard_exprs(problems)
    used = set()
    for where, expr in exprs:
        names = promql_names(expr or "")
        if not names:
            problems.append("%s: no metric in %r" % (where, expr))
        for name in sorted(names - set(known) - PROMETHEUS_NAMES):
            problems.append("%s: %s is no daemon's metric" % (where, name))
        used |= names

    for p in problems:
        print("check_names: " + p, file=sys.stderr)
    if not problems:
        print("check_names: %d metrics in the sources%s, %d of them used by %d "
              "expressions, %d alerts tested firing and quiet: ok"
              % (len(known), ", matching the daemons' /metrics"
                 if args.scrape else "", len(used & set(known)), len(exprs),
                 len(alerts)))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
