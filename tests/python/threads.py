"""Threads in a Python handler (tests/integration/python-micro): a thread
pool, a queue and a condition variable; the answer does not depend on the
scheduling. A daemon thread started at initialisation keeps counting
between invocations (the runtime releases the GIL while it waits)."""
import concurrent.futures
import hashlib
import queue
import threading
import time

ticks = 0


def _ticker():
    global ticks
    while True:
        ticks += 1
        time.sleep(0.001)


threading.Thread(target=_ticker, daemon=True).start()


def _digest(i):
    h = hashlib.sha256()
    for k in range(2000):
        h.update(b"%d:%d" % (i, k))
    return i, h.hexdigest()[:16]


def handle(event: bytes) -> bytes:
    if event == b"ticks":
        before = ticks
        time.sleep(0.05)
        return b"ticking" if ticks > before else b"stopped %d" % ticks
    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
        digests = dict(pool.map(_digest, range(8)))
    q = queue.Queue()
    total = [0]
    cond = threading.Condition()

    def consumer():
        while True:
            item = q.get()
            if item is None:
                return
            with cond:
                total[0] += item
                cond.notify_all()

    workers = [threading.Thread(target=consumer) for _ in range(4)]
    for w in workers:
        w.start()
    for n in range(1, 101):
        q.put(n)
    with cond:
        cond.wait_for(lambda: total[0] == 5050, timeout=10)
    for _ in workers:
        q.put(None)
    for w in workers:
        w.join()
    lines = ["%d %s" % kv for kv in sorted(digests.items())]
    lines.append("sum %d threads %d" % (total[0], threading.active_count()))
    return ("\n".join(lines) + "\n").encode()
