"""Run 5, the peer: issue 5's Celery worker with ETA tasks on Redis (bench/peer_celery.py),
driven with the same burst and steady run as the service, then its memory per pending
reminder. Skipped with a note without Celery or Redis."""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import signal
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

import seed
from arrivals import Arrivals, collect, dispatch_batch, wait_arrivals
from harness import BENCH, PY, Context
from machine import CpuWindow, tree_rss_mb
from report import log, pct

PEER_PENDING = 20_000


def peer_missing() -> str | None:
    """Why the Celery peer cannot run here, or None."""
    try:
        import peer_celery
    except ImportError as exc:
        return f"Celery peer: not installed ({exc.name}); pip install -e '.[bench]'"
    try:
        peer_celery.app.connection_for_write().ensure_connection(max_retries=1)
    except Exception as exc:
        return f"Celery peer: no Redis at {peer_celery.BROKER} ({type(exc).__name__})"
    return None


class CeleryWorker:
    """`celery -A peer_celery worker` in its own process: one pool process per core, or, when
    the fake takes time to answer (`threads`), that many pool threads, as many sends in flight
    as the service's `max_concurrent_sends`."""

    def __init__(self, workdir: Path, twilio_url: str, threads: int | None = None) -> None:
        self.log = workdir / "celery_worker.log"
        self.pool = (
            ["--pool=threads", f"--concurrency={threads}"]
            if threads
            else [f"--concurrency={os.cpu_count()}"]
        )
        self.env = {**os.environ, "PEER_TWILIO_URL": twilio_url}
        self.process: subprocess.Popen[bytes] | None = None

    async def start(self, ctx: Context) -> None:
        import peer_celery

        peer_celery.app.control.purge()
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [
                    PY,
                    "-m",
                    "celery",
                    "-A",
                    "peer_celery",
                    "worker",
                    "--loglevel=WARNING",
                    *self.pool,
                    "--without-gossip",
                    "--without-mingle",
                    "--without-heartbeat",
                ],
                cwd=BENCH,
                env=self.env,
                stdout=out,
                stderr=out,
                start_new_session=True,
            )  # its pool processes go with it, in one group
        await ctx.fake.reset(ctx.http)
        peer_celery.send.delay("+14155550199", "[warm#0] the worker is up")
        await wait_arrivals(ctx, 1, deadline=time.time() + 60)
        if await ctx.fake.count(ctx.http) < 1:
            raise RuntimeError(f"the Celery worker did not start; see {self.log}")

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    async def stop(self) -> None:
        import peer_celery

        if self.process and self.process.poll() is None:
            # Killed, not stopped: a warm shutdown would hand its ETA tasks back to Redis.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)
        with peer_celery.app.connection_for_write() as conn:
            conn.default_channel.client.flushdb()


def enqueue(batch: seed.Batch) -> None:
    """One `apply_async(eta=send_at)` per message, as a producer of reminders would."""
    import peer_celery

    with peer_celery.app.producer_or_acquire() as producer:
        for i, epoch in enumerate(batch.send_at):
            peer_celery.send.apply_async(
                (batch.phone(i), batch.body(i)), eta=seed.utc(epoch), producer=producer
            )


async def peer_due(
    ctx: Context, worker: CeleryWorker, label: str, send_at: Sequence[float], area: int
) -> tuple[Arrivals, dict[str, float]]:
    """Enqueue `send_at` tasks ahead of their time, wait for them at the fake."""
    await ctx.fake.reset(ctx.http)
    batch = dispatch_batch(label, send_at, area)
    t0 = time.time()
    await asyncio.to_thread(enqueue, batch)
    log(
        f"peer {label}: {len(send_at)} tasks enqueued in {time.time() - t0:.1f} s; first due "
        f"in {send_at[0] - time.time():.1f} s"
    )
    await asyncio.sleep(max(0.0, send_at[0] - time.time() - 0.5))
    cpu = CpuWindow(worker=worker.pid, fake=ctx.fake.pid)
    await wait_arrivals(ctx, len(send_at), deadline=send_at[-1] + ctx.args.drain_timeout)
    cores = cpu.cores()
    await asyncio.sleep(1.0)
    return await collect(ctx, batch), cores


