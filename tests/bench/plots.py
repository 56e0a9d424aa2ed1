#!/usr/bin/python3
"""PNG charts of the benchmarks' outputs (tests/bench/README.md).

usage: plots.py [DATA_DIR [OUT_DIR]]
       plots.py --run-benches BINDIR [DATA_DIR [BENCH...]]

The first form reads the saved outputs of one run of each bench script,
DATA_DIR/{dictd,notifierd,proxyd,proxyd-redis}.log (default
docs/plots/data), and draws, per bench, into OUT_DIR (default
docs/plots):

  <bench>-throughput.png  rates beside the baseline the script measured
                          in the same run: absolute (left) and as ratios
                          (right; 1.0 and the issue's targets marked);
  <bench>-latency.png     latency percentiles where the bench prints them
                          (notifierd prints a mean only: that, and its CPU
                          per job beside its baseline's);
  proxyd-overload.png     proxyd's overload phases.

It runs no benchmark and takes a few seconds (`make plots`). The PNGs
depend on the logs alone: fixed size and resolution, no time stamp or
software version in their metadata, so drawing again from the same logs
gives the same bytes (a file whose bytes would not change is not
rewritten). A log that is missing or unreadable is reported, its charts
are skipped, and the exit status is 1 once the others are drawn.

The second form (`make bench-logs`, `make plots BENCH=1`) runs the four
bench scripts (or the BENCHes named: dictd, notifierd, proxyd,
proxyd-redis) one after the other with BINDIR's programs and saves each
one's stdout as DATA_DIR/<bench>.log, after a first line

  # bench-log: script=... env="DURATION=3 ..." date=... machine="..." ...

with the knobs it was run with, the date and the machine. stderr goes to
the terminal, stdout too as it comes. A script that fails (exit status not
0) leaves the old log in place and makes this exit 1 once the others ran.
The knobs default to a short run (about four minutes in all); a knob set
in the environment wins.
"""

import io
import os
import platform
import re
import shlex
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))

# bench name: (script, knobs set unless the environment sets them).
BENCHES = {
    "dictd": ("tests/bench/run-dictd-bench.sh", {"DURATION": "3"}),
    "notifierd": ("tests/bench/run-notifierd-bench.sh",
                  {"CONCURRENCY": "64 128 256"}),
    "proxyd": ("tests/bench/run-proxyd-bench.sh", {"DURATION": "3"}),
    "proxyd-redis": ("tests/bench/run-proxyd-redis-bench.sh",
                     {"DURATION": "3"}),
}

# Every knob a script reads (its header's "Environment:"), recorded in the
# log's first line when set.
KNOBS = ("DURATION WARMUP USERS CONNS_LIST JOBS CONCURRENCY DRAIN_TIMEOUT "
         "POOL DEBOUNCE OWED_DEBOUNCE OVERLOAD OVERLOAD_RATE OVERLOAD_CONNS "
         "HAMMER_POOL WORKERS CACHE_SIZE CEILING_SECS ROUNDS REGISTER "
         "WINDOWS REUSE").split()


# ---- running the benches ------------------------------------------------------

def machine():
    """CPU model, CPUs, memory, distribution and kernel, in one phrase."""
    model = platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem = ""
    try:
        with open("/proc/meminfo") as f:
            kib = int(f.readline().split()[1])
        mem = ", %.1f GiB" % (kib / 2**20)
    except (OSError, ValueError, IndexError):
        pass
    dist = ""
    try:
        with open("/etc/os-release") as f:
            osr = dict(l.rstrip("\n").split("=", 1) for l in f if "=" in l)
        dist = ", %s %s" % (osr.get("NAME", "").strip('"').split()[0],
                            osr.get("VERSION_ID", "").strip('"'))
        with open("/etc/debian_version") as f:
            dist = ", Debian " + f.read().strip()
    except OSError:
        pass
    return "%s, %d cpus%s%s, Linux %s" % (model, os.cpu_count() or 0, mem,
                                         dist, platform.release())


