# Over 400 lines on purpose: the zygote, the workers, the shared-memory call board and the pool speak one wire protocol and share its failure cases (kill, death, oversize); they are read together.
"""Worker processes for environments with ``isolation: process``.

Why processes: a Python thread cannot be killed, and a single C-level operation that holds the GIL
(``10 ** 10**8``) freezes every thread of the trainer. A call in a worker process can be killed with
``SIGKILL`` the moment it overruns its timeout, and it runs under resource limits (``RLIMIT_AS`` for
memory, ``RLIMIT_CPU`` for CPU time).

Design (documented for users in ``tool_envs/README.md``):

* **Stateless workers.** A worker holds no episode. Each request carries the episode's backend state
  (its instances, pickled), the calls of one or more messages and the limits; the worker unpickles the
  state, runs the calls one by one, streams one result per call back and finally the new pickled state.
  Any idle worker can serve any episode, so concurrent episodes never queue behind each other's state,
  and after a kill the episode still holds the state from before the request.
* **A zygote.** Workers are forked from one small single-threaded process (``python -c`` running
  :func:`zygote_main`) started on first use, never from the trainer: forking a process that runs torch,
  Ray or vLLM threads is unsafe, and exec-ing a fresh interpreter per worker is slow. The zygote imports
  the backend modules once (:meth:`ProcessPool.preload`) so a fork starts in milliseconds with them loaded.
  The zygote ignores ``SIGCHLD`` so the kernel reaps killed workers (no zombies) and runs in its own session
  so a Ctrl-C in the terminal reaches only the trainer. It exits when the trainer closes its socket
  (including when the trainer dies); workers get ``SIGKILL`` when the zygote exits (``PR_SET_PDEATHSIG``).
* **Bounded pool.** At most ``max_workers`` workers. When all are busy, callers wait and the one with the
  lowest ``priority`` is served next (episodes pass their creation time, so the oldest episode goes first;
  ties and callers without a priority are served in arrival order). Served in plain request order, an
  episode held back by a timed-out call would queue each of its remaining messages behind a request of
  every younger episode and finish last by far; a training step lasts as long as its slowest episode.
  A killed worker frees its slot; a replacement is forked when the next request needs one.
* **Sync and async callers.** :meth:`ProcessPool.run` blocks the calling thread (reward replays, the CLI);
  :meth:`ProcessPool.arun` waits on the worker's socket with the running event loop (``add_reader``), so
  the loop keeps serving other episodes while a call runs.

Wire protocol (``multiprocessing.connection`` framing over a Unix socket, pickled)::

    request  ("run", number, sys_path | None, state_blob, [(instance_index, method, kwargs) | None, ...], limits)
    reply    a list of ("r", content, error, truncated)  one per call, in order
                      ("c", snapshot)                    at each None marker (``public_snapshot``)
                      ("s", new_state_blob)              after the last call
                      ("x", message)                     the state could not be loaded or saved

Each request costs one reply message. The deadline still applies per call: the worker marks the start of
every call on a shared-memory board (:class:`_Progress`), which the trainer reads when a wait times out.
"""
from __future__ import annotations

import asyncio
import atexit
import ctypes
import heapq
import importlib
import itertools
import math
import mmap
import os
import pickle
import resource
import select
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

from tool_envs.executor import ERROR_PREFIX, stringify_result, truncate

_PICKLE = pickle.HIGHEST_PROTOCOL
_PR_SET_PDEATHSIG = 1


@dataclass(frozen=True)
class CallLimits:
    """Limits the worker applies to every call of a request.

    Attributes:
        max_output_chars: Result text is cut to this length in the worker, so huge outputs never cross the pipe.
        cpu_time_s: CPU seconds one call may use (``RLIMIT_CPU``, whole seconds, rounded up); the call then
            gets an error and the worker survives. ``None``: no CPU limit (the wall-clock timeout still applies).
        memory_mb: Address space a request may add to the worker (``RLIMIT_AS``); an allocation beyond it
            raises ``MemoryError`` inside the call, which becomes its error result. ``None``: unlimited.
        max_state_bytes: Largest pickled backend state the worker sends back; beyond it the episode stops
            running tools (a backend that grows without bound would otherwise exhaust the trainer's memory).
    """

    max_output_chars: int = 8000
    cpu_time_s: float | None = None
    memory_mb: int | None = None
    max_state_bytes: int = 64 << 20


