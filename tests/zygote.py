"""Start the entry points as processes without paying their imports each time.

A test that runs ``python train.py ...`` waits 4-5 s for torch, torchvision and Lightning to
import before the first line of train.py runs; the suite starts dozens of them. The zygote is
one process per pytest worker that imports those modules once and then, for each launch,
forks a child that becomes the entry point: its own pid, cwd, environment, stdin/stdout/
stderr, signals and exit status, and it runs the script as ``python <script>`` (or
``python -m <module>``) would, through runpy, then exits through the interpreter's normal
shutdown. The child differs from a fresh process only in the modules already imported, so:

- a test about what a process imports starts a fresh one (:func:`popen` falls back to
  :class:`subprocess.Popen` for interpreter options such as ``-X importtime`` or ``-c``);
- an environment that changes what a library reads when it loads (``OMP_*``, ``PYTHON*``,
  ...) gets a fresh process too;
- the zygote forks only while it has one thread, and never runs torch arithmetic: it serves
  launches with ``OMP_NUM_THREADS=1`` (each pytest-xdist worker's share on 2 cores), since
  torch starts OpenMP threads as it loads otherwise.

``ADVFIT_TEST_FRESH=1`` turns it off: every launch is a fresh process.
"""

from __future__ import annotations

import atexit
import gc
import json
import os
import re
import runpy
import selectors
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import IO, Any

ROOT = Path(__file__).resolve().parents[1]
#: What every entry point imports sooner or later (the slow part of its start). Not wandb: it
#: makes a temporary folder as it loads and removes it at exit, so the first child to end
#: would take it from all the others.
PRELOAD = (
    "torch",
    "torchvision",
    "pytorch_lightning",
    "torchmetrics",
    "hydra",
    "omegaconf",
    "pandas",
    "scipy.stats",
    "sklearn",
    "advfit.cli",
    "advfit.config",
    "advfit.data",
    "advfit.tasks",
    "advfit.trust",
    "advfit.summarize",
    "advfit.report.build",
)
#: Variables a library reads once, when it loads: a launch whose values differ from the
#: zygote's gets a fresh process.
READ_AT_LOAD = re.compile(r"^(OMP_|MKL_|KMP_|GOMP_|OPENBLAS_|PYTHON|LD_|MALLOC_|TORCH_)")
_HEADER = struct.Struct("!Q")
#: The zygote's own pid (its forked children return from :func:`serve` with another).
_SERVER_PID = os.getpid()


# --- the zygote process -------------------------------------------------------------------


def _recv_exactly(conn: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = conn.recv(n - len(data))
        if not chunk:
            raise ConnectionError("the client went away")
        data += chunk
    return data


def _threads() -> int:
    return len(os.listdir("/proc/self/task"))


def serve(path: str) -> tuple[dict, list[int]] | None:
    """Accept launches on the socket at ``path`` until the parent goes away. In a forked
    child, returns its launch (the request and its three file descriptors)."""
    parent = os.getppid()
    children: dict[int, socket.socket] = {}
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path + ".tmp")
    listener.listen(64)
    os.rename(path + ".tmp", path)  # the socket appears once the zygote is ready
    selector = selectors.DefaultSelector()
    selector.register(listener, selectors.EVENT_READ)
    try:
        while os.getppid() == parent:
            for _key, _ in selector.select(timeout=0.05):
                conn, _ = listener.accept()
                header, fds, _, _ = socket.recv_fds(conn, _HEADER.size, 3)
                (length,) = _HEADER.unpack(header)
                request = json.loads(_recv_exactly(conn, length))
                if _threads() != 1:
                    conn.sendall(b"error the zygote has threads; it cannot fork\n")
                    conn.close()
                    for fd in fds:
                        os.close(fd)
                    continue
                sys.stdout.flush()
                sys.stderr.flush()
                pid = os.fork()
                if pid == 0:
                    selector.close()
                    listener.close()
                    for other in children.values():
                        other.close()
                    conn.close()
                    return request, fds
                for fd in fds:
                    os.close(fd)
                conn.sendall(f"pid {pid}\n".encode())
                children[pid] = conn
            while children:
                pid, status = os.waitpid(-1, os.WNOHANG)
                if pid == 0:
                    break
                conn = children.pop(pid, None)
                if conn is not None:
                    try:
                        conn.sendall(f"status {os.waitstatus_to_exitcode(status)}\n".encode())
                    except OSError:
                        pass
                    conn.close()
    finally:
        if os.getpid() == _SERVER_PID:
            Path(path).unlink(missing_ok=True)
    return None


