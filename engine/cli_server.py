"""A warm process for ``python -m engine run``: torch and the methods imported once, each command forked from it.

A fresh ``python -m engine run`` spends about as long importing torch (1.6–2.3 s on the 2-core build machine) as
JieP spends on a 1024×680 photo. ``python -m engine cli-server start`` starts a background server that imports
torch, OpenCV, Pillow and every method module once and then waits on a Unix socket. While it runs, ``python -m engine
run`` connects to it before importing anything heavy, hands over its command line, working folder, environment,
umask, CPU affinity, nice value and its stdin/stdout/stderr (``SCM_RIGHTS``); the server forks a child that runs the
command exactly as the cold process would (same parser, same code, the client's own files), and the client exits
with the child's exit status. Ctrl-C and ``SIGTERM``/``SIGHUP`` on the client are passed on to the child; a client
that disappears takes its child with it.

Correctness guards (any one failing means the command runs cold, in the client's own process, as before):

* **Code.** The client and the server compare a fingerprint of the engine's source files (path, size, mtime of every
  ``engine/**/*.py``), the Python executable and ``sys.path``. An edited checkout makes the old server stop.
* **Environment read at start-up.** Variables that libraries read when they load (``LD_*``, ``OMP_*``, ``GOMP_*``,
  ``KMP_*``, ``MKL_*``, ``OPENBLAS_*``, ``CUDA_*``, ``TORCH_*``, ``PYTORCH_*``, ``PYTHON*`` and every
  ``INTRINSIC_LAB_*``) must be as they were where the server was started; all other variables are the client's own
  in the child.
* **Fork safety.** The server never runs a torch operation, so no OpenMP pool or CUDA context exists when it forks;
  it checks that it has one thread before serving and refuses to start otherwise.
* **Who may connect.** The socket lives in a folder only its user can enter (``$XDG_RUNTIME_DIR/intrinsic-lab``, else
  ``/tmp/intrinsic-lab-UID``, created 0700 and checked), and the server checks the peer's uid (``SO_PEERCRED``).

``INTRINSIC_LAB_CLI_SERVER``: ``use`` (default: use a running server, never start one), ``auto`` (also start one in
the background when none runs: the first command runs cold, the next ones warm) or ``off``. The server exits after
``INTRINSIC_LAB_CLI_SERVER_IDLE`` seconds without a command (default 900) and with ``python -m engine cli-server
stop``. One socket per checkout and Python executable.

This module's top level imports the standard library only: the client runs before torch is imported.
"""

from __future__ import annotations

import array
import hashlib
import json
import os
import selectors
import signal
import socket
import stat
import struct
import sys
import time
from pathlib import Path

from .envvars import positive_number

MODE_ENV = "INTRINSIC_LAB_CLI_SERVER"
IDLE_ENV = "INTRINSIC_LAB_CLI_SERVER_IDLE"
DIR_ENV = "INTRINSIC_LAB_CLI_SERVER_DIR"
#: The start-up environment's fingerprint, computed where ``cli-server`` was invoked, before the process changed it.
ENV_FP_ENV = "INTRINSIC_LAB_CLI_SERVER_ENVFP"
MODES = ("use", "auto", "off")
DEFAULT_IDLE_S = 900.0
#: Commands served warm. ``run`` is the one a user repeats; the others are long (train, bench, worker) or cheap.
WARM_COMMANDS = ("run",)

_ENV_PREFIXES = ("LD_", "OMP_", "GOMP_", "KMP_", "MKL_", "OPENBLAS_", "CUDA_", "TORCH_", "PYTORCH_", "PYTHON",
                 "INTRINSIC_LAB_")
_ENV_IGNORED = {ENV_FP_ENV, MODE_ENV, IDLE_ENV, DIR_ENV, "INTRINSIC_LAB_MALLOC_REEXEC", "PYTHONUNBUFFERED"}
_HEADER = struct.Struct("!I")
_MAX_HEADER = 4 << 20
_ENGINE_DIR = Path(__file__).resolve().parent