def run_benches(bindir, data_dir, names):
    os.makedirs(data_dir, exist_ok=True)
    failed = []
    for name in names:
        script, knobs = BENCHES[name]
        env = dict(os.environ)
        for k, v in knobs.items():
            env.setdefault(k, v)
        knobs_set = " ".join(('%s="%s"' if " " in env[k] else "%s=%s")
                             % (k, env[k]) for k in KNOBS if k in env)
        start = time.time()
        date = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(start))
        print("== plots: %s %s (%s)" % (script, bindir, knobs_set),
              flush=True)
        out = []
        p = subprocess.Popen([os.path.join(REPO, script), bindir], env=env,
                             stdout=subprocess.PIPE, text=True)
        for line in p.stdout:
            sys.stdout.write(line)
            sys.stdout.flush()
            out.append(line)
        rc = p.wait()
        secs = time.time() - start
        if rc != 0:
            print("plots: %s exited %d: %s/%s.log left as it was"
                  % (script, rc, data_dir, name), file=sys.stderr)
            failed.append(name)
            continue
        head = ("# bench-log: script=%s env='%s' date=%s machine='%s' "
                "secs=%.0f\n" % (script, knobs_set.replace("'", ""), date,
                                 machine().replace("'", ""), secs))
        path = os.path.join(data_dir, name + ".log")
        with open(path + ".tmp", "w") as f:
            f.write(head)
            f.writelines(out)
        os.replace(path + ".tmp", path)
        print("== plots: %s written (%.0f s)" % (path, secs), flush=True)
    if failed:
        print("plots: failed: %s" % " ".join(failed), file=sys.stderr)
        return 1
    return 0


# ---- reading the logs -----------------------------------------------------------

def fields(text):
    """The key=value words of a line, as {key: str}."""
    return dict(w.split("=", 1) for w in text.split() if "=" in w)


def num(d, key, default=0.0):
    try:
        return float(d[key])
    except (KeyError, ValueError):
        return default


class Log:
    def __init__(self, path):
        with open(path) as f:
            self.lines = [l.rstrip("\n") for l in f]
        self.meta = {}
        for l in self.lines:
            if l.startswith("# bench-log:"):
                self.meta = dict(w.split("=", 1) for w in
                                 shlex.split(l[len("# bench-log:"):])
                                 if "=" in w)
                break

    def first(self, prefix):
        for l in self.lines:
            if l.startswith(prefix):
                return l
        return ""

    def subtitle(self):
        """The run's date, machine, load and knobs: the charts' second
        line."""
        head = self.first("== ")
        m = re.search(r"(\d{4}-\d\d-\d\d)T(\d\d:\d\d)", head)
        when = "%s %s UTC" % m.groups() if m else \
            self.meta.get("date", "?")
        mach = self.meta.get("machine", "")
        if not mach:
            cpus = fields(head).get("cpus")
            mach = "%s cpus" % cpus if cpus else "machine not recorded"
        mach = re.sub(r", Linux .*", "", mach)
        load = re.search(r"loadavg=([\d.]+)", head)
        text = "run of %s; %s" % (when, mach)
        if load:
            text += "; loadavg %s" % load.group(1)
        if self.meta.get("env"):
            text += "; " + self.meta["env"]
        return text


def after(line, word):
    """The text of line from word on (a tool's own line quoted in the
    script's), or ""."""
    i = line.find(word)
    return line[i:] if i >= 0 else ""


# ---- drawing ---------------------------------------------------------------------

MEASURED = "#3b75af"
SECOND = "#e1812c"
BASELINE = "#9a9a9a"
TARGET = "#c03d3e"
PCT_COLORS = {"p50": "#4c72b0", "p90": "#55a868", "p99": "#dd8452",
              "p99.9": "#c44e52", "max": "#8172b3",
              "200s p50": "#9bb8dc", "200s p99": "#f0c09a",
              "mean": MEASURED}
WIDTH = 11.0
DPI = 100

plt = None


def setup_matplotlib():
    global plt
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot
    plt = matplotlib.pyplot
    matplotlib.rcParams.update({
        "font.family": "DejaVu Sans",
        "font.size": 9,
        "axes.titlesize": 10,
        "figure.dpi": DPI,
        "savefig.dpi": DPI,
        "axes.spines.top": False,
        "axes.spines.right": False,
        "axes.axisbelow": True,
        "path.simplify": False,
        "svg.hashsalt": "plots",
    })


def fmt_rate(v):
    if v >= 1e6:
        return "%.2fM" % (v / 1e6)
    if v >= 1e4:
        return "{:,.0f}".format(v)
    if v >= 100:
        return "{:,.0f}".format(v)
    return "%.3g" % v


