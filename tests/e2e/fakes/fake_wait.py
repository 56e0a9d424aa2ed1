"""The wait every fake offers its tests (fake_apns, fake_webpush and the
https_fake ones): until `count` requests are recorded, or a predicate on
them holds, woken by the fake's condition variable on every change."""
import time


def wait_for_requests(cond, requests, count=None, pred=None, timeout=10.0,
                      kind=None, timed_out=None):
    """Under `cond` (a threading.Condition the fake notifies on every
    change), wait until `count` requests of requests() (of `kind`, when
    given; default 1) are there and return the first `count`, or until
    pred(requests()) is truthy and return its value. count may be the
    predicate itself. After `timeout` seconds raise timed_out(timeout), an
    exception describing the fake's state."""
    if callable(count):
        count, pred = None, count
    if pred is None:
        n = count if count is not None else 1

        def pred(reqs):
            sel = [r for r in reqs if kind is None or r.kind == kind]
            return sel[:n] if len(sel) >= n else None
    deadline = time.monotonic() + timeout
    with cond:
        while True:
            v = pred(requests())
            if v:
                return v
            left = deadline - time.monotonic()
            if left <= 0:
                raise timed_out(timeout)
            cond.wait(left)