@dataclass
class RunOutcome:
    """What a request produced.

    ``results`` holds ``(content, error, truncated)`` of the calls that finished, in order, and
    ``snapshots`` the pickled state at each ``None`` marker of the call list. ``state`` is the
    new pickled state when every call finished and the state came back. Otherwise ``failed_at`` is the
    index of the call that did not finish and ``failure`` says why: ``"timeout"`` (killed after its
    deadline), ``"crash"`` (the worker died, e.g. killed by the kernel) or ``"state"`` (the state could not
    be loaded, pickled or was too large; ``message`` has the details).
    """

    results: list[tuple[str, bool, bool]] = field(default_factory=list)
    snapshots: list[bytes] = field(default_factory=list)
    state: bytes | None = None
    failed_at: int | None = None
    failure: str | None = None
    message: str = ""


# ====================================================================================== snapshots


def public_snapshot(instances: list[Any]) -> bytes:
    """Pickled ``(class, public attributes)`` of each backend: all that state checks read (BFCL's
    ``state_checker``, ``Episode.state()``), without private attributes such as a ``random.Random``.
    Instances that cannot be rebuilt from their ``__dict__`` are pickled whole."""
    parts = []
    for inst in instances:
        if inst is None or type(inst).__new__ is not object.__new__ or not hasattr(inst, "__dict__"):
            parts.append(("whole", inst))
        else:
            parts.append(("public", type(inst), {k: v for k, v in vars(inst).items() if not k.startswith("_")}))
    return pickle.dumps(("snapshot", parts), _PICKLE)


def load_snapshot(blob: bytes) -> list[Any]:
    """Instances from :func:`public_snapshot` bytes or from a pickled instance list (a process episode's state)."""
    data = pickle.loads(blob)
    if not (isinstance(data, tuple) and len(data) == 2 and data[0] == "snapshot"):
        return data
    out = []
    for part in data[1]:
        if part[0] == "whole":
            out.append(part[1])
        else:
            inst = object.__new__(part[1])
            inst.__dict__.update(part[2])
            out.append(inst)
    return out


# ====================================================================================== worker side


class _CpuLimitExceeded(BaseException):
    """Raised in the worker by the SIGXCPU handler (BaseException: backends' ``except Exception`` keep it)."""


def _on_sigxcpu(signum, frame):  # noqa: ARG001 - signal handler signature
    raise _CpuLimitExceeded()


def _vm_bytes() -> int:
    with open("/proc/self/statm", "rb") as f:
        return int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")


def _set_limits(limits: CallLimits) -> None:
    if limits.memory_mb is not None:
        _, hard = resource.getrlimit(resource.RLIMIT_AS)
        want = _vm_bytes() + int(limits.memory_mb) * (1 << 20)
        if hard != resource.RLIM_INFINITY:
            want = min(want, hard)
        resource.setrlimit(resource.RLIMIT_AS, (want, hard))


def _clear_limits() -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    resource.setrlimit(resource.RLIMIT_AS, (hard, hard))
    _, hard = resource.getrlimit(resource.RLIMIT_CPU)
    resource.setrlimit(resource.RLIMIT_CPU, (hard, hard))


def _arm_cpu(cpu_time_s: float | None) -> None:
    if cpu_time_s is None:
        return
    used = resource.getrusage(resource.RUSAGE_SELF)
    now = used.ru_utime + used.ru_stime
    _, hard = resource.getrlimit(resource.RLIMIT_CPU)
    soft = int(math.ceil(now + cpu_time_s))
    if hard != resource.RLIM_INFINITY:
        soft = min(soft, hard)
    resource.setrlimit(resource.RLIMIT_CPU, (soft, hard))


