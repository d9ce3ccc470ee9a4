"""bench/carrylib.py - what bench/carry_process and bench/shadow_faults
share: the invocation protocol's frames (proto/invoke.h), spawning and
reaping ember-vmm processes, and a snapshot that carries its host
connection (docs/snapshots.md) with its working set recorded."""
import atexit, os, socket, statistics, struct, subprocess, sys, time

HDR = struct.Struct("<IBBHIIQ")  # proto/invoke.h: magic, version, type, flags, arg, length, id
READY, INVOKE, RESULT, LOG = 1, 2, 3, 4
REQ = b"hello, ember"

kids = []


@atexit.register
def reap_all():
    for p in kids:
        if p.poll() is None:
            p.kill()
            p.wait()


def frame(typ, arg, rid, payload=b""):
    return HDR.pack(0x46424d45, 1, typ, 0, arg, len(payload), rid) + payload


def recv_exact(s, n):
    b = b""
    while len(b) < n:
        x = s.recv(n - len(b))
        if not x:
            raise EOFError("connection closed")
        b += x
    return b


def until(s, want):
    """Reads frames until one of type `want` (LOG frames skipped)."""
    while True:
        _, _, typ, _, _, ln, _ = HDR.unpack(recv_exact(s, HDR.size))
        payload = recv_exact(s, ln)
        if typ == want:
            return payload
        if typ != LOG:
            raise RuntimeError("unexpected frame type %d" % typ)


def echo(s, rid):
    """One echo invocation over s; returns its round trip in us."""
    t0 = time.monotonic()
    s.sendall(frame(INVOKE, 10000, rid, REQ))
    got = until(s, RESULT)
    t1 = time.monotonic()
    if got != REQ:
        raise RuntimeError("echo returned %r" % got)
    return (t1 - t0) * 1e6


def dial(path, deadline):
    """Connects to a VMM's vsock socket and makes the CONNECT handshake,
    retried until the socket exists."""
    while True:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            s.connect(path)
            s.sendall(b"CONNECT 1024\n")
            line = b""
            while not line.endswith(b"\n"):
                line += recv_exact(s, 1)
            if not line.startswith(b"OK "):
                raise RuntimeError("handshake: %r" % line)
            return s
        except (FileNotFoundError, ConnectionRefusedError, EOFError):
            s.close()
            if time.monotonic() > deadline:
                raise
            time.sleep(0.00002)


def spawn(vmm, args, **kw):
    p = subprocess.Popen([vmm, "-q", "--serial", "none", "--timeout", "30"] + args, **kw)
    kids.append(p)
    return p


def stop(p):
    p.terminate()
    p.wait()
    kids.remove(p)


def control(path, cmd):
    """One command over an ember-vmm --control socket; the reply line."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as c:
        c.connect(path)
        c.sendall(cmd.encode() + b"\n")
        reply = c.makefile("rb").readline().decode().strip()
    if not reply.startswith("OK"):
        raise RuntimeError("%s: %s" % (cmd, reply))
    return reply


def make_carrying_snapshot(vmm, handler, work, snap):
    """The micro guest with `handler`, booted with a control socket: a host
    connects, takes READY and one invocation, then pauses the VM and
    snapshots it into `snap` with the connection idle (so the snapshot
    carries it). Then one carried restore of it records the working set
    (its first invocation's pages) into snap/workingset."""
    sock, ctl = os.path.join(work, "boot.sock"), os.path.join(work, "boot.ctl")
    p = spawn(vmm, ["--micro", "--handler", handler, "--vsock", sock, "--control", ctl])
    s = dial(sock, time.monotonic() + 20)
    until(s, READY)
    echo(s, 1)
    control(ctl, "pause")
    control(ctl, "snapshot " + snap)
    s.close()
    stop(p)

    ctl = os.path.join(work, "ws.ctl")
    mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    p = spawn(vmm, ["--restore", snap, "--vsock-carry-fd", str(theirs.fileno()), "--control", ctl],
              pass_fds=[theirs.fileno()])
    theirs.close()
    echo(mine, 1)
    deadline = time.monotonic() + 20
    while not os.path.exists(ctl) and time.monotonic() < deadline:
        time.sleep(0.001)
    control(ctl, "workingset")
    mine.close()
    stop(p)
    if not os.path.exists(os.path.join(snap, "workingset")):
        sys.exit("no working set recorded in %s" % snap)


def pct(v, p):
    v = sorted(v)
    return v[min(len(v) - 1, int(p / 100.0 * len(v)))]


def stats(v):
    return {"n": len(v), "p50_us": round(statistics.median(v), 1),
            "p99_us": round(pct(v, 99), 1), "min_us": round(min(v), 1)}