def fmt_us(v, _pos=None):
    if v <= 0:
        return "0"
    if v >= 1e6:
        return "%g s" % (v / 1e6)
    if v >= 1e3:
        return "%g ms" % (v / 1e3)
    return "%g µs" % v


def save(fig, path, written):
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None})
    plt.close(fig)
    data = buf.getvalue()
    try:
        with open(path, "rb") as f:
            same = f.read() == data
    except OSError:
        same = False
    if not same:
        with open(path + ".tmp", "wb") as f:
            f.write(data)
        os.replace(path + ".tmp", path)
    written.append((path, same))


def titles(fig, title, log):
    fig.suptitle(title, fontsize=12, fontweight="bold", x=0.01, ha="left")
    fig.supxlabel(log.subtitle(), fontsize=7.5, color="#555555", x=0.01,
                  ha="left")


def fmt_axis_rate(v, _pos=None):
    if v >= 1e6:
        return "%gM" % (v / 1e6)
    if v >= 1e3:
        return "%gk" % (v / 1e3)
    return "%g" % v


def throughput_chart(path, title, log, groups, ratios, unit, written,
                     note="", digits=2):
    """groups: [(group label, [(bar label, value, color)])]; ratios:
    [(label, ratio, target or None)]. Left: the bars, group by group
    (a measurement and its baseline side by side); right: the ratios."""
    rows = sum(len(bars) for _, bars in groups) + len(groups)
    height = max(3.6, 1.4 + 0.26 * rows)
    fig, (ax, axr) = plt.subplots(
        1, 2, figsize=(WIDTH, height), layout="constrained",
        gridspec_kw={"width_ratios": [1.7, 1]})
    titles(fig, title, log)
    # One empty row above each group, for its label.
    y = 0
    ticks, labels, top = [], [], 0.0
    for glabel, bars in groups:
        if glabel:
            ax.text(0.0, y, glabel, transform=ax.get_yaxis_transform(),
                    ha="left", va="center", fontsize=8.5,
                    fontweight="bold")
        y += 1
        for blabel, value, color, *target in bars:
            ax.barh(y, value, height=0.8, color=color)
            text = " " + fmt_rate(value)
            if target:
                ax.plot([target[0]] * 2, [y - 0.5, y + 0.5], color=TARGET,
                        linewidth=2)
                text += "  (target %s)" % fmt_rate(target[0])
                top = max(top, target[0])
            ax.text(max(value, target[0] if target else 0), y, text,
                    va="center", fontsize=8)
            ticks.append(y)
            labels.append(blabel)
            top = max(top, value)
            y += 1
    ax.set_yticks(ticks)
    ax.set_yticklabels(labels)
    ax.set_ylim(y - 0.4, 0.4 if not groups[0][0] else -0.6)
    ax.set_xlim(0, top * 1.25 if top > 0 else 1)
    ax.set_xlabel(unit)
    ax.grid(axis="x", color="#e6e6e6")
    ax.xaxis.set_major_formatter(plt.FuncFormatter(fmt_axis_rate))
    ax.set_title("absolute (same run)", loc="left")

    n = len(ratios)
    for i, (label, r, target) in enumerate(ratios):
        color = MEASURED
        if target is not None and r < target:
            color = TARGET
        axr.barh(i, r, height=0.6, color=color)
        text = " %.*f" % (digits, r)
        if target is not None:
            axr.plot([target, target], [i - 0.4, i + 0.4], color=TARGET,
                     linewidth=2)
            text += "  (target %.2f)" % target
        axr.text(max(r, target or 0), i, text, va="center", fontsize=8.5)
    axr.axvline(1.0, color="#444444", linewidth=0.8, linestyle="--")
    axr.set_yticks(range(n))
    axr.set_yticklabels([r[0] for r in ratios])
    axr.set_ylim(n - 0.5, -0.5)
    hi = max([1.0] + [r[1] for r in ratios] +
             [r[2] for r in ratios if r[2] is not None])
    axr.set_xlim(0, hi * 1.55)
    axr.grid(axis="x", color="#e6e6e6")
    lines = ["ratio to the baseline"]
    if note:
        lines.append("(%s)" % note)
    if any(r[2] is not None for r in ratios):
        lines.append("red: target missed")
    axr.set_title("\n".join(lines), loc="left")
    save(fig, path, written)