def _run_one(instance: Any, method: str, kwargs: dict, limits: CallLimits) -> tuple[str, bool, bool]:
    try:
        _arm_cpu(limits.cpu_time_s)
        try:
            content, error = stringify_result(getattr(instance, method)(**kwargs)), False
        finally:
            if limits.cpu_time_s is not None:
                _disarm_cpu()
    except _CpuLimitExceeded:
        content, error = f"{ERROR_PREFIX}the call used more than {limits.cpu_time_s:g} s of CPU time and was stopped", True
    except MemoryError:
        content, error = f"{ERROR_PREFIX}the call ran out of memory (limit {limits.memory_mb} MB)", True
    except BaseException as e:  # noqa: BLE001 - any backend failure (even SystemExit) is the model's feedback
        try:
            content = f"{ERROR_PREFIX}{e}"
        except BaseException as e2:  # noqa: BLE001 - an exception whose str() fails
            content = f"{ERROR_PREFIX}the call could not be processed ({type(e2).__name__})"
        error = True
    text, cut = truncate(content, limits.max_output_chars)
    return text, error, cut


def _disarm_cpu() -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_CPU)
    resource.setrlimit(resource.RLIMIT_CPU, (hard, hard))


class _Progress:
    """A 24-byte shared-memory board (a memfd, mapped by the trainer and one worker): ``(request number,
    index of the call running, monotonic time it started)``. The worker writes it before every call; the
    trainer reads it when a wait times out, to restart the deadline per call without a message per call."""

    FORMAT = struct.Struct("<qqd")

    def __init__(self, fd: int):
        self.map = mmap.mmap(fd, self.FORMAT.size)

    def write(self, request: int, index: int) -> None:
        self.FORMAT.pack_into(self.map, 0, request, index, time.monotonic())

    def read(self) -> tuple[int, int, float]:
        return self.FORMAT.unpack_from(self.map, 0)


def call_deadline(board: tuple[int, int, float], number: int, sent: float, timeout: float) -> tuple[float, int]:
    """The deadline of request ``number`` (sent at ``sent``) from a progress-board reading, and the running call.

    The board is read while the worker may be writing it, so a reading can pair the new request number with
    the previous start time (0.0 on a fresh worker): that would put the deadline in the past and kill a call
    that just began. No call of a request starts before the request was sent, so an earlier time is stale.
    """
    req, index, started = board
    if req != number:
        return sent + timeout, -1
    return max(started, sent) + timeout, index


def _serve_request(conn: Connection, req: tuple, progress: _Progress) -> None:
    """Run one request and send every reply in one message (the progress board marks each call's start)."""
    _, number, sys_path, blob, calls, limits = req
    progress.write(number, -1)
    if sys_path is not None:
        sys.path[:] = list(sys_path)
    replies: list[tuple] = []
    try:
        _set_limits(limits)
        try:
            instances = pickle.loads(blob)
        except BaseException as e:  # noqa: BLE001 - e.g. the backend module does not import here
            replies.append(("x", f"the backend state could not be loaded in the worker process ({type(e).__name__}: {e})"))
            return
        snap = None
        k = 0
        for item in calls:
            if item is None:  # a snapshot marker
                try:
                    snap = snap or public_snapshot(instances)
                except BaseException as e:  # noqa: BLE001
                    replies.append(("x", f"the backend state could not be pickled ({type(e).__name__}: {e})"))
                    return
                replies.append(("c", snap))
                continue
            progress.write(number, k)
            snap = None
            idx, method, kwargs = item
            replies.append(("r", *_run_one(instances[idx], method, kwargs, limits)))
            k += 1
        progress.write(number, k)  # saving the state: a last deadline for backends that pickle slowly
        try:
            new = pickle.dumps(instances, _PICKLE)
        except BaseException as e:  # noqa: BLE001
            replies.append(("x", f"the backend state could not be pickled ({type(e).__name__}: {e})"))
            return
        if len(new) > limits.max_state_bytes:
            replies.append(("x", f"the backend state grew to {len(new)} bytes, beyond the limit of {limits.max_state_bytes}"))
            return
        replies.append(("s", new))
    finally:
        _clear_limits()
        conn.send_bytes(pickle.dumps(replies, _PICKLE))


