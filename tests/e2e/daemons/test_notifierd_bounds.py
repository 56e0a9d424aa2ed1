"""notifierd past what its peers can throw at it (docs/notifierd.md
"Bounds"), against the fake proxy on 127.0.0.1:

- A proxy that answers 200 with a body far over what notifierd reads
  (1 MiB): the job is delivered, with exactly one POST (before: a
  transport failure, retried, so one push per retry).
- The wake socket is 0660 whatever the umask (before: 0666, so any local
  user could make notifierd work), and a flood of wake-up datagrams costs
  a small share of a core (before: 300,000 datagrams in 5 s took 45 %),
  while jobs are still sent at once.

Each test failed against notifierd before these bounds.
"""
import os
import socket
import stat
import threading
import time

from harness import register_secret, wait_until

ALICE = "alice@example.org"


def apns_token():
    tok = os.urandom(32).hex()
    register_secret(tok)
    return tok


def cpu_seconds(pid):
    """User + system CPU time of the process (all its threads)."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_200_with_a_1mib_body_is_delivered_once(fake_proxy, relay_db,
                                                notifierd_factory):
    """20 jobs, each answered 200 with a 1 MiB body: all delivered, one
    POST each, no transport failure, nothing left to retry."""
    fake_proxy.reply_body = b"x" * (1 << 20)
    toks = [apns_token() for _ in range(20)]
    relay_db.add_jobs(relay_db.add_tokens([(ALICE, t) for t in toks]))
    n = notifierd_factory()
    wait_until(lambda: relay_db.count("queue") == 0, timeout=5.0,
               what="the queue to empty")
    # Retries come after --retry-base (200ms): give one the time to show.
    time.sleep(0.5)  # a negative claim: nothing more may arrive
    assert sorted(fake_proxy.bodies()) == sorted(toks)
    m = n.metrics()
    assert m["notifierd_succeeded_total"] == 20, m
    assert m.get('notifierd_failures_total{reason="transport"}', 0) == 0, m
    assert m["notifierd_retried_total"] == 0, m


def test_wake_socket_0660_under_umask_0(fake_proxy, relay_db,
                                        notifierd_factory):
    """Started under umask 0, the wake socket is 0660 (metadata-dictd
    runs as the same user), and still wakes notifierd."""
    n = notifierd_factory(start=False, poll="1h")
    n.preexec_fn = lambda: os.umask(0)
    n.start()
    mode = stat.S_IMODE(os.stat(n.wake_socket).st_mode)
    assert mode == 0o660, oct(mode)
    relay_db.add_job(relay_db.add_token(ALICE, apns_token()))
    n.wake()
    fake_proxy.wait_for(count=1)


def test_wake_flood_costs_little_cpu(fake_proxy, relay_db,
                                     notifierd_factory):
    """Two threads send wake-up datagrams as fast as the socket takes
    them for 3 s: notifierd uses less than 15 % of a core meanwhile, and
    a job queued during the flood is still sent within a second."""
    n = notifierd_factory(poll="1h", log_level="info")
    stop = threading.Event()
    sent = [0, 0]

    def flood(i):
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
            s.setblocking(False)
            while not stop.is_set():
                try:
                    s.sendto(b"w", n.wake_socket)
                    sent[i] += 1
                except BlockingIOError:
                    time.sleep(0)       # full: yield, then again
                except OSError:
                    return

    threads = [threading.Thread(target=flood, args=(i,)) for i in (0, 1)]
    cpu0, t0 = cpu_seconds(n.proc.pid), time.monotonic()
    for t in threads:
        t.start()
    try:
        time.sleep(1.5)  # the flood's length is what is measured
        tok = apns_token()
        relay_db.add_job(relay_db.add_token(ALICE, tok))
        queued = time.monotonic()
        fake_proxy.wait_for(count=1, timeout=5.0)
        latency = fake_proxy.requests[0].t - queued
        time.sleep(1.5)
    finally:
        stop.set()
        for t in threads:
            t.join()
    share = (cpu_seconds(n.proc.pid) - cpu0) / (time.monotonic() - t0)
    m = n.metrics()
    print("wake flood: %d datagrams sent, %d read, CPU %.1f %%"
          % (sum(sent), m.get("notifierd_wakeups_total", -1), share * 100))
    assert share < 0.15, share
    assert fake_proxy.bodies() == [tok]
    assert latency < 1.0, latency
    assert m["notifierd_wakeups_coalesced_total"] > 0, m