def latency_chart(path, title, log, groups, written, pcts, side=None,
                  ylabel="latency (log scale)", log_scale=True):
    """groups: [(label, {pct: us})], bars per pct in pcts (those a group
    lacks are left out); side: an optional function drawing a second
    panel on the axes it gets."""
    height = 4.4
    if side:
        fig, (ax, ax2) = plt.subplots(
            1, 2, figsize=(WIDTH, height), layout="constrained",
            gridspec_kw={"width_ratios": [2.6, 1]})
    else:
        fig, ax = plt.subplots(figsize=(WIDTH, height), layout="constrained")
    titles(fig, title, log)
    width = 0.8 / len(pcts)
    lo, hi = None, None
    for j, pct in enumerate(pcts):
        xs, vs = [], []
        for i, (_, vals) in enumerate(groups):
            v = vals.get(pct)
            if v is not None and v > 0:
                xs.append(i + (j - (len(pcts) - 1) / 2) * width)
                vs.append(v)
        if vs:
            ax.bar(xs, vs, width=width, color=PCT_COLORS.get(pct, "#888888"),
                   label=pct)
            if not log_scale:
                for x, v in zip(xs, vs):
                    ax.text(x, v, fmt_us(round(v, -1) if v > 100 else v),
                            ha="center", va="bottom", fontsize=8)
            lo = min(vs) if lo is None else min(lo, min(vs))
            hi = max(vs) if hi is None else max(hi, max(vs))
    # A log scale only when the values span more than a decade and a half.
    if log_scale and lo and hi / lo < 30:
        log_scale = False
        ylabel = ylabel.replace(" (log scale)", "")
    if log_scale:
        ax.set_yscale("log")
        if lo:
            ax.set_ylim(lo / 2, hi * 2.5)
    elif hi:
        ax.set_ylim(0, hi * 1.25)
    ax.yaxis.set_major_formatter(plt.FuncFormatter(fmt_us))
    ax.set_xticks(range(len(groups)))
    ax.set_xticklabels([g[0] for g in groups], fontsize=8)
    ax.set_xlim(-0.6, len(groups) - 0.4)
    ax.set_ylabel(ylabel)
    ax.grid(axis="y", color="#e6e6e6", which="major")
    if not log_scale:
        ax.yaxis.set_major_locator(plt.MaxNLocator(8, steps=[1, 2, 2.5, 5,
                                                             10]))
    ax.legend(ncol=len(pcts), loc="upper left", fontsize=8, frameon=False)
    if side:
        side(ax2)
    save(fig, path, written)


# ---- metadata-dictd ------------------------------------------------------------

def plot_dictd(log, out, written):
    runs = [fields(l) for l in log.lines if l.startswith("dict-load ")]
    runs = [r for r in runs if r.get("mode") in
            ("baseline", "lookup", "set", "notify")]
    base = next((r for r in runs if r["mode"] == "baseline"), None)
    if not base:
        raise ValueError("no baseline line")
    bconns = base.get("conns", "64")
    bops = num(base, "ops_per_s")
    groups = [("", [("baseline: dict-load's own responder, %s conns"
                     % bconns, bops, BASELINE)])]
    ratios = []
    for mode in ("lookup", "set", "notify"):
        bars = []
        for r in runs:
            if r["mode"] != mode:
                continue
            c = r.get("conns", "?")
            bars.append(("%s, %s conn%s" % (mode, c, "" if c == "1" else "s"),
                         num(r, "ops_per_s"),
                         MEASURED if c == bconns else "#86aed6"))
            if c == bconns and bops > 0:
                ratios.append(("%s, %s conns" % (mode, c),
                               num(r, "ops_per_s") / bops, None))
        groups.append(("", bars))
    throughput_chart(os.path.join(out, "dictd-throughput.png"),
                     "metadata-dictd: dict requests/s (dict-load)", log,
                     groups, ratios, "requests/s", written,
                     note="at %s connections" % bconns, digits=3)

    lat = []
    for r in runs:
        label = "baseline" if r["mode"] == "baseline" else r["mode"]
        c = r.get("conns", "?")
        lat.append(("%s\n%s conn%s" % (label, c, "" if c == "1" else "s"), {
            "p50": num(r, "p50_us"), "p90": num(r, "p90_us"),
            "p99": num(r, "p99_us"), "p99.9": num(r, "p999_us"),
            "max": num(r, "max_us")}))
    latency_chart(os.path.join(out, "dictd-latency.png"),
                  "metadata-dictd: request latency (write to whole reply), "
                  "one request in flight per connection", log, lat,
                  written, ["p50", "p90", "p99", "p99.9", "max"])