def _worker_main(fd: int, progress_fd: int) -> None:
    signal.signal(signal.SIGXCPU, _on_sigxcpu)
    conn = Connection(fd)
    progress = _Progress(progress_fd)
    os.close(progress_fd)
    while True:
        try:
            msg = conn.recv_bytes()
        except (EOFError, OSError):
            return  # the trainer went away
        try:
            _serve_request(conn, pickle.loads(msg), progress)
        except (BrokenPipeError, ConnectionResetError):
            return
        except _CpuLimitExceeded:  # a late SIGXCPU outside a call: the limit is cleared again by now
            continue


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise EOFError
        buf += chunk
    return buf


def zygote_main(fd: int) -> None:
    """Serve fork and preload requests on socket ``fd`` until the trainer closes it.

    A request is a 1-byte kind, a 4-byte payload length and the payload; a fork request carries the worker's
    socket and its progress board as ``SCM_RIGHTS`` file descriptors and is answered with the worker's pid.
    """
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # the kernel reaps killed workers: no zombies
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the trainer's business
    sock = socket.socket(fileno=fd)
    libc = ctypes.CDLL(None, use_errno=True)
    me = os.getpid()
    sock.sendall(b"R")
    while True:
        try:
            head, fds, _, _ = socket.recv_fds(sock, 5, 2)
            if not head:
                return  # EOF: the trainer closed the pool or died
            head += _recv_exact(sock, 5 - len(head))
            kind, size = head[:1], struct.unpack("<I", head[1:])[0]
            payload = _recv_exact(sock, size)
        except (OSError, EOFError):
            return
        if kind == b"P":  # preload modules so every later fork has them imported
            names, sys_path = pickle.loads(payload)
            sys.path[:] = list(sys_path)
            for name in names:
                try:
                    importlib.import_module(name)
                except BaseException:  # noqa: BLE001 - the worker reports import errors per request
                    pass
            sock.sendall(b"K")
        elif kind == b"F" and len(fds) == 2:
            pid = os.fork()
            if pid == 0:
                try:
                    sock.close()
                    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                    libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL))
                    if os.getppid() != me:
                        os._exit(0)
                    _worker_main(fds[0], fds[1])
                finally:
                    os._exit(0)
            for fd in fds:
                os.close(fd)
            sock.sendall(struct.pack("<i", pid))
        else:
            return


def _zygote_message(kind: bytes, payload: bytes = b"") -> bytes:
    return kind + struct.pack("<I", len(payload)) + payload


# ====================================================================================== trainer side


class _Worker:
    __slots__ = ("pid", "pidfd", "conn", "sys_path", "poller", "progress", "requests")

    def __init__(self, pid: int, conn: Connection, progress: _Progress):
        self.pid, self.conn, self.sys_path, self.progress, self.requests = pid, conn, None, progress, 0
        self.pidfd = os.pidfd_open(pid)
        self.poller = select.poll()
        self.poller.register(conn.fileno(), select.POLLIN)

    def deadline(self, number: int, sent: float, timeout: float) -> tuple[float, int]:
        """When the running call of request ``number`` overruns, and its index (-1: not started yet)."""
        return call_deadline(self.progress.read(), number, sent, timeout)

    def kill(self) -> None:
        """SIGKILL through the pidfd (never hits a recycled pid). Not waited for: the zygote's kernel reaps
        it, and waiting could block an event loop while a loaded machine schedules the exit."""
        try:
            signal.pidfd_send_signal(self.pidfd, signal.SIGKILL)
        except (ProcessLookupError, OSError):
            pass
        self.close()

    def close(self) -> None:
        for closer in (self.conn.close, lambda: os.close(self.pidfd), self.progress.map.close):
            try:
                closer()
            except OSError:
                pass