def peer_threads(ctx: Context) -> int | None:
    """Pool threads for the peer when creates take time (as many as the service may have in
    flight), else None: a process per core, which sends fastest when answers are instant."""
    from service.config import SchedulerSettings

    if ctx.args.create_latency.strip() in ("0", "0-0", "0.0"):
        return None
    return int(ctx.scheduler.get("max_concurrent_sends", SchedulerSettings().max_concurrent_sends))


async def bench_peer(ctx: Context) -> None:
    missing = peer_missing()
    if missing:
        ctx.report.note(missing)
        return
    import celery

    threads = peer_threads(ctx)
    worker = CeleryWorker(ctx.workdir, ctx.fake.url, threads)
    pool = f"{threads} threads" if threads else f"{os.cpu_count()} processes"
    label = f"Peer: Celery {celery.__version__}, ETA tasks on Redis, {pool}"
    try:
        await worker.start(ctx)
        await peer_burst(ctx, worker, label)
        await peer_steady(ctx, worker, label)
        await peer_memory(ctx, worker, label)
    finally:
        await worker.stop()


async def peer_burst(ctx: Context, worker: CeleryWorker, label: str) -> None:
    """The burst run, tasks enqueued ahead of the instant they are all due."""
    n = ctx.args.burst
    got, cores = await peer_due(ctx, worker, "burst", [time.time() + 5 + n / 2000] * n, 0)
    scenario = f"{label}, burst of {n:,}"
    late = got.all_lateness
    ctx.report.add(scenario, "drain rate", got.drain_rate(), "msg/s")
    ctx.report.add(scenario, "lateness p50", pct(late, 0.5), "s")
    ctx.report.add(scenario, "lateness p99", pct(late, 0.99), "s")
    ctx.report.add(scenario, "lateness max", max(late, default=math.nan), "s")
    ctx.report.note(f"{scenario}: {got.summary()}; worker {cores['worker']:.2f} cores")


async def peer_steady(ctx: Context, worker: CeleryWorker, label: str) -> None:
    """The steady run, `--rate` tasks a second for `--duration` seconds."""
    rate, seconds = ctx.args.rate, ctx.args.duration
    t0 = time.time() + 5 + rate * seconds / 2000
    got, cores = await peer_due(
        ctx, worker, "steady", [t0 + i / rate for i in range(int(rate * seconds))], 1
    )
    scenario = f"{label}, steady {rate:g}/s for {seconds:g} s"
    ms = [x * 1000 for x in got.all_lateness]
    ctx.report.figures["peer_steady_p99"] = pct(ms, 0.99)
    for q, name in ((0.5, "p50"), (0.99, "p99")):
        ctx.report.add(scenario, f"lateness {name}", pct(ms, q), "ms")
    ctx.report.add(scenario, "lateness max", max(ms, default=math.nan), "ms")
    ctx.report.note(f"{scenario}: {got.summary()}; worker {cores['worker']:.2f} cores")


async def peer_memory(ctx: Context, worker: CeleryWorker, label: str) -> None:
    """Memory the worker holds per reminder pending: PEER_PENDING due 1 h to 4 weeks ahead."""
    before = tree_rss_mb(worker.pid)
    now = time.time()
    n = PEER_PENDING
    batch = dispatch_batch("pending", [now + 3600 + i * 2_419_200 / n for i in range(n)], 2)
    await asyncio.to_thread(enqueue, batch)
    import peer_celery

    with peer_celery.app.connection_for_write() as conn:
        client = conn.default_channel.client
        deadline = time.time() + 120
        while client.llen("celery") and time.time() < deadline:  # until the worker holds all
            await asyncio.sleep(0.5)
    await asyncio.sleep(2.0)
    after = tree_rss_mb(worker.pid)
    scenario = f"{label}, {n:,} pending"
    ctx.report.add(scenario, "worker RSS per pending reminder", (after - before) * 1024 / n, "KB")
    ctx.report.note(
        f"{scenario}: worker and pool RSS {before:.0f} MB before, {after:.0f} MB holding them"
    )
