"""Helpers for emberd's integration tests (imported, not run).

Every test starts real emberd processes on temporary state and runtime
directories and talks HTTP to them over their Unix socket (http.client
over AF_UNIX: a real HTTP client, nothing mocked) or through curl. VMs are
real ember-vmm processes on /dev/kvm. Each emberd a test starts is ended by
pid when the test exits, however it exits, and so is any VMM process its
pid files name.
"""
import atexit
import http.client
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import tempfile
import time

sys.dont_write_bytecode = True

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD = os.path.join(ROOT, os.environ.get("BUILD", "build"))
EMBERD = os.path.join(BUILD, "emberd")
HANDLERS = os.path.join(BUILD, "handlers")
MICRO_HANDLERS = os.path.join(BUILD, "micro-handlers")

_started = []
_tmpdirs = []
failures = 0


def skip(why):
    print("SKIP:", why)
    sys.exit(77)


def need(*paths):
    if not os.path.exists("/dev/kvm"):
        skip("no /dev/kvm")
    for p in paths:
        if not os.path.exists(p):
            skip("%s not built" % p)


def check(cond, what):
    """Records a failed expectation (the test goes on) and says so."""
    global failures
    if cond:
        print("ok  ", what)
    else:
        failures += 1
        print("FAIL", what)
    return cond


def finish():
    print("%d failed" % failures if failures else "all passed")
    sys.exit(1 if failures else 0)


def tmpdir(prefix="ember-agent-"):
    d = tempfile.mkdtemp(prefix=prefix, dir="/tmp")
    _tmpdirs.append(d)
    return d


# --- HTTP over a Unix socket -------------------------------------------

class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path, timeout=30):
        super().__init__("localhost", timeout=timeout)
        self.unix_path = path

    def connect(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(self.timeout)
        s.connect(self.unix_path)
        self.sock = s


class Response:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = {k.lower(): v for k, v in headers}
        self.body = body

    def json(self):
        try:
            return json.loads(self.body)
        except ValueError:
            return None

    def code(self):
        """The error code of a JSON error answer, or None."""
        j = self.json()
        if isinstance(j, dict) and isinstance(j.get("error"), dict):
            return j["error"].get("code")
        return None

    def __repr__(self):
        return "<%d %r>" % (self.status, self.body[:200])


# --- emberd -------------------------------------------------------------

class Emberd:
    def __init__(self, base=None, args=(), pool=1):
        self.base = base or tmpdir()
        self.state = os.path.join(self.base, "state")
        self.runtime = os.path.join(self.base, "run")
        self.socket = os.path.join(self.runtime, "emberd.sock")
        self.log = os.path.join(self.base, "emberd.log")
        self.args = list(args)
        self.pool = pool
        self.proc = None

    def start(self, wait=True, extra=()):
        # EMBERD_ARGS: more options for every emberd a test starts (e.g.
        # another --vmm).
        cmd = ([EMBERD, "--state", self.state, "--runtime", self.runtime,
                "--pool-size", str(self.pool), "-v"] +
               os.environ.get("EMBERD_ARGS", "").split() + self.args +
               list(extra))
        logf = open(self.log, "ab")
        self.proc = subprocess.Popen(cmd, stdout=logf, stderr=logf,
                                     stdin=subprocess.DEVNULL)
        logf.close()
        _started.append(self)
        if wait:
            self.wait_healthy()
        return self

    def wait_healthy(self, timeout=15):
        end = time.time() + timeout
        while time.time() < end:
            if self.proc.poll() is not None:
                raise RuntimeError("emberd exited with %d:\n%s" %
                                   (self.proc.returncode, self.tail()))
            try:
                r = self.request("GET", "/v1/health", timeout=2)
                if r.status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.02)
        raise RuntimeError("emberd did not become healthy:\n" + self.tail())

    def tail(self, n=30):
        try:
            with open(self.log, "rb") as f:
                return b"".join(f.readlines()[-n:]).decode(errors="replace")
        except OSError:
            return ""

    @property
    def admin(self):
        with open(os.path.join(self.state, "admin.token")) as f:
            return f.read().strip()

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self, sig=signal.SIGTERM, timeout=30):
        """Signals emberd by pid and waits; returns its exit status."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def kill9(self):
        return self.stop(signal.SIGKILL)

    def vmm_pids(self):
        """The VMM processes emberd's pid files name that still run."""
        pids = []
        d = os.path.join(self.runtime, "vmm")
        for name in os.listdir(d) if os.path.isdir(d) else []:
            try:
                with open(os.path.join(d, name)) as f:
                    pid, start = f.read().split()
                with open("/proc/%s/stat" % pid) as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                if fields[19] == start and fields[0] != "Z":
                    pids.append(int(pid))
            except (OSError, ValueError, IndexError):
                pass
        return pids

    def connection(self, timeout=30):
        return UnixHTTPConnection(self.socket, timeout=timeout)

    def request(self, method, path, token=None, body=None, headers=None,
                timeout=60, conn=None):
        h = dict(headers or {})
        if token:
            h["Authorization"] = "Bearer " + token
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
            h.setdefault("Content-Type", "application/json")
        own = conn is None
        c = conn or self.connection(timeout)
        try:
            try:
                c.request(method, path, body=body, headers=h)
            except (BrokenPipeError, ConnectionResetError):
                # emberd answered before the whole body was sent (a bad
                # name, a body too large) and closed: its answer is
                # still there to read.
                pass
            r = c.getresponse()
            return Response(r.status, r.getheaders(), r.read())
        finally:
            if own:
                c.close()

    # -- conveniences --

    def tenant(self, name):
        r = self.request("POST", "/v1/tenants", self.admin, {"name": name})
        assert r.status == 201, r
        r = self.request("POST", "/v1/tenants/%s/tokens" % name, self.admin)
        assert r.status == 201, r
        return r.json()["token"]

    def deploy(self, token, name, archive_bytes, wait=True, timeout=60):
        r = self.request("PUT", "/v1/functions/" + name, token, archive_bytes,
                         {"Content-Type": "application/gzip"})
        if r.status != 202 or not wait:
            return r
        return self.wait_deploy(token, r.json()["deploy"]["id"], timeout)

    def wait_deploy(self, token, deploy_id, timeout=60):
        end = time.time() + timeout
        while time.time() < end:
            r = self.request("GET", "/v1/deploys/" + deploy_id, token)
            if r.status != 200 or r.json()["state"] != "running":
                return r
            time.sleep(0.05)
        raise RuntimeError("deploy %s still running" % deploy_id)

    def invoke(self, token, name, payload=b"", conn=None, headers=None):
        return self.request("POST", "/v1/functions/%s/invoke" % name, token,
                            payload, headers, conn=conn)