class ServerError(RuntimeError):
    """The server could not be started, reached or stopped (one line for the user)."""


# --- shared: where, and what must match ---------------------------------------------------------------------------

def mode() -> str:
    value = os.environ.get(MODE_ENV, "use").strip().lower() or "use"
    if value not in MODES:
        raise ValueError(f"{MODE_ENV}={value!r}: expected one of {', '.join(MODES)}")
    return value


def idle_seconds() -> float:
    return positive_number(IDLE_ENV, DEFAULT_IDLE_S)


def socket_dir() -> Path:
    """The per-user folder of the sockets, created 0700; refused if someone else owns it or can write to it."""
    configured = os.environ.get(DIR_ENV, "").strip()
    if configured:
        base = Path(configured)
    elif os.environ.get("XDG_RUNTIME_DIR", "").strip():
        base = Path(os.environ["XDG_RUNTIME_DIR"]) / "intrinsic-lab"
    else:
        base = Path("/tmp") / f"intrinsic-lab-{os.getuid()}"
    try:
        base.mkdir(mode=0o700, parents=True, exist_ok=True)
        info = os.lstat(base)
    except OSError as exc:
        raise ServerError(f"cannot use {base} for the CLI server's socket: {exc.strerror}") from None
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid() or info.st_mode & 0o077:
        raise ServerError(f"{base} is not a private folder of this user (owner, mode 0700 expected); "
                          f"not using it for the CLI server's socket")
    return base


def socket_path() -> Path:
    """One socket per checkout (this ``engine`` folder) and Python executable; short enough for ``sun_path``."""
    key = hashlib.sha256(f"{_ENGINE_DIR}\0{os.path.realpath(sys.executable)}".encode()).hexdigest()[:16]
    return socket_dir() / f"cli-{key}.sock"


def code_fingerprint() -> str:
    """Path, size and mtime of every engine source file, the interpreter and ``sys.path`` (about 1 ms)."""
    h = hashlib.sha256()
    h.update(f"{os.path.realpath(sys.executable)}\0{sys.version}\0{os.pathsep.join(sys.path[1:])}".encode())
    for root, dirs, files in os.walk(_ENGINE_DIR):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        for name in sorted(files):
            if name.endswith(".py"):
                path = os.path.join(root, name)
                try:
                    info = os.stat(path)
                except OSError:
                    continue
                h.update(f"{os.path.relpath(path, _ENGINE_DIR)}\0{info.st_size}\0{info.st_mtime_ns}\n".encode())
    return h.hexdigest()


def env_fingerprint(env: dict[str, str] | os._Environ | None = None) -> str:
    """The variables that libraries read when they load (see the module docstring), as a hash."""
    env = os.environ if env is None else env
    items = sorted((k, v) for k, v in env.items() if k.startswith(_ENV_PREFIXES) and k not in _ENV_IGNORED)
    return hashlib.sha256(json.dumps(items).encode()).hexdigest()


def own_env_fingerprint() -> str:
    """This process's start-up environment: as stashed by ``python -m engine cli-server`` before the process set its
    thread and allocator variables, else as it is now (the client checks before changing anything)."""
    return os.environ.get(ENV_FP_ENV) or env_fingerprint()


def _send(sock: socket.socket, message: dict, fds: list[int] | None = None) -> None:
    data = json.dumps(message).encode()
    payload = _HEADER.pack(len(data)) + data
    if fds:
        sock.sendmsg([payload], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))])
    else:
        sock.sendall(payload)