# ---- notifierd -----------------------------------------------------------------

def plot_notifierd(log, out, written):
    conc = None
    floods = {}
    for l in log.lines:
        m = re.match(r"== concurrency (\d+): baseline (before|after)", l)
        if m:
            conc = m.groups()
            continue
        if l.startswith("http-flood ") and conc:
            floods[conc] = fields(l)
            conc = None
    sums = [fields(l) for l in log.lines if l.startswith("notifierd-bench ")]
    if not sums:
        raise ValueError("no notifierd-bench line")
    groups, ratios = [], []
    for s in sums:
        c = s.get("concurrency", "?")
        bars = [("notifierd, %s in flight (jobs/s)" % c,
                 num(s, "jobs_per_s"), MEASURED)]
        for when in ("before", "after"):
            f = floods.get((c, when))
            if f:
                bars.append(("http-flood %s (baseline)" % when,
                             num(f, "req_per_s"), BASELINE))
        groups.append(("", bars))
        ratios.append(("%s in flight" % c, num(s, "ratio"), None))
    throughput_chart(os.path.join(out, "notifierd-throughput.png"),
                     "notifierd: %s queued jobs drained into notify-sink"
                     % "{:,.0f}".format(num(sums[0], "jobs")), log,
                     groups, ratios, "jobs/s, requests/s", written,
                     note="mean of before and after")

    def cpu(ax):
        xs = range(len(sums))
        ax.bar([x - 0.2 for x in xs], [num(s, "cpu_us_per_job")
                                       for s in sums],
               width=0.4, color=MEASURED, label="notifierd, per job")
        ax.bar([x + 0.2 for x in xs], [num(s, "baseline_cpu_us_per_req")
                                       for s in sums],
               width=0.4, color=BASELINE, label="http-flood, per request")
        for x, s in zip(xs, sums):
            for dx, k in ((-0.2, "cpu_us_per_job"),
                          (0.2, "baseline_cpu_us_per_req")):
                ax.text(x + dx, num(s, k), "%.1f" % num(s, k),
                        ha="center", va="bottom", fontsize=8)
        ax.set_xticks(list(xs))
        ax.set_xticklabels(["%s in flight" % s.get("concurrency")
                            for s in sums])
        ax.set_ylabel("CPU µs (user + system)")
        ax.set_ylim(0, max(num(s, "cpu_us_per_job") for s in sums) * 1.3)
        ax.legend(fontsize=8, frameon=False, loc="upper left")
        ax.set_title("CPU per job vs the baseline's", loc="left")

    lat = [("%s in flight" % s.get("concurrency"),
            {"mean": num(s, "mean_latency_ms") * 1000}) for s in sums]
    latency_chart(os.path.join(out, "notifierd-latency.png"),
                  "notifierd: mean request time (the bench prints no "
                  "percentiles), and CPU per job", log, lat, written,
                  ["mean"], side=cpu, ylabel="mean request time",
                  log_scale=False)


# ---- proxyd ----------------------------------------------------------------------

def flood_pcts(f):
    """notify-flood's percentiles; those of the 200s alone when some
    answers were not 200 (else they are the same)."""
    pcts = {"p50": num(f, "p50_us"), "p99": num(f, "p99_us")}
    if any(c.split(":")[0] != "200" for c in f.get("codes", "").split(",")
           if c):
        pcts.update({"200s p50": num(f, "ok_p50_us"),
                     "200s p99": num(f, "ok_p99_us")})
    return pcts


