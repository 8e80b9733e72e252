"""`serve` with several workers: one supervising process and N worker processes, each a whole
replica (HTTP, dispatcher, return path, sweeps) on the same database and port
(docs/workers.md).

The supervisor runs the migrations, imports what a worker runs, and forks the workers: a
worker starts without importing anything (a second interpreter importing the service took
2 s, most of a restart's time). Each worker listens on the port with `SO_REUSEPORT`, so that
the kernel spreads new connections evenly among them. One listening socket shared by all was
tried first: the worker that woke first accepted every waiting connection, and with keep-alive
clients (a clinic's system, Twilio's callbacks) one worker served nearly all the requests.
The supervisor holds the port bound, not listening, with the same option: a port already
taken is refused once, here, `--port 0` is resolved once, and no other program takes the
port while a worker restarts.

It gives the workers a fresh directory for prometheus_client's multiprocess files (`/metrics`
adds them up): prometheus_client chooses that mode when it is imported, so this module
imports nothing that does before `serve` has set the directory. It starts a worker that dies
again (after a backoff), and on SIGTERM or SIGINT asks every worker to stop, waits for them
and ends. Workers claim due messages as replicas on PostgreSQL do; on SQLite their writes take
turns at one file lock (`storage.writer_lock`).
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import FrameType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from service.observability.supervision import Backoff

log = logging.getLogger("aftercare.workers")
METRICS_DIR = "PROMETHEUS_MULTIPROC_DIR"  # prometheus_client's own variable
STOP_GRACE = 30.0  # s the workers get to end after SIGTERM, then SIGKILL
EARLY = 5.0  # s: a worker failing this soon, before any worker lasted so long, is a bad start
POLL = 0.5  # s between looks at the workers (an idle supervisor costs next to nothing)
FIRST_DELAY, MAX_DELAY = 0.5, 30.0  # s before a dead worker starts again, doubling

RunWorker = Callable[[int, int], int]  # (worker's number, supervisor's pid) -> exit status


class Forked:
    """A forked worker, as the supervisor watches it."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.status: int | None = None  # once ended: its exit code, or -signal

    def poll(self) -> int | None:
        """Its exit status once it has ended (reaped here), else None."""
        if self.status is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.status = os.waitstatus_to_exitcode(status)
        return self.status

    def wait(self, timeout: float) -> int | None:
        """Its exit status, waiting at most `timeout` seconds (None: still running)."""
        deadline = time.monotonic() + timeout
        while self.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.status

    def signal(self, sig: int) -> None:
        """Send `sig`, unless it has ended."""
        if self.poll() is None:
            os.kill(self.pid, sig)


@dataclass
class _Worker:
    number: int
    backoff: Backoff  # deaths in a row, and the wait before starting it again
    process: Forked | None = None
    started: float = 0.0
    due: float = 0.0  # when to start it again (time.monotonic()), once it has ended


def bind(host: str, port: int) -> socket.socket:
    """The port, held (bound, not listening) for the workers, which listen on it too."""
    family, kind, proto, _name, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(address)
    return sock


