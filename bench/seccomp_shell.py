#!/usr/bin/env python3
"""bench/seccomp_shell.py - the pooled path with and without --seccomp
(bench/seccomp runs it; docs/seccomp.md).

A shell is what emberd keeps ready: `ember-vmm --shell --control-fd FD`
with its VM created. Spawning it, compiling the filters and loading the
control thread's first list happen before the cold start, so only what
follows the restore command is timed here: the restore command sent (the
snapshot's state and memory fds and a listening vsock socket attached) to
"OK restored", and to the first RESULT of an echo invocation made with
ember-invoke through that socket (its exec is in both arms alike). The two
arms alternate, one shell at a time.

  seccomp_shell.py VMM INVOKE SNAPDIR RUNS OUT.json
"""
import atexit, json, os, shutil, socket, statistics, subprocess, sys, tempfile, time

vmm, invoke, snap, runs, out = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5]
work = tempfile.mkdtemp(prefix="ember-seccomp-shell.")
atexit.register(shutil.rmtree, work, True)  # the sockets and the request
req = os.path.join(work, "req")
with open(req, "w") as f:
    f.write("hello, ember")


def one(flag, i):
    ctl, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    p = subprocess.Popen([vmm, "-q", flag, "--shell", "--control-fd", str(theirs.fileno())],
                         pass_fds=[theirs.fileno()], stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE)
    theirs.close()
    try:
        ctl.settimeout(30)
        ready = ctl.recv(4096).decode()
        if not ready.startswith("READY"):
            raise RuntimeError("shell said %r" % ready)
        path = os.path.join(work, "v%d.sock" % i)
        lis = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        lis.bind(path)
        lis.listen(8)
        st = os.open(os.path.join(snap, "state"), os.O_RDONLY)
        mem = os.open(os.path.join(snap, "memory"), os.O_RDONLY)
        t0 = time.monotonic()
        socket.send_fds(ctl, [b"restore state=0 memory=1 vsock=2"], [st, mem, lis.fileno()])
        reply = ctl.recv(4096).decode()
        t1 = time.monotonic()
        if reply != "OK restored":
            raise RuntimeError("restore: %r" % reply)
        r = subprocess.run([invoke, "--vsock", path, "--input", req], capture_output=True, timeout=30)
        t2 = time.monotonic()
        if r.returncode != 0 or r.stdout != b"hello, ember":
            raise RuntimeError("invoke: %d %r %r" % (r.returncode, r.stdout, r.stderr))
        os.close(st)
        os.close(mem)
        lis.close()
        return (t1 - t0) * 1e6, (t2 - t0) * 1e6
    finally:
        ctl.close()  # the VMM stops when its controller goes away
        try:
            p.wait(timeout=30)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


res = {"on": [], "off": []}
for i in range(runs):
    for arm in (("on", "off") if i % 2 == 0 else ("off", "on")):
        res[arm].append(one("--seccomp" if arm == "on" else "--no-seccomp", 2 * i + (arm == "on")))


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100.0 * (len(xs) - 1))))]


summary = {}
for arm, v in res.items():
    ok = [a for a, _ in v]
    first = [b for _, b in v]
    summary[arm] = {"n": len(v),
                    "restore_to_ok_p50_us": round(statistics.median(ok), 1),
                    "restore_to_ok_p99_us": round(pct(ok, 99), 1),
                    "restore_to_result_p50_us": round(statistics.median(first), 1),
                    "restore_to_result_p99_us": round(pct(first, 99), 1)}
json.dump(summary, open(out, "w"), indent=1)