def _recv_exact(sock: socket.socket, n: int, fds: list[int] | None = None) -> bytes:
    chunks, got = [], 0
    while got < n:
        if fds is not None:
            data, ancdata, _flags, _addr = sock.recvmsg(n - got, socket.CMSG_LEN(16 * array.array("i").itemsize))
            for level, kind, cdata in ancdata:
                if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                    received = array.array("i")
                    received.frombytes(cdata[: len(cdata) - len(cdata) % received.itemsize])
                    fds.extend(received)
        else:
            data = sock.recv(n - got)
        if not data:
            raise EOFError("connection closed")
        chunks.append(data)
        got += len(data)
    return b"".join(chunks)


def _recv(sock: socket.socket, fds: list[int] | None = None) -> dict:
    (size,) = _HEADER.unpack(_recv_exact(sock, _HEADER.size, fds))
    if size > _MAX_HEADER:
        raise ValueError(f"message of {size} bytes refused")
    return json.loads(_recv_exact(sock, size, fds))


def _connect(path: Path, timeout: float | None = 5.0) -> socket.socket | None:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect(str(path))
    except OSError:  # no socket, nobody listening, timeout
        sock.close()
        return None
    return sock


# --- client -------------------------------------------------------------------------------------------------------

def _client_state(argv: list[str]) -> dict:
    import resource

    rlimits = {name: list(resource.getrlimit(getattr(resource, name)))
               for name in ("RLIMIT_AS", "RLIMIT_DATA", "RLIMIT_CPU", "RLIMIT_FSIZE", "RLIMIT_NOFILE")
               if hasattr(resource, name)}
    umask = os.umask(0)
    os.umask(umask)
    return {
        "command": "run", "argv": argv, "cwd": os.getcwd(), "env": dict(os.environ), "umask": umask,
        "affinity": sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "nice": os.getpriority(os.PRIO_PROCESS, 0) if hasattr(os, "getpriority") else None,
        "rlimits": rlimits, "code": code_fingerprint(), "envfp": own_env_fingerprint(),
    }


def run_warm(argv: list[str]) -> int | None:
    """Run ``python -m engine ARGV`` in the warm server when one serves this checkout and environment; its exit
    status, or None when the command must run cold here (no server, another environment, or ``off``)."""
    try:
        chosen = mode()
    except ValueError:
        return None  # engine/__main__.py reports the bad value
    if chosen == "off" or not argv or argv[0] not in WARM_COMMANDS or os.environ.get("INTRINSIC_LAB_MALLOC_REEXEC"):
        return None  # (the re-executed cold process: its first start already asked)
    try:
        path = socket_path()
    except ServerError:
        return None
    sock = _connect(path)
    if sock is None:
        if chosen == "auto":
            spawn_detached()
        return None
    with sock:
        try:
            _send(sock, _client_state(argv), [0, 1, 2])
            reply = _recv(sock)
        except (OSError, EOFError, ValueError):
            return None
        if "refused" in reply:
            if chosen == "auto" and reply.get("stopping"):
                spawn_detached()  # this one was for an older checkout or environment; the next command is warm
            return None
        return _wait_for_exit(sock)


def _wait_for_exit(sock: socket.socket) -> int:
    """The child runs; pass our signals on and return its exit status."""
    def forward(signum, _frame):
        try:
            _send(sock, {"signal": int(signum)})
        except OSError:
            pass

    previous = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    sock.settimeout(None)
    try:
        while True:
            try:
                reply = _recv(sock)  # (a forwarded signal interrupts and resumes it: PEP 475)
            except (OSError, EOFError, ValueError):
                print("error: the CLI server ended before the command did (python -m engine cli-server status)",
                      file=sys.stderr)
                return 1
            if "exit" in reply:
                return int(reply["exit"])
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


# --- server control -----------------------------------------------------------------------------------------------

def spawn_detached() -> "subprocess.Popen | None":
    """Start ``cli-server serve`` in its own session, detached from our stdio, without waiting for it (None when
    its log cannot be opened)."""
    import subprocess

    env = dict(os.environ)
    env[ENV_FP_ENV] = own_env_fingerprint()
    env.pop(MODE_ENV, None)
    try:
        log = open(socket_dir() / "server.log", "ab")
    except (OSError, ServerError):
        return
    with log:
        return subprocess.Popen([sys.executable, "-m", "engine", "cli-server", "serve"], stdin=subprocess.DEVNULL,
                                stdout=log, stderr=log, start_new_session=True, close_fds=True, env=env,
                                cwd=str(_ENGINE_DIR.parent))