def plot_proxyd(log, out, written):
    s = fields(log.first("proxyd-bench "))
    if not s:
        raise ValueError("no proxyd-bench line")
    head = fields(log.first("== proxyd bench:"))
    section = ""
    floods = {}
    windows = None
    overload = []
    window_ms = float(re.sub(r"\D", "", head.get("debounce", "50")) or 50)
    for l in log.lines:
        if l.startswith("== "):
            section = l
            continue
        if l.startswith("flood: notify-flood "):
            if section.startswith("== proxyd: warm pass"):
                floods["flood"] = fields(l)
            elif section.startswith("== proxyd, owed pushes"):
                floods["owed"] = fields(l)
        elif l.startswith("notify-flood ") and \
                section.startswith("== load generator ceiling"):
            floods["ceiling"] = fields(l)
        m = re.match(r"overload (unloaded|\d+x): (.*)flood: (notify-flood .*)",
                     l)
        if m:
            overload.append((m.group(1), fields(m.group(3))))
        m = re.match(r"windows under load: .*median ([\d.]+) ms, shortest "
                     r"([\d.]+) ms, p99 ([\d.]+) ms; flood: (notify-flood .*)",
                     l)
        if m:
            windows = ([float(x) * 1000 for x in m.groups()[:3]],
                       fields(m.group(4)))
        m = re.search(r"if every window held (\d+) ms", l)
        if m:
            window_ms = float(m.group(1))

    notify = num(s, "notify_per_s")
    groups = [
        ("OpenPGP, one core", [
            ("token decryptions/s, uncached", num(s, "decrypt_per_s"),
             MEASURED),
            ("X25519 derives/s (baseline)", num(s, "x25519_per_s"),
             BASELINE)]),
        ("/notify, warm cache", [
            ("pushes/s reaching apns-sink", notify, MEASURED, 30000),
            ("load generator alone: notify-flood into notify-sink",
             num(s, "flood_ceiling_per_s"), BASELINE),
            ("apns-sink alone: h2load (mean of before, after)",
             num(s, "sink_ceiling_per_s"), BASELINE)]),
        ("owed pushes (window 2 s)", [
            ("/notify answered 200/s, owed", num(s, "owed_ok_per_s"),
             SECOND),
            ("/notify answered 200/s, window 50 ms (baseline)",
             num(s, "ok_per_s"), BASELINE)]),
    ]
    ratios = [
        ("decryptions / X25519", num(s, "decrypt_ratio"), 0.80),
        ("pushes / load generator ceiling",
         notify / num(s, "flood_ceiling_per_s", 1) if
         num(s, "flood_ceiling_per_s") else 0, None),
        ("pushes / apns-sink ceiling", num(s, "sink_ratio"), None),
        ("owed 200s / plain 200s", num(s, "owed_ratio"), 0.90),
    ]
    if "hammer_per_s" in s:
        groups.append(("windows under load", [
            ("pushes/s, each token asked again within its window",
             num(s, "hammer_per_s"), SECOND),
            ("one per token per window (ideal)",
             num(s, "hammer_ideal_per_s"), BASELINE)]))
        ratios.append(("pushes / one per window", num(s, "hammer_ratio"),
                       0.80))
    throughput_chart(os.path.join(out, "proxyd-throughput.png"),
                     "proxyd: decryption, /notify to a fake APNs, owed "
                     "pushes, windows (pool %s, %s in flight)"
                     % ("{:,.0f}".format(num(s, "pool")),
                        head.get("concurrency", "?")),
                     log, groups, ratios, "per second", written)

    if overload:
        unloaded = num(s, "overload_unloaded_per_s")
        ogroups, oratios = [], []
        for name, f in overload:
            key = "overload_%s" % name
            pushes = num(s, key + "_per_s") if name != "unloaded" else \
                unloaded
            bars = []
            if name != "unloaded":
                bars.append(("%s: offered /notify/s" % name,
                             num(f, "started_per_s"), BASELINE))
                codes = dict(c.split(":") for c in
                             f.get("codes", "").split(",") if ":" in c)
                secs = num(f, "secs", 1) or 1
                shed = sum(int(v) for k, v in codes.items() if k != "200")
                bars.append(("%s: answered 503/429 per s" % name,
                             shed / secs, "#d9a3a3"))
            bars.append(("%s: pushes/s reaching apns-sink" % name, pushes,
                         MEASURED if name != "unloaded" else "#86aed6"))
            ogroups.append(("", bars))
            if name != "unloaded":
                oratios.append(("%s offered" % name,
                                num(s, key + "_ratio"), 0.80))
        throughput_chart(os.path.join(out, "proxyd-overload.png"),
                         "proxyd overload: APNs limited, 1x/4x/8x its "
                         "unloaded rate offered (notify-flood --rate, "
                         "16 clients)", log, ogroups, oratios,
                         "per second", written,
                         note="pushes / unloaded pushes")

    lat = []
    names = [("ceiling", "load generator\nalone"),
             ("flood", "flood\n(window 50 ms)"),
             ("owed", "owed pushes\n(window 2 s)")]
    for key, label in names:
        if key in floods:
            lat.append((label, flood_pcts(floods[key])))
    for name, f in overload:
        lat.append(("overload\n%s" % name, flood_pcts(f)))
    if windows:
        lat.append(("windows\nunder load", flood_pcts(windows[1])))

    def gaps(ax):
        if not windows:
            ax.axis("off")
            return
        vals = windows[0]
        ax.bar(range(3), vals, color=[SECOND, "#f0c09a", SECOND],
               width=0.6)
        for i, v in enumerate(vals):
            ax.text(i, v, "%.1f ms" % (v / 1000), ha="center",
                    va="bottom", fontsize=8)
        ax.axhline(window_ms * 1000, color=TARGET, linewidth=1,
                   linestyle="--")
        ax.text(2.45, window_ms * 1000, "window %g ms" % window_ms,
                color=TARGET, fontsize=7.5, ha="right", va="bottom")
        ax.set_xticks(range(3))
        ax.set_xticklabels(["median", "shortest", "p99"])
        ax.set_ylim(0, max(vals + [window_ms * 1000]) * 1.25)
        ax.yaxis.set_major_formatter(plt.FuncFormatter(fmt_us))
        ax.set_title("windows under load: time between\ntwo pushes of a "
                     "device at the sink", loc="left")

    latency_chart(os.path.join(out, "proxyd-latency.png"),
                  "proxyd: /notify latency at notify-flood (send to "
                  "answer's last byte)", log, lat, written,
                  ["p50", "p99", "200s p50", "200s p99"], side=gaps)