class Workers:
    """N forked worker processes, kept running until asked to stop."""

    def __init__(self, count: int, run_worker: RunWorker) -> None:
        # Imported here, not above: supervision imports prometheus_client, which `serve` must
        # import only once the metrics directory is set.
        from service.observability.supervision import Backoff

        self.run_worker = run_worker
        self.workers = [
            _Worker(number, Backoff(first=FIRST_DELAY, cap=MAX_DELAY))
            for number in range(1, count + 1)
        ]
        self.stopping = False
        self.settled = False  # some worker has run longer than EARLY

    def run(self) -> int:
        """Start the workers and watch them until SIGTERM or SIGINT; the exit status."""
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._asked_to_stop)
        for worker in self.workers:
            self._start(worker)
        failed = False
        while not failed:
            time.sleep(POLL)
            if self.stopping:  # (a signal to the whole group reaches the workers too)
                break
            failed = self._look()
        self._stop_all()
        return 1 if failed else 0

    def _asked_to_stop(self, _sig: int, _frame: FrameType | None) -> None:
        self.stopping = True

    def _start(self, worker: _Worker) -> None:
        supervisor = os.getpid()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            _worker_process(self.run_worker, worker.number, supervisor)  # never returns
        worker.process = Forked(pid)
        worker.started = time.monotonic()
        log.info("worker started", extra={"worker": worker.number, "worker_pid": pid})

    def _look(self) -> bool:
        """Restart what ended (when its backoff is over); True when the start itself failed."""
        now = time.monotonic()
        for worker in self.workers:
            if worker.process is None:
                if now >= worker.due:
                    self._start(worker)
                continue
            lasted = now - worker.started
            self.settled = self.settled or lasted > EARLY
            if lasted > MAX_DELAY:  # it ran well for a while: a new death starts the backoff
                worker.backoff.succeeded()
            code = worker.process.poll()
            if code is not None and self._ended(worker, code, now):
                return True
        return False

    def _ended(self, worker: _Worker, code: int, now: float) -> bool:
        """Note a worker's end; True when it failed at the start (the configuration or the
        database is broken: restarting would fail the same way)."""
        from service.observability.metrics import process_gone

        assert worker.process is not None
        pid, worker.process = worker.process.pid, None
        process_gone(pid)
        if code > 0 and not self.settled and now - worker.started < EARLY:
            log.error("worker failed to start", extra={"worker": worker.number, "worker_pid": pid})
            return True
        delay = worker.backoff.failed()
        worker.due = now + delay
        log.warning(
            "worker ended; starting another",
            extra={"worker": worker.number, "worker_pid": pid, "status": _status(code)}
            | {"after": delay},
        )
        return False

    def _stop_all(self) -> None:
        """SIGTERM to every worker; SIGKILL to any still running after STOP_GRACE."""
        from service.observability.metrics import process_gone

        running = [w.process for w in self.workers if w.process is not None]
        for process in running:
            process.signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE
        for process in running:
            if process.wait(max(0.0, deadline - time.monotonic())) is None:
                log.error("worker did not stop in time; killed", extra={"worker_pid": process.pid})
                process.signal(signal.SIGKILL)
                process.wait(STOP_GRACE)
            process_gone(process.pid)
        log.info("workers stopped", extra={"workers": len(running)})


def _worker_process(run_worker: RunWorker, number: int, supervisor: int) -> None:
    """The forked child: the supervisor's signal handlers undone, the worker run, and the
    process ended with its status (never returning into the supervisor's code)."""
    status = 1
    try:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, signal.SIG_DFL)
        status = run_worker(number, supervisor)
    except BaseException as exc:  # a child must end here, whatever happened
        from service.observability.supervision import where

        log.error("worker failed", extra={"error": type(exc).__name__, "where": where(exc)})
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)


def serve(
    *, host: str, port: int, count: int, prepare: Callable[[], None], run_worker: RunWorker
) -> int:
    """Run `count` workers serving host:port until SIGTERM or SIGINT; the exit status.
    `prepare` runs first, here (migrations, imports); each worker runs `run_worker`."""
    # A bug of ours, caught by tests/test_workers.py: imported before the directory is set,
    # prometheus_client would keep each worker's metrics to itself.
    assert "prometheus_client" not in sys.modules, "prometheus_client imported too early"
    held = bind(host, port)
    port = held.getsockname()[1]  # the one bound, should `port` be 0
    metrics_dir = tempfile.mkdtemp(prefix="aftercare-metrics-")
    # Before anything imports prometheus_client: the workers' metrics go to files there.
    os.environ[METRICS_DIR] = metrics_dir
    log.info("serving", extra={"host": host, "port": port, "workers": count})
    try:
        prepare()
        return Workers(count, run_worker).run()
    finally:
        held.close()
        shutil.rmtree(metrics_dir, ignore_errors=True)
        del os.environ[METRICS_DIR]


def _status(code: int) -> str:
    """An exit status as an operator reads it: `exit 1`, `SIGKILL`."""
    return f"exit {code}" if code >= 0 else signal.Signals(-code).name