class _Zygote:
    def __init__(self) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        code = ("import sys, pickle; sys.path[:] = pickle.loads(bytes.fromhex(sys.argv[1])); "
                "from tool_envs.procpool import zygote_main; zygote_main(int(sys.argv[2]))")
        self.proc = subprocess.Popen(
            [sys.executable, "-c", code, pickle.dumps(list(sys.path)).hex(), str(theirs.fileno())],
            pass_fds=[theirs.fileno()], stdin=subprocess.DEVNULL, start_new_session=True,
        )
        theirs.close()
        self.sock = ours
        self.lock = threading.Lock()
        try:
            if _recv_exact(self.sock, 1) != b"R":
                raise EOFError
        except (EOFError, OSError):
            self.close()
            raise RuntimeError("the tool worker zygote did not start (see its error above)") from None

    def fork(self) -> _Worker:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        board = os.memfd_create("tool-env-progress", os.MFD_CLOEXEC)
        try:
            os.ftruncate(board, _Progress.FORMAT.size)
            progress = _Progress(board)
            with self.lock:
                socket.send_fds(self.sock, [_zygote_message(b"F")], [theirs.fileno(), board])
                pid = struct.unpack("<i", _recv_exact(self.sock, 4))[0]
        finally:
            theirs.close()
            os.close(board)
        return _Worker(pid, Connection(ours.detach()), progress)

    def preload(self, modules: list[str]) -> None:
        with self.lock:
            self.sock.sendall(_zygote_message(b"P", pickle.dumps((modules, list(sys.path)), _PICKLE)))
            _recv_exact(self.sock, 1)

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


_SPAWN = object()  # handed to a waiter instead of a worker: "a slot is free, fork your own"