# ---- proxyd with Redis ----------------------------------------------------------

def plot_proxyd_redis(log, out, written):
    s = fields(log.first("proxyd-redis-bench "))
    if not s:
        raise ValueError("no proxyd-redis-bench line")
    head = fields(log.first("== proxyd redis bench:"))
    rounds, reuse = [], []
    last = None
    for l in log.lines:
        m = re.match(r"([ab])(\d+) (embedded|redis): (\d+) /notify/s, "
                     r"(\d+) pushes/s", l)
        if m:
            last = {"name": m.group(1) + m.group(2), "mode": m.group(3),
                    "push": float(m.group(5))}
            rounds.append(last)
            continue
        m = re.match(r"round (\d+) (embedded|redis) x(\d+): (\d+) /notify/s, "
                     r"(\d+) pushes/s", l)
        if m:
            last = {"round": m.group(1), "mode": m.group(2),
                    "n": m.group(3), "notify": float(m.group(4))}
            reuse.append(last)
            continue
        if l.strip().startswith("flood: notify-flood ") and last is not None:
            last["flood"] = fields(l.strip())
            last = None

    groups = []
    for i in range(0, len(rounds) - 1, 2):
        a, b = rounds[i], rounds[i + 1]
        groups.append(("", [
            ("round %s: (a) embedded state, pushes/s" % a["name"][1:],
             a["push"], BASELINE),
            ("round %s: (b) --redis, pushes/s" % b["name"][1:], b["push"],
             MEASURED)]))
    groups.append(("", [
        ("all rounds: (a) embedded state", num(s, "embedded_per_s"),
         BASELINE),
        ("all rounds: (b) --redis", num(s, "redis_per_s"), MEASURED)]))
    ratios = []
    for i in range(0, len(rounds) - 1, 2):
        a, b = rounds[i], rounds[i + 1]
        ratios.append(("round %s: b/a" % a["name"][1:],
                       b["push"] / a["push"] if a["push"] else 0, None))
    ratios.append(("all rounds: b/a", num(s, "redis_ratio"), 0.70))
    for mode in ("embedded", "redis"):
        if "reuse_%s_ratio" % mode not in s:
            continue
        groups.append(("", [
            ("%s: one proxyd, /notify/s" % mode,
             num(s, "reuse_%s_1_per_s" % mode), BASELINE),
            ("%s: two on one --reuse-port port" % mode,
             num(s, "reuse_%s_2_per_s" % mode),
             MEASURED if mode == "redis" else SECOND)]))
        ratios.append(("%s: two instances / one" % mode,
                       num(s, "reuse_%s_ratio" % mode), None))
    if num(s, "flood_ceiling_per_s"):
        groups.append(("", [("load generator alone: notify-flood into "
                             "notify-sink", num(s, "flood_ceiling_per_s"),
                             "#c8c8c8")]))
    throughput_chart(os.path.join(out, "proxyd-redis-throughput.png"),
                     "proxyd with --redis vs its embedded state; one vs "
                     "two instances (pool %s, %s in flight)"
                     % ("{:,.0f}".format(num(s, "pool")),
                        head.get("concurrency", "?")),
                     log, groups, ratios, "per second", written)

    lat = []
    for r in rounds:
        if "flood" in r:
            lat.append(("%s\n%s" % (r["name"], r["mode"]),
                        flood_pcts(r["flood"])))
    for r in reuse:
        if "flood" in r:
            lat.append(("x%s %s\nround %s" % (
                r["n"], "emb." if r["mode"] == "embedded" else r["mode"],
                r["round"]),
                        flood_pcts(r["flood"])))

    def cpu(ax):
        vals = [("proxyd,\nembedded", num(s, "embedded_cpu_s_per_kpush"),
                 BASELINE),
                ("proxyd,\n--redis", num(s, "redis_cpu_s_per_kpush"),
                 MEASURED),
                ("redis-server", num(s, "redis_server_cpu_s_per_kpush"),
                 SECOND)]
        for i, (_, v, c) in enumerate(vals):
            ax.bar(i, v * 1000, color=c, width=0.6)
            ax.text(i, v * 1000, "%.1f" % (v * 1000), ha="center",
                    va="bottom", fontsize=8)
        ax.set_xticks(range(len(vals)))
        ax.set_xticklabels([v[0] for v in vals], fontsize=8)
        ax.set_ylabel("CPU µs per push")
        ax.set_ylim(0, max(v[1] for v in vals) * 1000 * 1.3 or 1)
        ax.set_title("CPU per push", loc="left")

    latency_chart(os.path.join(out, "proxyd-redis-latency.png"),
                  "proxyd with Redis: /notify latency at notify-flood, "
                  "round by round", log, lat, written,
                  ["p50", "p99"], side=cpu)