def become(request: dict, fds: list[int]) -> None:
    """In the forked child: take the launch's stdio, cwd and environment, and run it."""
    if request["new_session"]:
        os.setsid()
    for target, fd in enumerate(fds):
        os.dup2(fd, target)
    for fd in set(fds):
        if fd > 2:
            os.close(fd)
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    kind, target, args = request["kind"], request["target"], request["args"]
    if kind == "script":
        sys.argv = [target, *args]
        sys.path[0] = str(Path(target).resolve().parent)
        runpy.run_path(target, run_name="__main__")
    else:
        sys.argv = [target, *args]  # runpy puts the module's file there
        sys.path[0] = os.getcwd()
        runpy.run_module(target, run_name="__main__", alter_sys=True)


def main(path: str) -> None:
    for name in PRELOAD:
        __import__(name)
    if _threads() != 1 or threading.active_count() != 1:
        sys.exit(f"the zygote started threads while importing ({_threads()}); it cannot fork")
    gc.freeze()  # children share the imported objects' pages instead of copying them
    launch = serve(path)
    if launch is not None:  # the child: the interpreter's own exit runs when this returns
        become(*launch)


# --- the client, in the test process ------------------------------------------------------


class Forked:
    """A launch the zygote forked: the part of :class:`subprocess.Popen` the tests use."""

    def __init__(
        self, args: list[str], conn: socket.socket, pid: int, stdout: IO | None, stderr: IO | None
    ):
        self.args = args
        self._conn = conn
        self._buffer = b""
        self.pid = pid
        self.returncode: int | None = None
        self.stdout = stdout
        self.stderr = stderr

    def _read_status(self, timeout: float | None) -> None:
        self._conn.settimeout(timeout)
        try:
            while not self._buffer.endswith(b"\n"):
                chunk = self._conn.recv(64)
                if not chunk:
                    raise RuntimeError(f"the zygote went away before {self.pid} ended")
                self._buffer += chunk
        except (TimeoutError, BlockingIOError):
            return
        word, value = self._buffer.split()
        assert word == b"status", self._buffer
        self.returncode = int(value)
        self._conn.close()

    def poll(self) -> int | None:
        if self.returncode is None:
            self._read_status(0)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        if self.returncode is None:
            self._read_status(timeout)
            if self.returncode is None:
                raise subprocess.TimeoutExpired(self.args, timeout or 0)
        return self.returncode

    def send_signal(self, sig: int) -> None:
        if self.returncode is None:
            os.kill(self.pid, sig)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def communicate(self, timeout: float | None = None) -> tuple[Any, Any]:
        results: dict[str, Any] = {}
        readers = [
            threading.Thread(target=lambda n=name, s=stream: results.__setitem__(n, s.read()))
            for name, stream in (("stdout", self.stdout), ("stderr", self.stderr))
            if stream is not None
        ]
        for reader in readers:
            reader.start()
        deadline = None if timeout is None else time.monotonic() + timeout
        for reader in readers:
            reader.join(None if deadline is None else max(0, deadline - time.monotonic()))
            if reader.is_alive():
                raise subprocess.TimeoutExpired(self.args, timeout or 0)
        self.wait(None if deadline is None else max(0.0, deadline - time.monotonic()))
        for stream in (self.stdout, self.stderr):
            if stream is not None:
                stream.close()
        return results.get("stdout"), results.get("stderr")