class ProcessPool:
    """At most ``max_workers`` worker processes forked from one zygote; see the module docstring."""

    def __init__(self, max_workers: int):
        if max_workers < 1:
            raise ValueError(f"max_workers must be >= 1, got {max_workers}")
        self.max_workers = max_workers
        self._lock = threading.Lock()
        self._idle: list[_Worker] = []
        self._count = 0  # live workers + slots being forked
        self._waiters: list = []  # heap of (priority, arrival, waiter)
        self._arrivals = itertools.count()
        self._zygote: _Zygote | None = None
        self._zygote_lock = threading.Lock()
        self._preloaded: set[str] = set()
        self._closed = False
        self.killed = 0  # workers killed after a timeout (or found dead)
        self.started = 0

    # --- zygote ------------------------------------------------------------------------------------
    def _zyg(self) -> _Zygote:
        with self._zygote_lock:
            if self._closed:
                raise RuntimeError("the tool worker pool is shut down")
            if self._zygote is None:
                self._zygote = _Zygote()
            return self._zygote

    def missing_preloads(self, modules: list[str]) -> list[str]:
        return [m for m in modules if m not in self._preloaded]

    def preload(self, modules: list[str]) -> None:
        """Import ``modules`` in the zygote once, so every worker forked later has them loaded."""
        new = self.missing_preloads(modules)
        if new:
            self._zyg().preload(new)
            self._preloaded.update(new)

    def _spawn(self) -> _Worker:
        w = self._zyg().fork()
        self.started += 1
        return w

    # --- leasing -------------------------------------------------------------------------------------
    def _lease_now(self) -> Any:
        """Under the lock: an idle worker, ``_SPAWN`` (a free slot, reserved), or None (must wait)."""
        if self._idle:
            return self._idle.pop()
        if self._count < self.max_workers:
            self._count += 1
            return _SPAWN
        return None

    def _wait_in_line(self, priority: float | None, waiter: Any) -> None:
        """Under the lock: queue ``waiter``; no priority means behind every prioritised caller."""
        heapq.heappush(self._waiters, (math.inf if priority is None else priority, next(self._arrivals), waiter))

    def _acquire(self, priority: float | None = None) -> _Worker:
        with self._lock:
            got = self._lease_now()
            if got is None:
                waiter = [threading.Event(), None]
                self._wait_in_line(priority, waiter)
        if got is None:
            waiter[0].wait()
            got = waiter[1]
        return self._materialize(got)

    async def _aacquire(self, priority: float | None = None) -> _Worker:
        loop = asyncio.get_running_loop()
        with self._lock:
            got = self._lease_now()
            if got is None:
                fut = loop.create_future()
                self._wait_in_line(priority, (loop, fut))
        if got is None:
            got = await fut
        if got is _SPAWN:
            try:
                return await loop.run_in_executor(None, self._spawn)
            except BaseException:
                self._free_slot()
                raise
        return got

    def _materialize(self, got: Any) -> _Worker:
        if got is not _SPAWN:
            return got
        try:
            return self._spawn()
        except BaseException:
            self._free_slot()
            raise

    def _hand_over(self, item: Any) -> bool:
        """Under the lock: give ``item`` (a worker or ``_SPAWN``) to the next waiter; False if none waits."""
        while self._waiters:
            waiter = heapq.heappop(self._waiters)[2]
            if isinstance(waiter, list):
                waiter[1] = item
                waiter[0].set()
                return True
            loop, fut = waiter
            try:
                loop.call_soon_threadsafe(self._deliver, fut, item)
                return True
            except RuntimeError:  # that event loop is closed: try the next waiter
                continue
        return False

    def _deliver(self, fut: asyncio.Future, item: Any) -> None:
        if fut.done():  # the waiting task was cancelled: pass the item on
            if item is _SPAWN:
                self._free_slot()
            else:
                self._release(item)
        else:
            fut.set_result(item)

    def _release(self, worker: _Worker) -> None:
        with self._lock:
            if self._closed:
                worker.kill()
                self._count -= 1
                return
            if not self._hand_over(worker):
                self._idle.append(worker)

    def _free_slot(self) -> None:
        with self._lock:
            self._count -= 1
            if not self._closed and self._count < self.max_workers and self._hand_over(_SPAWN):
                self._count += 1

    def _discard(self, worker: _Worker) -> None:
        worker.kill()
        self.killed += 1
        self._free_slot()

    # --- one request ---------------------------------------------------------------------------------
    @staticmethod
    def _request(worker: _Worker, blob: bytes, calls: list, limits: CallLimits) -> bytes:
        path = tuple(sys.path)
        send_path = None if path == worker.sys_path else path
        worker.sys_path = path
        worker.requests += 1
        return pickle.dumps(("run", worker.requests, send_path, blob, calls, limits), _PICKLE)

    @staticmethod
    def _absorb(out: RunOutcome, msg: bytes) -> None:
        """Read the request's replies into ``out``."""
        for kind, *rest in pickle.loads(msg):
            if kind == "r":
                out.results.append(tuple(rest))
            elif kind == "c":
                out.snapshots.append(rest[0])
            elif kind == "s":
                out.state = rest[0]
            else:
                out.failed_at, out.failure, out.message = len(out.results), "state", rest[0]

    def run(self, blob: bytes, calls: list, limits: CallLimits, timeout: float | None,
            priority: float | None = None) -> RunOutcome:
        """Run ``calls`` on ``blob`` in a worker, blocking this thread; each call gets ``timeout`` seconds.
        ``priority``: when every worker is busy, lower values are served first (see the module docstring)."""
        for attempt in range(self.max_workers + 1):  # every idle worker may have died meanwhile
            worker = self._acquire(priority)
            out = RunOutcome()
            try:
                if not self._send(worker, blob, calls, limits, retry=attempt < self.max_workers):
                    continue
                sent = time.monotonic()
                while timeout is not None and not worker.poller.poll(0):
                    deadline, index = worker.deadline(worker.requests, sent, timeout)
                    left = deadline - time.monotonic()
                    if left <= 0:
                        return self._fail(worker, out, "timeout", index)
                    worker.poller.poll(left * 1000.0)
                self._absorb(out, worker.conn.recv_bytes())
            except (EOFError, OSError):
                return self._fail(worker, out, "crash", worker.deadline(worker.requests, 0.0, 0.0)[1])
            except BaseException:
                self._discard(worker)  # e.g. KeyboardInterrupt mid-request: the worker's state is unknown
                raise
            self._release(worker)
            return out
        raise AssertionError("unreachable: the last attempt never retries")

    async def arun(self, blob: bytes, calls: list, limits: CallLimits, timeout: float | None,
                   priority: float | None = None) -> RunOutcome:
        """Like :meth:`run`, but waits on the worker's socket with the running event loop."""
        loop = asyncio.get_running_loop()
        for attempt in range(self.max_workers + 1):  # every idle worker may have died meanwhile
            worker = await self._aacquire(priority)
            out = RunOutcome()
            try:
                if not self._send(worker, blob, calls, limits, retry=attempt < self.max_workers):
                    continue
                sent = time.monotonic()
                while not worker.poller.poll(0):
                    if timeout is None:
                        await _readable(loop, worker.conn.fileno(), None)
                        continue
                    deadline, index = worker.deadline(worker.requests, sent, timeout)
                    left = deadline - time.monotonic()
                    if left <= 0:
                        return self._fail(worker, out, "timeout", index)
                    await _readable(loop, worker.conn.fileno(), left)
                self._absorb(out, worker.conn.recv_bytes())
            except (EOFError, OSError):
                return self._fail(worker, out, "crash", worker.deadline(worker.requests, 0.0, 0.0)[1])
            except BaseException:
                self._discard(worker)  # cancelled mid-request: the reply would confuse the next user
                raise
            self._release(worker)
            return out
        raise AssertionError("unreachable: the last attempt never retries")

    def _send(self, worker: _Worker, blob: bytes, calls: list, limits: CallLimits, retry: bool) -> bool:
        """Send the request; False (worker discarded) if an idle worker had died meanwhile and ``retry``."""
        try:
            worker.conn.send_bytes(self._request(worker, blob, calls, limits))
            return True
        except OSError:
            if not retry:
                raise
            self._discard(worker)
            return False

    def _fail(self, worker: _Worker, out: RunOutcome, why: str, index: int) -> RunOutcome:
        """The request ended at call ``index`` (-1: before any call): no result came back."""
        self._discard(worker)
        out.failed_at, out.failure = max(index, 0), why
        return out

    # --- lifecycle -----------------------------------------------------------------------------------
    def worker_pids(self) -> list[int]:
        """Pids of the idle workers (busy ones are leased out)."""
        with self._lock:
            return [w.pid for w in self._idle]

    @property
    def zygote_pid(self) -> int | None:
        return self._zygote.proc.pid if self._zygote is not None else None

    def shutdown(self) -> None:
        """Kill every idle worker and stop the zygote (busy workers are killed when released)."""
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
            self._count -= len(idle)
        for w in idle:
            w.kill()
        with self._zygote_lock:
            if self._zygote is not None:
                self._zygote.close()
                self._zygote = None

    def _forget_after_fork(self) -> None:
        """In a forked child: drop the parent's workers without touching them (they are the parent's)."""
        for w in self._idle:
            w.close()
        self._idle, self._count, self._waiters, self._closed = [], 0, [], True
        if self._zygote is not None:
            try:
                self._zygote.sock.close()
            except OSError:
                pass
            self._zygote = None