PLOTTERS = {"dictd": plot_dictd, "notifierd": plot_notifierd,
            "proxyd": plot_proxyd, "proxyd-redis": plot_proxyd_redis}


def draw(data_dir, out_dir):
    setup_matplotlib()
    os.makedirs(out_dir, exist_ok=True)
    written, problems = [], 0
    for name, plot in PLOTTERS.items():
        path = os.path.join(data_dir, name + ".log")
        if not os.path.exists(path):
            print("plots: %s: missing, its charts skipped" % path,
                  file=sys.stderr)
            problems += 1
            continue
        try:
            plot(Log(path), out_dir, written)
        except (ValueError, KeyError, IndexError, ZeroDivisionError) as e:
            print("plots: %s: cannot read it: %s" % (path, e),
                  file=sys.stderr)
            problems += 1
    for path, same in written:
        print("plots: %s%s" % (path, " (unchanged)" if same else ""))
    return 1 if problems else 0


def main(argv):
    if len(argv) >= 3 and argv[1] == "--run-benches":
        names = argv[4:] or list(BENCHES)
        if any(n not in BENCHES for n in names):
            print("plots: benches: %s" % " ".join(BENCHES), file=sys.stderr)
            return 2
        return run_benches(os.path.abspath(argv[2]), argv[3] if len(argv) > 3
                           else os.path.join(REPO, "docs/plots/data"), names)
    if len(argv) > 3 or (len(argv) > 1 and argv[1].startswith("-")):
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        return 2
    data = argv[1] if len(argv) > 1 else os.path.join(REPO, "docs/plots/data")
    out = argv[2] if len(argv) > 2 else os.path.join(REPO, "docs/plots")
    return draw(data, out)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