def archive(files, manifest=None, gz=True):
    """A function archive: files maps archive names to bytes or to a path
    on the host; manifest (a dict) becomes ember.json."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz" if gz else "w") as tar:
        items = dict(files)
        if manifest is not None:
            items["ember.json"] = json.dumps(manifest).encode()
        for name, data in items.items():
            if isinstance(data, str):
                with open(data, "rb") as f:
                    data = f.read()
                mode = 0o755
            else:
                mode = 0o644
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            ti.mode = mode
            tar.addfile(ti, io.BytesIO(data))
    return buf.getvalue()


def echo_archive(memory=64, **extra):
    m = {"runtime": "static", "handler": "echo", "memory_mib": memory}
    m.update(extra)
    return archive({"echo": os.path.join(HANDLERS, "echo")}, m)


def lua_archive(script, memory=64, **extra):
    m = {"runtime": "lua", "handler": "fn.lua", "memory_mib": memory}
    m.update(extra)
    return archive({"fn.lua": script.encode()}, m)


def curl(*args, timeout=30):
    """Runs curl; returns (status code, body bytes)."""
    out = subprocess.run(["curl", "-sS", "-o", "-", "-w", "\n%{http_code}",
                          "--max-time", str(timeout)] + list(args),
                         capture_output=True, timeout=timeout + 5)
    body, _, code = out.stdout.rpartition(b"\n")
    return int(code or 0), body


def _cleanup():
    for ed in _started:
        try:
            pids = ed.vmm_pids()
            ed.stop(signal.SIGKILL if ed.alive() else signal.SIGTERM, 10)
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
        except Exception as e:  # a clean-up must not hide the result
            print("cleanup:", e)
    # EMBER_KEEP=1 keeps the directories (and emberd's log) of a test
    # that failed.
    if failures and os.environ.get("EMBER_KEEP"):
        print("kept:", " ".join(_tmpdirs))
        return
    for d in _tmpdirs:
        shutil.rmtree(d, ignore_errors=True)


atexit.register(_cleanup)
