"""bench/run.py's options: sizes, what runs and how, what is kept."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

import callbacks
from databases import PG_BENCH_DB, PG_DEFAULT
from harness import ROOT

QUICK = {
    "events": (3000, 600),
    "burst": (10000, 2000),
    "duration": (30.0, 10.0),
    "pending": (1_000_000, 100_000),
    "idle": (30.0, 10.0),
    "rss_after": (60.0, 20.0),
    "mixed_duration": (20.0, 10.0),
}
PHASES = "ingest,burst,steady,mixed,pending,peer"


def parse_args(argv: Sequence[str] | None, description: str) -> argparse.Namespace:
    """The options; the sizes left unset take their full or --quick defaults."""
    p = argparse.ArgumentParser(
        prog="bench/run.py",
        description=description,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--quick", action="store_true", help="smaller counts (a few minutes less)")
    p.add_argument(
        "--phases",
        default=PHASES,
        help=f"comma list of {PHASES.replace(',', ', ')} (peer: Celery)",
    )
    p.add_argument(
        "--databases", default="sqlite,postgresql", help="comma list of sqlite, postgresql"
    )
    p.add_argument(
        "--postgres-url",
        default=PG_DEFAULT,
        help=f"server to create/drop the '{PG_BENCH_DB}' database on",
    )
    add_size_options(p)
    add_run_options(p)
    callbacks.add_options(p)
    given = callbacks.unset_fake_defaults(p)
    args = p.parse_args(argv)
    callbacks.fill_fake_defaults(args, given)
    for key, (full, small) in QUICK.items():
        if getattr(args, key) is None:
            setattr(args, key, small if args.quick else full)
    args.root = args.root.resolve()
    return args


def add_size_options(p: argparse.ArgumentParser) -> None:
    """How big each run is."""
    p.add_argument("--concurrency", default="16", help="ingest client concurrency (comma list)")
    p.add_argument("--events", type=int, help="ingest: events per run (3000; --quick 600)")
    p.add_argument("--warmup", type=int, default=60, help="ingest: unmeasured events first")
    p.add_argument("--burst", type=int, help="burst size (10000; --quick 2000)")
    p.add_argument("--rate", type=float, default=200, help="steady: messages/s")
    p.add_argument("--duration", type=float, help="steady: seconds (30; --quick 10)")
    p.add_argument("--pending", type=int, help="pending messages (1000000; --quick 100000)")
    p.add_argument("--idle", type=float, help="idle CPU window, s (30; --quick 10)")
    p.add_argument("--rss-after", type=float, help="second RSS reading, s after ready (60)")
    p.add_argument("--restarts", type=int, default=3, help="restarts timed (worst reported)")
    p.add_argument(
        "--no-steady-on-pending",
        dest="steady_on_pending",
        action="store_false",
        help="skip the extra steady run on top of the pending rows",
    )
    p.add_argument("--mixed-duration", type=float, help="mixed: seconds of load (20; --quick 10)")
    p.add_argument(
        "--mixed-rate", type=float, default=200, help="mixed: texts due each second (200)"
    )
    p.add_argument(
        "--mixed-events", type=float, default=200, help="mixed: signed events POSTed a second"
    )
    p.add_argument(
        "--mixed-spread",
        type=float,
        default=5.0,
        help="mixed: ms over which each second's texts fall due (5)",
    )
    p.add_argument(
        "--drain-timeout",
        type=float,
        default=120,
        help="give up waiting for messages this long after the last is due",
    )


def add_run_options(p: argparse.ArgumentParser) -> None:
    """What runs, how it is judged, and what is kept or recorded."""
    p.add_argument(
        "--workers",
        type=int,
        metavar="N",
        help="set [server] workers = N in the service's config (serve --workers N: a "
        "supervisor and N worker processes); unset, the key is left out, as a tree from "
        "before it (--root) requires",
    )
    p.add_argument(
        "--scheduler",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a [scheduler] setting for dispatch runs, e.g. "
        "max_concurrent_sends=64 (default: the service's defaults)",
    )
    p.add_argument(
        "--sms",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="set an [sms] setting for dispatch runs, e.g. merge_window=30m",
    )
    p.add_argument(
        "--targets-on-postgres",
        action="store_true",
        help="also judge PostgreSQL dispatch figures against the targets",
    )
    add_output_options(p)


def add_output_options(p: argparse.ArgumentParser) -> None:
    """Which tree runs, and what is kept or recorded."""
    p.add_argument(
        "--lateness-file",
        type=Path,
        metavar="FILE",
        help="append each dispatched message's 'label send_at lateness' (seconds)",
    )
    p.add_argument(
        "--profile",
        type=Path,
        metavar="DIR",
        help="py-spy record the service during each measured window into DIR",
    )
    p.add_argument(
        "--profile-args",
        default="",
        metavar="ARGS",
        help="extra py-spy record arguments, e.g. '--gil' or '--native'",
    )
    p.add_argument(
        "--root",
        type=Path,
        default=ROOT,
        help="run the service from this tree (python -m service with this working "
        "directory), e.g. a patched copy; default: this repository",
    )
    p.add_argument("--keep", action="store_true", help="keep the work directory (logs, dbs)")