class _Zygote:
    """This process's zygote, started at the first launch and ended with the process."""

    def __init__(self) -> None:
        self.process: subprocess.Popen | None = None
        self.path: str | None = None
        self.env: dict[str, str] = {}
        atexit.register(self.stop)

    def start(self, env: dict[str, str]) -> None:
        self.stop()
        folder = tempfile.mkdtemp(prefix="advfit-zygote-", dir="/tmp")  # a socket path is short
        self.path = os.path.join(folder, "socket")
        self.env = dict(env)
        self.log = open(os.path.join(folder, "zygote.log"), "w")  # noqa: SIM115
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.zygote", self.path],
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 120
        while not os.path.exists(self.path):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    f"the zygote did not start: {Path(self.log.name).read_text()[-2000:]}"
                )
            time.sleep(0.02)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(30)
        if self.path is not None:
            self.log.close()
            shutil.rmtree(os.path.dirname(self.path), ignore_errors=True)
            self.path = None

    def serves(self, env: dict[str, str]) -> bool:
        """Whether a launch with ``env`` can be forked from this zygote."""
        if os.environ.get("ADVFIT_TEST_FRESH") == "1" or not sys.platform.startswith("linux"):
            return False
        if env.get("OMP_NUM_THREADS") != "1":  # torch starts OpenMP threads as it loads
            return False
        if self.process is None or self.process.poll() is not None:  # not yet, or it died
            self.start(env)
        loaded = {k for k in (*env, *self.env) if READ_AT_LOAD.match(k)}
        return all(env.get(k) == self.env.get(k) for k in loaded)

    def launch(self, request: dict, fds: list[int]) -> tuple[socket.socket, int]:
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        conn.connect(self.path)
        body = json.dumps(request).encode()
        socket.send_fds(conn, [_HEADER.pack(len(body))], fds)
        conn.sendall(body)
        line = b""
        while not line.endswith(b"\n"):
            chunk = conn.recv(64)
            if not chunk:
                raise RuntimeError("the zygote closed the launch")
            line += chunk
        word, _, value = line.decode().strip().partition(" ")
        if word != "pid":
            raise RuntimeError(f"the zygote refused the launch: {value}")
        return conn, int(value)


_ZYGOTE = _Zygote()


def _entry(argv: list[str]) -> tuple[str, str, list[str]] | None:
    """(kind, target, args) of ``[python, script, ...]`` or ``[python, -m, module, ...]``;
    None for anything else (interpreter options)."""
    if len(argv) < 2 or argv[0] != sys.executable:
        return None
    if argv[1] == "-m" and len(argv) >= 3:
        return "module", argv[2], list(argv[3:])
    if argv[1].endswith(".py") and not argv[1].startswith("-"):
        return "script", str(argv[1]), list(argv[2:])
    return None


def popen(
    argv: list[str],
    *,
    cwd: Path | str | None = None,
    env: dict[str, str] | None = None,
    stdout: Any = None,
    stderr: Any = None,
    text: bool = False,
    start_new_session: bool = False,
) -> Forked | subprocess.Popen:
    """:class:`subprocess.Popen` for an entry point, forked from the zygote where it can be."""
    env = dict(os.environ if env is None else env)
    argv = [str(a) for a in argv]
    entry = _entry(argv)
    if entry is None or not _ZYGOTE.serves(env):
        return subprocess.Popen(
            argv,
            cwd=cwd,
            env=env,
            stdout=stdout,
            stderr=stderr,
            text=text,
            start_new_session=start_new_session,
        )
    opened: list[int] = []  # ours to close once the zygote holds its copies
    streams: dict[str, IO | None] = {"stdout": None, "stderr": None}

    def fd_for(target: Any, name: str) -> int:
        if target is None:
            return {"stdout": 1, "stderr": 2}[name]
        if target == subprocess.DEVNULL:
            fd = os.open(os.devnull, os.O_RDWR)
            opened.append(fd)
            return fd
        if target == subprocess.PIPE:
            read, write = os.pipe()
            opened.append(write)
            streams[name] = open(read, "r" if text else "rb")  # noqa: SIM115
            return write
        if target == subprocess.STDOUT:
            return out
        return target if isinstance(target, int) else target.fileno()

    stdin = os.open(os.devnull, os.O_RDONLY)
    opened.append(stdin)
    out = fd_for(stdout, "stdout")
    err = fd_for(stderr, "stderr")
    kind, target, args = entry
    request = {
        "kind": kind,
        "target": target,
        "args": args,
        "cwd": str(cwd or os.getcwd()),
        "env": env,
        "new_session": start_new_session,
    }
    try:
        conn, pid = _ZYGOTE.launch(request, [stdin, out, err])
    finally:
        for fd in opened:
            os.close(fd)
    return Forked(argv, conn, pid, streams["stdout"], streams["stderr"])


def run(
    argv: list[str],
    *,
    cwd: Path | str | None = None,
    env: dict[str, str] | None = None,
    timeout: float | None = None,
) -> subprocess.CompletedProcess:
    """``subprocess.run(argv, capture_output=True, text=True)`` through :func:`popen`."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        process = popen(argv, cwd=cwd, env=env, stdout=out, stderr=err)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            raise
        out.seek(0)
        err.seek(0)
        return subprocess.CompletedProcess(
            argv,
            process.returncode,
            out.read().decode(errors="replace"),
            err.read().decode(errors="replace"),
        )


if __name__ == "__main__":
    main(sys.argv[1])
