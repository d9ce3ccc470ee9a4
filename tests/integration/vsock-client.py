#!/usr/bin/env python3
"""Host-side client for Ember's hybrid vsock (docs/vsock.md), used by the
tests/integration/vsock-* scripts and bench/vsock. Not a test itself (not
executable: tests/run.sh runs only executables); run it with python3.

  vsock-client.py SOCK multi N BYTES   N concurrent echo streams, byte-exact
  vsock-client.py SOCK refused PORT    CONNECT to a port nobody listens on:
                                       the socket must close promptly
  vsock-client.py SOCK listen PORT     accept the guest's connection on
                                       SOCK_PORT, check its greeting + echo
  vsock-client.py SOCK kill PORT       stream until killed (SIGKILL it)
  vsock-client.py SOCK bench PORT      throughput and round-trip latency (JSON)
Exit status 0 = as expected, 1 = not.
"""
import hashlib
import json
import os
import socket
import sys
import threading
import time


def dial(path, port, timeout=10.0):
    """Connects through the CONNECT/OK handshake; returns the socket."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.connect(path)
    s.sendall(b"CONNECT %d\n" % port)
    line = b""
    while not line.endswith(b"\n"):
        b = s.recv(1)
        if not b:
            raise ConnectionError("closed during handshake (got %r)" % line)
        line += b
        if len(line) > 32:
            raise ConnectionError("bad handshake reply %r" % line)
    if not line.startswith(b"OK "):
        raise ConnectionError("bad handshake reply %r" % line)
    int(line[3:-1])
    return s


def dial_retry(path, port, deadline_s=20.0):
    """The guest may not listen yet right after boot: retry until ready."""
    end = time.monotonic() + deadline_s
    while True:
        try:
            return dial(path, port)
        except (ConnectionError, OSError):
            if time.monotonic() > end:
                raise
            time.sleep(0.1)


def echo_stream(path, port, nbytes, seed, results, idx):
    """Sends nbytes of pseudo-random data, reads the echo, compares."""
    try:
        s = dial_retry(path, port)
        s.settimeout(60)
        data = hashlib.shake_256(b"%d" % seed).digest(nbytes) if nbytes <= (1 << 20) \
            else os.urandom(nbytes)
        want = hashlib.sha256(data).hexdigest()
        got = hashlib.sha256()
        count = [0]

        def reader():
            while count[0] < nbytes:
                b = s.recv(1 << 16)
                if not b:
                    break
                got.update(b)
                count[0] += len(b)

        t = threading.Thread(target=reader)
        t.start()
        s.sendall(data)
        t.join(120)
        s.close()
        results[idx] = count[0] == nbytes and got.hexdigest() == want
        if not results[idx]:
            print("stream %d: %d of %d bytes, match=%s" %
                  (idx, count[0], nbytes, got.hexdigest() == want))
    except Exception as e:  # noqa: BLE001 - report any failure
        print("stream %d: %r" % (idx, e))
        results[idx] = False


def cmd_multi(path, n, nbytes):
    results = [None] * n
    threads = [threading.Thread(target=echo_stream,
                                args=(path, 1234, nbytes, i, results, i))
               for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(180)
    ok = all(r is True for r in results)
    print("%d streams of %d bytes: %s" % (n, nbytes, "ok" if ok else "FAIL"))
    return ok


def cmd_refused(path, port):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(5)
    s.connect(path)
    t0 = time.monotonic()
    s.sendall(b"CONNECT %d\n" % port)
    try:
        b = s.recv(64)
    except ConnectionResetError:
        b = b""
    ms = (time.monotonic() - t0) * 1000
    print("refused: recv=%r after %.1f ms" % (b, ms))
    # Promptly: the guest's RST, not the 2 s handshake deadline.
    return b == b"" and ms < 1000


def cmd_listen(path, port):
    lpath = "%s_%d" % (path, port)
    ls = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    ls.bind(lpath)
    ls.listen(4)
    ls.settimeout(30)
    print("listening on %s" % lpath, flush=True)
    c, _ = ls.accept()
    c.settimeout(10)
    greeting = b""
    while not greeting.endswith(b"\n"):
        b = c.recv(1)
        if not b:
            break
        greeting += b
    print("greeting: %r" % greeting)
    msg = b"ping from the host\n"
    c.sendall(msg)
    back = b""
    while len(back) < len(msg):
        b = c.recv(64)
        if not b:
            break
        back += b
    print("echo: %r" % back)
    return greeting == b"hello from vsock-echo\n" and back == msg


def cmd_kill(path, port):
    """Streams without reading the echo until killed (the caller SIGKILLs
    it): the VMM must survive a peer that vanishes with data in flight."""
    s = dial_retry(path, port)
    s.settimeout(None)
    print("streaming", flush=True)
    chunk = os.urandom(1 << 16)
    while True:
        s.sendall(chunk)


def cmd_bench(path, port):
    s = dial_retry(path, port)
    s.settimeout(60)
    # Round trip: one byte, echoed.
    lat = []
    for _ in range(2000):
        t0 = time.perf_counter_ns()
        s.sendall(b"x")
        if s.recv(1) != b"x":
            return False
        lat.append((time.perf_counter_ns() - t0) / 1000.0)
    lat.sort()
    # Throughput: stream through the echo guest, both directions at once.
    total = 64 << 20
    chunk = os.urandom(1 << 16)
    got = [0]

    def reader():
        while got[0] < total:
            b = s.recv(1 << 18)
            if not b:
                break
            got[0] += len(b)

    t = threading.Thread(target=reader)
    t0 = time.monotonic()
    t.start()
    for _ in range(total // len(chunk)):
        s.sendall(chunk)
    t.join(300)
    secs = time.monotonic() - t0
    s.close()
    res = {
        "echo_bytes": total,
        "echo_seconds": round(secs, 3),
        "throughput_MBps": round(total / secs / 1e6, 1),
        "rtt_us_p50": round(lat[len(lat) // 2], 1),
        "rtt_us_p99": round(lat[int(len(lat) * 0.99)], 1),
        "rtt_samples": len(lat),
    }
    print(json.dumps(res))
    return got[0] == total


def main():
    if len(sys.argv) < 3:
        print(__doc__)
        return 2
    path, cmd = sys.argv[1], sys.argv[2]
    args = [int(a) for a in sys.argv[3:]]
    fn = {"multi": cmd_multi, "refused": cmd_refused, "listen": cmd_listen,
          "kill": cmd_kill, "bench": cmd_bench}.get(cmd)
    if not fn:
        print(__doc__)
        return 2
    return 0 if fn(path, *args) else 1


if __name__ == "__main__":
    sys.exit(main())