async def _readable(loop: asyncio.AbstractEventLoop, fd: int, timeout: float | None) -> bool:
    """Wait until ``fd`` is readable (True) or ``timeout`` seconds pass (False), without blocking the loop."""
    fut = loop.create_future()

    def ready(value: bool) -> None:
        if not fut.done():
            fut.set_result(value)

    loop.add_reader(fd, ready, True)
    handle = loop.call_later(timeout, ready, False) if timeout is not None else None
    try:
        return await fut
    finally:
        loop.remove_reader(fd)
        if handle is not None:
            handle.cancel()


# ================================================================================= the process pool

_POOL_LOCK = threading.Lock()
_POOL: ProcessPool | None = None


def process_pool(max_workers: int) -> ProcessPool:
    """The process-wide pool (created on first use with ``max_workers``; see :func:`reset_process_pool`)."""
    global _POOL
    if _POOL is None:
        with _POOL_LOCK:
            if _POOL is None:
                _POOL = ProcessPool(max_workers)
    return _POOL


def reset_process_pool() -> None:
    """Shut the pool down (kills its workers and zygote); the next call to :func:`process_pool` starts anew."""
    global _POOL
    with _POOL_LOCK:
        pool, _POOL = _POOL, None
    if pool is not None:
        pool.shutdown()


def _after_fork_in_child() -> None:
    global _POOL
    if _POOL is not None:
        _POOL._forget_after_fork()
        _POOL = None


atexit.register(reset_process_pool)
os.register_at_fork(after_in_child=_after_fork_in_child)
