"""`serve --workers N`: N service processes on one listening socket, one of them the leader.

One process holds the GIL for every request it parses, checks and encodes, so one process uses
about one core. `--workers N` forks N processes that accept on the same socket. Only the leader
(the first) runs the provisioning worker loop and the scheduler, so a single process on SQLite
still does all the claiming; the others serve the API and pass their wake-ups (a request was
recorded, a schedule changed) to the leader through a pipe. A parent process only supervises:
it forwards SIGTERM and SIGINT, restarts a process that dies, and gives up if they keep dying.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import sys
import time
from collections.abc import Callable
from types import FrameType

log = logging.getLogger("sigsci_iga.service.processes")

#: Give up when this many processes died within `RESTART_WINDOW_SECONDS`.
MAX_RESTARTS = 5
RESTART_WINDOW_SECONDS = 60.0
#: What a process gets after SIGTERM before it is killed: its own shutdown takes at most 30 s.
STOP_SECONDS = 35.0

WAKE_WORKER = b"w"
WAKE_SCHEDULER = b"s"


class WakePipe:
    """A pipe from every process to the leader, carrying one byte per wake-up.

    Wake-ups only hurry the leader: it polls for due tasks and fires anyway. So a full pipe
    (the leader has plenty of wake-ups pending) drops the byte rather than blocking a request.
    """

    def __init__(self) -> None:
        self.read_fd, self.write_fd = os.pipe()
        os.set_blocking(self.read_fd, False)
        os.set_blocking(self.write_fd, False)

    def send(self, what: bytes) -> None:
        with contextlib.suppress(BlockingIOError):
            os.write(self.write_fd, what)

    def receive(self) -> bytes:
        """What was sent since the last call (empty if nothing)."""
        try:
            return os.read(self.read_fd, 4096)
        except BlockingIOError:
            return b""


class _Supervisor:
    def __init__(self, count: int, run_child: Callable[[int], int]) -> None:
        self.count = count
        self.run_child = run_child
        self.children: dict[int, int] = {}
        self.stopping_since: float | None = None
        self.deaths: list[float] = []
        self.code = 0

    def spawn(self, index: int) -> None:
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
                signal.signal(signal.SIGINT, signal.SIG_DFL)
                code = self.run_child(index)
            # Whatever happens, a child reports and exits: it must never return into the
            # parent's loop (uvicorn ends by re-raising SIGTERM, which ends it before this).
            except BaseException:
                log.exception("service process %d failed", index)
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        self.children[pid] = index
        log.info("service process started", extra={"index": index, "child": pid})

    def stop(self, signum: int, _frame: FrameType | None) -> None:
        if self.stopping_since is None:
            self.stopping_since = time.monotonic()
            log.info("stopping service processes", extra={"signal": signum})
        for pid in self.children:
            _signal(pid, signal.SIGTERM)

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self.stop)
        signal.signal(signal.SIGINT, self.stop)
        for index in range(self.count):
            self.spawn(index)
        while self.children:
            pid, status = os.waitpid(-1, os.WNOHANG)
            if pid == 0:
                if (
                    self.stopping_since is not None
                    and time.monotonic() - self.stopping_since > STOP_SECONDS
                ):
                    for child in self.children:
                        _signal(child, signal.SIGKILL)
                time.sleep(0.1)
                continue
            if pid not in self.children:
                continue
            index = self.children.pop(pid)
            code = os.waitstatus_to_exitcode(status)
            if self.stopping_since is not None:
                continue
            self._died(index, pid, code)
        return self.code

    def _died(self, index: int, pid: int, code: int) -> None:
        log.error("service process died", extra={"index": index, "child": pid, "code": code})
        now = time.monotonic()
        self.deaths = [t for t in self.deaths if now - t < RESTART_WINDOW_SECONDS] + [now]
        if len(self.deaths) > MAX_RESTARTS:
            log.error("service processes keep dying; stopping all of them")
            self.code = 1
            self.stop(signal.SIGTERM, None)
            return
        self.spawn(index)


def _signal(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signum)


def listen(host: str, port: int) -> socket.socket:
    """The socket every service process accepts on; an `OSError` names what went wrong."""
    family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
    listening = socket.create_server((host, port), family=family, backlog=2048)
    listening.set_inheritable(True)
    return listening


def supervise(count: int, run_child: Callable[[int], int]) -> int:
    """Fork `count` processes running `run_child(index)` and watch them; the exit code.

    Call it before any thread is started or any database is opened: a forked child gets a copy
    of the parent's memory but only the thread that forked.
    """
    return _Supervisor(count, run_child).run()
