"""`serve` with several workers: one supervising process and N worker processes, each a whole
replica (HTTP, dispatcher, return path, sweeps) on the same database and the same listening
socket (docs/workers.md).

Each worker listens on the port with `SO_REUSEPORT`, so that the kernel spreads new
connections evenly among them. One listening socket shared by all was tried first: the worker
that woke first accepted every waiting connection, and with keep-alive clients (a clinic's
system, Twilio's callbacks) one worker served nearly all the requests (docs/workers.md). The
supervisor holds the port bound, not listening, with the same option: a port already taken is
refused once, here, `--port 0` is resolved once, and no other program takes the port while a
worker restarts.
It runs the migrations before any worker starts, gives the workers a fresh directory for
prometheus_client's multiprocess files (`/metrics` adds them up), restarts a worker that
dies (after a backoff), and on SIGTERM or SIGINT asks every worker to stop, waits for them and
ends. Workers claim due messages as replicas on PostgreSQL do; on SQLite their writes take
turns at one file lock (`storage.writer_lock`).
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

from service.observability.metrics import process_gone
from service.observability.supervision import Backoff

log = logging.getLogger("aftercare.workers")
METRICS_DIR = "PROMETHEUS_MULTIPROC_DIR"  # prometheus_client's own variable
COUNT = "AFTERCARE_SERVER__WORKERS"  # the setting, as the environment overrides it
STOP_GRACE = 30.0  # s the workers get to end after SIGTERM, then SIGKILL
EARLY = 5.0  # s: a worker failing this soon, before any worker lasted so long, is a bad start
POLL = 0.1  # s between looks at the workers


@dataclass
class _Worker:
    number: int
    process: subprocess.Popen[bytes] | None = None
    started: float = 0.0
    due: float = 0.0  # when to start it again (time.monotonic()), once it has ended
    backoff: Backoff = field(default_factory=lambda: Backoff(first=0.5, cap=30.0))


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
    """N worker processes of `serve`, kept running until asked to stop."""

    def __init__(self, config: Path, count: int, host: str, port: int) -> None:
        self.config, self.host, self.port = config, host, port
        # Each worker reads `server.workers` as the count running (pacing shares `mps` by it).
        self.env = {**os.environ, COUNT: str(count)}
        self.workers = [_Worker(number) for number in range(1, count + 1)]
        self.stopping = False
        self.began = time.monotonic()
        self.settled = False  # some worker has run longer than EARLY

    def command(self, number: int) -> list[str]:
        """How a worker is started: this interpreter, the same configuration, the port."""
        return [
            *(sys.executable, "-m", "service", "--config", str(self.config), "serve"),
            *("--worker", str(number), "--supervisor", str(os.getpid())),
            *("--host", self.host, "--port", str(self.port), "--reuse-port"),
        ]

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
        worker.process = subprocess.Popen(self.command(worker.number), env=self.env)
        worker.started = time.monotonic()
        log.info(
            "worker started", extra={"worker": worker.number, "worker_pid": worker.process.pid}
        )

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
            if lasted > worker.backoff.cap:  # it ran well for a while: a new failure
                worker.backoff.succeeded()
            code = worker.process.poll()
            if code is None:
                continue
            if self._ended(worker, code, now):
                return True
        return False

    def _ended(self, worker: _Worker, code: int, now: float) -> bool:
        """Note a worker's end; True when it failed at the start (the configuration or the
        database is broken: restarting would fail the same way)."""
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
            extra={
                "worker": worker.number,
                "worker_pid": pid,
                "status": _status(code),
                "after": delay,
            },
        )
        return False

    def _stop_all(self) -> None:
        """SIGTERM to every worker; SIGKILL to any still running after STOP_GRACE."""
        running = [w.process for w in self.workers if w.process is not None]
        for process in running:
            _signal(process, signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE
        for process in running:
            try:
                process.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.error("worker did not stop in time; killed", extra={"worker_pid": process.pid})
                _signal(process, signal.SIGKILL)
                process.wait()
            process_gone(process.pid)
        log.info("workers stopped", extra={"workers": len(running)})


def serve(config: Path, *, host: str, port: int, count: int) -> int:
    """Run `count` workers serving host:port until SIGTERM or SIGINT; the exit status."""
    held = bind(host, port)
    port = held.getsockname()[1]  # the one bound, should `port` be 0
    metrics_dir = tempfile.mkdtemp(prefix="aftercare-metrics-")
    # The workers' (inherited) and this process's own, for `process_gone`; this process
    # imported prometheus_client before, so it records nothing there itself.
    os.environ[METRICS_DIR] = metrics_dir
    log.info("serving", extra={"host": host, "port": port, "workers": count})
    try:
        return Workers(config, count, host, port).run()
    finally:
        held.close()
        shutil.rmtree(metrics_dir, ignore_errors=True)
        del os.environ[METRICS_DIR]


def _signal(process: subprocess.Popen[bytes], sig: int) -> None:
    if process.poll() is None:
        process.send_signal(sig)


def _status(code: int) -> str:
    """An exit status as an operator reads it: `exit 1`, `SIGKILL`."""
    return f"exit {code}" if code >= 0 else signal.Signals(-code).name