def _ask(command: str) -> dict | None:
    """The running server's answer to ``command`` (``status`` or ``stop``); None when none answers."""
    sock = _connect(socket_path())
    if sock is None:
        return None
    with sock:
        try:
            _send(sock, {"command": command})
            return _recv(sock)
        except (OSError, EOFError, ValueError):
            return None


def status() -> dict | None:
    return _ask("status")


def start(wait_s: float = 60.0) -> dict:
    """Start a server for this checkout and environment unless one runs; its status once it answers."""
    current = status()
    if (current is not None and current.get("code") == code_fingerprint()
            and current.get("envfp") == own_env_fingerprint()):
        return {**current, "already_running": True}
    if current is not None:
        stop()
    process = spawn_detached()
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        time.sleep(0.1)
        current = status()
        if current is not None:
            return current
        if process is None or process.poll() is not None:
            break
    raise ServerError(f"the CLI server did not start (see {socket_dir() / 'server.log'})")


def stop(wait_s: float = 30.0) -> bool:
    """Ask the server to stop (it finishes running commands first); True if one was running."""
    reply = _ask("stop")
    if reply is None:
        return False
    pid = int(reply.get("pid", 0))
    deadline = time.monotonic() + wait_s
    while pid and _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    return True


def _alive(pid: int) -> bool:
    """Whether ``pid`` still runs (a zombie that nobody reaped yet, as under a container's init, does not)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True


# --- server -------------------------------------------------------------------------------------------------------

def _thread_count() -> int:
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:
        import threading

        return threading.active_count()


def preload() -> list[str]:
    """Import what commands need: torch, the CLI, every method module, Pillow's plugins, OpenCV. Runs no torch
    operation (no thread pool may exist when the server forks)."""
    import importlib

    import torch  # noqa: F401

    import engine.cli
    from engine.methods import METHOD_MODULES

    engine.cli.build_parser()  # imports every sub-command's module
    for module in ("engine.inputs", "engine.outputs", "engine.models", "engine.weights", *METHOD_MODULES):
        importlib.import_module(module)
    from PIL import Image

    Image.init()
    return list(METHOD_MODULES)


class Server:
    def __init__(self, path: Path, idle_s: float, envfp: str):
        self.path, self.idle_s, self.envfp = path, idle_s, envfp
        self.code = code_fingerprint()
        self.children: dict[int, socket.socket] = {}
        self.started = time.time()
        self.last = time.monotonic()
        self.served = 0
        self.stopping = False
        self.listener: socket.socket | None = None
        self._wake: tuple[int, ...] = ()

    def bind(self) -> None:
        other = _connect(self.path, timeout=1.0)
        if other is not None:
            other.close()
            raise ServerError(f"a CLI server already answers on {self.path}")
        try:
            self.path.unlink()
        except FileNotFoundError:
            pass
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old = os.umask(0o077)
        try:
            listener.bind(str(self.path))
        finally:
            os.umask(old)
        listener.listen(64)
        self.listener = listener
        self.inode = os.stat(self.path).st_ino

    def _unlink(self) -> None:
        try:
            if os.stat(self.path).st_ino == self.inode:
                self.path.unlink()
        except OSError:
            pass

    def serve(self) -> None:
        sel = selectors.DefaultSelector()
        sel.register(self.listener, selectors.EVENT_READ)
        # a child's end wakes the loop at once (its client waits for the exit status): SIGCHLD writes to a pipe
        wake_r, wake_w = os.pipe()
        os.set_blocking(wake_r, False)
        os.set_blocking(wake_w, False)
        self._wake = (wake_r, wake_w)
        signal.set_wakeup_fd(wake_w, warn_on_full_buffer=False)
        sel.register(wake_r, selectors.EVENT_READ, "wake")
        signal.signal(signal.SIGCHLD, lambda *_: None)
        signal.signal(signal.SIGTERM, lambda *_: self._begin_stop())
        signal.signal(signal.SIGINT, lambda *_: self._begin_stop())
        checked = time.monotonic()
        try:
            while True:
                for key, _ in sel.select(timeout=0.5):
                    if key.data == "wake":
                        try:
                            os.read(wake_r, 4096)
                        except BlockingIOError:
                            pass
                    elif key.fileobj is self.listener:
                        if not self.stopping:
                            self._accept(sel)
                    else:
                        self._client_message(sel, key.fileobj, key.data)
                self._reap(sel)
                if self.stopping and not self.children:
                    break
                if not self.children and time.monotonic() - self.last > self.idle_s:
                    print(f"{time.strftime('%F %T')} idle for {self.idle_s:.0f} s: exiting", flush=True)
                    break
                if not self.stopping and time.monotonic() - checked > 2.0:
                    checked = time.monotonic()
                    if not os.path.exists(self.path) or code_fingerprint() != self.code:
                        self._begin_stop()  # socket removed, or the checkout changed under us
        finally:
            self._unlink()
            self.listener.close()

    def _begin_stop(self) -> None:
        if not self.stopping:
            self.stopping = True
            self._unlink()

    def _accept(self, sel) -> None:
        conn, _ = self.listener.accept()
        conn.settimeout(5.0)
        fds: list[int] = []
        try:
            creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
            _pid, uid, _gid = struct.unpack("3i", creds)
            if uid != os.getuid():
                raise PermissionError("another user")
            request = _recv(conn, fds)
            if request.get("command") == "status":
                _send(conn, {"pid": os.getpid(), "socket": str(self.path), "started": self.started,
                             "served": self.served, "running": len(self.children), "idle_s": self.idle_s,
                             "code": self.code, "envfp": self.envfp})
                conn.close()
                return
            if request.get("command") == "stop":
                _send(conn, {"pid": os.getpid(), "running": len(self.children)})
                conn.close()
                self._begin_stop()
                return
            if request.get("command") != "run" or len(fds) != 3:
                raise ValueError("not a run request")
            why = None
            if request.get("code") != self.code:
                why, stale = "the engine's code changed since the server started", True
            elif request.get("envfp") != self.envfp:
                why, stale = "the environment differs from the server's", False
            if why is not None:
                _send(conn, {"refused": why, "stopping": stale})
                conn.close()
                if stale:
                    self._begin_stop()
                return
            self._fork(sel, conn, request, fds)
        except (OSError, EOFError, ValueError, PermissionError, KeyError, TypeError):
            conn.close()
        finally:
            for fd in fds:
                try:
                    os.close(fd)  # the child has its own copies; ours would keep the client's pipes open
                except OSError:
                    pass

    def _fork(self, sel, conn: socket.socket, request: dict, fds: list[int]) -> None:
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:  # the child: never returns
            code = 1
            try:
                signal.set_wakeup_fd(-1)
                signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                for fd in self._wake:
                    os.close(fd)
                sel.close()
                self.listener.close()
                for other in self.children.values():
                    other.close()
                conn.close()
                code = _child(request, fds)
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
            except BaseException:
                import traceback

                traceback.print_exc()
            finally:
                try:
                    sys.stdout.flush()
                    sys.stderr.flush()
                finally:
                    os._exit(code)
        self.children[pid] = conn
        self.served += 1
        self.last = time.monotonic()
        conn.settimeout(None)
        sel.register(conn, selectors.EVENT_READ, pid)
        _send(conn, {"pid": pid})

    def _client_message(self, sel, conn: socket.socket, pid: int) -> None:
        try:
            message = _recv(conn)
        except (OSError, EOFError, ValueError):
            message = {"signal": int(signal.SIGTERM)}  # the client is gone: so is its command
            sel.unregister(conn)
        signum = message.get("signal")
        if signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP) and pid in self.children:
            try:
                os.kill(pid, int(signum))
            except ProcessLookupError:
                pass

    def _reap(self, sel) -> None:
        while self.children:
            try:
                pid, status_ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            conn = self.children.pop(pid, None)
            self.last = time.monotonic()
            if conn is None:
                continue
            code = os.waitstatus_to_exitcode(status_)
            try:
                _send(conn, {"exit": code if code >= 0 else 128 - code})
            except OSError:
                pass
            try:
                sel.unregister(conn)
            except (KeyError, ValueError):
                pass
            conn.close()


def _child(request: dict, fds: list[int]) -> int:
    """In the forked child: become the client's process (stdio, folder, environment, limits), then run the command."""
    import io

    for target, fd in enumerate(fds):
        os.dup2(fd, target)
        os.close(fd)
    fds.clear()
    os.environ.clear()
    os.environ.update(request["env"])
    os.chdir(request["cwd"])
    os.umask(int(request["umask"]))
    if request.get("affinity") and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, request["affinity"])
    if request.get("nice") is not None and hasattr(os, "setpriority"):
        try:
            os.setpriority(os.PRIO_PROCESS, 0, int(request["nice"]))
        except OSError:
            pass  # lowering a nice value needs privilege; the server's own is kept
    import resource

    for name, (soft, hard) in (request.get("rlimits") or {}).items():
        try:
            resource.setrlimit(getattr(resource, name), (soft, hard))
        except (ValueError, OSError, AttributeError):
            pass
    try:  # die with the server: nobody else would report this command's end
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGTERM))  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGHUP, signal.SIG_DFL)
    sys.stdin = io.TextIOWrapper(io.FileIO(0, "r", closefd=False))
    sys.stdout = io.TextIOWrapper(io.FileIO(1, "w", closefd=False), line_buffering=os.isatty(1),
                                  write_through=False)
    sys.stderr = io.TextIOWrapper(io.FileIO(2, "w", closefd=False), line_buffering=True,
                                  errors="backslashreplace")
    sys.argv = ["python -m engine", *request["argv"]]
    from engine.cli import main
    from engine.threads import apply_thread_policy

    threads = apply_thread_policy()  # the client's affinity and environment: its own share of the CPUs
    from threadpoolctl import threadpool_limits

    # the server loaded the BLAS libraries with one thread (no pool may exist at a fork): this process's share now,
    # as a cold process gets it from OPENBLAS_NUM_THREADS (the user's value where set)
    blas = os.environ.get("OPENBLAS_NUM_THREADS", "")
    threadpool_limits(int(blas) if blas.isdigit() else threads, user_api="blas")
    return main(list(request["argv"]), own_process=True)


def serve_main() -> int:
    """``python -m engine cli-server serve`` (called by ``engine/__main__.py`` directly, never through the CLI's
    ``main``, which would start torch's thread pool): one line and exit code 2 on a user error."""
    try:
        return serve_forever()
    except (ServerError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def serve_forever() -> int:
    """``cli-server serve``: preload, check, bind, serve until idle or stopped."""
    envfp = own_env_fingerprint()
    path = socket_path()
    t0 = time.perf_counter()
    modules = preload()
    threads = _thread_count()
    if threads != 1:
        raise ServerError(f"{threads} threads after the imports: forking would copy a lock or thread pool; "
                          "not serving")
    server = Server(path, idle_seconds(), envfp)
    server.bind()
    print(f"{time.strftime('%F %T')} CLI server {os.getpid()} on {path}: {len(modules)} method modules imported in "
          f"{time.perf_counter() - t0:.2f} s; exits after {server.idle_s:.0f} s idle", flush=True)
    server.serve()
    return 0
