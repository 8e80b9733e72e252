"""The `aftercare` command: serve, migrate, check-config, preview (contract §3), erase (§19), staff
(§16, in service.staff_commands)."""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import sys
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from functools import partial

from service.config import Loaded, from_environment, load_settings, resolve_config_path
from service.errors import ConfigError

log = logging.getLogger("aftercare")


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; the exit status says whether it worked."""
    args = _parser().parse_args(argv)
    path = resolve_config_path(args.config)
    try:
        loaded = load_settings(path)
    except ConfigError as exc:
        for problem in exc.problems:
            # File-level problems already start with the path; the environment's name a variable.
            own = problem.startswith(f"{path}: ") or from_environment(problem)
            print(("" if own else f"{path}: ") + problem, file=sys.stderr)
        return 1
    result: int = args.run(loaded, args)
    return result


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="aftercare", description=__doc__)
    parser.add_argument(
        "--config",
        help="TOML file (default $AFTERCARE_CONFIG, ./config.toml, ./config.example.toml)",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the service")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.add_argument("--workers", type=_workers, help="processes (default server.workers)")
    serve.set_defaults(run=_serve)
    commands.add_parser("migrate", help="apply migrations").set_defaults(run=_migrate)
    check = commands.add_parser("check-config", help="validate the configuration")
    check.set_defaults(run=_check)
    preview = commands.add_parser("preview", help="print a protocol's plan")
    preview.add_argument("--protocol", required=True)
    preview.add_argument("--clinic")
    preview.add_argument("--completed-at", type=_instant)
    preview.add_argument(
        "--appointment-at", type=_instant, help="plan the prep steps for an appointment then"
    )
    preview.add_argument("--timezone")
    preview.add_argument("--session", type=int, default=1)
    preview.add_argument("--of", type=int, default=None)
    preview.set_defaults(run=_preview)
    erase = commands.add_parser("erase", help="erase a patient (contract §19)")
    erase.add_argument("--clinic", required=True)
    erase.add_argument("--patient", required=True, help="the clinic's patient id")
    erase.set_defaults(run=_erase)
    from service import staff_commands

    staff_commands.add_parser(commands)
    return parser


def _instant(text: str) -> datetime:
    from service.planning.timing import anchor

    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if value.tzinfo is None:
        raise argparse.ArgumentTypeError("give a time zone, e.g. 2026-11-25T14:30:00Z")
    try:
        return anchor(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _workers(text: str) -> int:
    if text == "auto":
        return 0
    try:
        count = int(text)
    except ValueError:
        count = -1
    if not 1 <= count <= 64:
        raise argparse.ArgumentTypeError("give a number of processes from 1 to 64, or auto")
    return count


def _serve(loaded: Loaded, args: argparse.Namespace) -> int:
    settings = loaded.settings
    host, port = args.host or settings.server.host, args.port or settings.server.port
    count = _worker_count(loaded, args)
    if not _announce(loaded, args, host, role="supervisor" if count > 1 else None):
        return 1
    if count == 1:
        _prepare(loaded)
        return _serve_one(loaded, host, port)
    from service.web import workers  # imports nothing that records metrics (see there)

    # The workers read the count running from their settings (pacing shares `mps` by it).
    server = settings.server.model_copy(update={"workers": count})
    loaded = replace(loaded, settings=settings.model_copy(update={"server": server}))
    return workers.serve(
        host=host,
        port=port,
        count=count,
        prepare=partial(_prepare, loaded, fork=True),
        run_worker=partial(_serve_one, loaded, host, port),
    )


def _worker_count(loaded: Loaded, args: argparse.Namespace) -> int:
    """`--workers` (0: auto), else `server.workers`."""
    server = loaded.settings.server
    if args.workers is None:
        return server.worker_count()
    return server.model_copy(update={"workers": args.workers or "auto"}).worker_count()


def _prepare(loaded: Loaded, *, fork: bool = False) -> None:
    """Before serving: the migrations; before forking workers, also every module a worker
    runs, imported once here and shared by all (a worker starts without importing), and the
    heap frozen, so that no collection in a worker copies the shared pages."""
    from service.storage.database import migrate

    if loaded.settings.database.migrate_on_start:
        migrate(loaded.settings.database.url)
    if fork:
        import service.web.app  # noqa: F401

        gc.collect()
        gc.freeze()


def _serve_one(
    loaded: Loaded,
    host: str,
    port: int,
    worker: int | None = None,
    supervisor: int | None = None,
) -> int:
    """Serve in this process: the only one, or `worker` of `serve --workers N`, forked by
    `supervisor` (it announced, checked and migrated)."""
    from service.observability.logs import configure_logging
    from service.web import serving
    from service.web.access_log import AccessLog
    from service.web.app import create_app

    settings = loaded.settings
    if worker is not None:
        configure_logging(logging.getLevelName(settings.server.log_level), worker=worker)
    app = create_app(settings)
    app.on_startup.append(_freeze_heap)  # after the cleanup contexts have started
    loop = _event_loop()
    logging.getLogger("aftercare").info(
        "serving",
        extra={"host": host, "port": port, "event_loop": type(loop).__module__.split(".")[0]},
    )
    serving.run(
        app,
        host=host,
        port=port,
        max_connections=settings.server.max_connections,
        loop=loop,
        reuse_port=worker is not None,
        parent=supervisor,
        access_log=logging.getLogger("aftercare.access"),
        access_log_class=AccessLog,
        access_log_format="%r %s %b %Tfs",
    )
    return 0


def _announce(
    loaded: Loaded, args: argparse.Namespace, host: str, *, role: str | None = None
) -> bool:
    """Logging first, then what an operator must know; False when serving `host` is refused."""
    from service.config import exposure_problems, fell_back
    from service.observability.logs import configure_logging

    configure_logging(logging.getLevelName(loaded.settings.server.log_level), worker=role)
    if fell_back(args.config):
        log.warning(
            "no --config, $AFTERCARE_CONFIG or ./config.toml: using the example "
            "configuration ./config.example.toml"
        )
    if loaded.ignored:
        log.warning(
            "environment variables that are not configuration, ignored",
            extra={"variables": ", ".join(loaded.ignored)},
        )
    problems = exposure_problems(loaded.settings, host)
    for problem in problems:
        print(problem, file=sys.stderr)
    return not problems


def _event_loop() -> asyncio.AbstractEventLoop:
    """uvloop's event loop where it is installed (Linux and macOS), else asyncio's own.

    Every send, claim and event is a chain of awaits on the one loop, and uvloop's costs less a
    step: bursts drain faster and the steady median is lower (docs/benchmarks.md)."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


async def _freeze_heap(_app: object) -> None:
    # A full collection walks every object, and the many a started service holds (modules,
    # metadata, pydantic and twilio classes) made each one a long pause of the event loop:
    # timers fired that late (docs/internals.md). What exists once started lives as long as the
    # process; keep it out of collection (https://docs.python.org/3/library/gc.html#gc.freeze).
    gc.collect()
    gc.freeze()


def _migrate(loaded: Loaded, _args: argparse.Namespace) -> int:
    from service.storage.database import migrate

    migrate(loaded.settings.database.url)
    print("migrated to head")
    return 0


def _check(loaded: Loaded, _args: argparse.Namespace) -> int:
    from service.config import exposure_problems

    for warning in loaded.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    settings = loaded.settings
    # What `serve` would refuse on server.host (its --host may name another address).
    problems = exposure_problems(settings, settings.server.host)
    for problem in problems:
        print(problem, file=sys.stderr)
    if problems:
        return 1
    print(
        f"configuration is valid: {len(settings.clinics)} clinic(s), "
        f"{len(settings.protocols)} protocol(s)"
    )
    print(settings.retention.summary())
    return 0


def _preview(loaded: Loaded, args: argparse.Namespace) -> int:
    from service.previews import preview

    try:
        print(
            preview(
                loaded.settings,
                protocol=args.protocol,
                clinic_id=args.clinic,
                completed_at=args.completed_at,
                timezone=args.timezone,
                session=args.session,
                of=args.of,
                appointment_at=args.appointment_at,
            )
        )
    except ValueError as exc:
        print(f"aftercare preview: {exc}", file=sys.stderr)
        return 2
    return 0


def _erase(loaded: Loaded, args: argparse.Namespace) -> int:
    """Erase a patient as the API does (audited as `cli`); print the answer (JSON)."""
    from service.errors import ProblemError

    if args.clinic not in loaded.settings.clinics:
        print(f"aftercare erase: no clinic {args.clinic!r} in the configuration", file=sys.stderr)
        return 2
    try:
        print(asyncio.run(_erased(loaded, args.clinic, args.patient)))
    except ProblemError as exc:
        print(f"aftercare erase: {exc.detail}", file=sys.stderr)
        return 1
    return 0


async def _erased(loaded: Loaded, clinic_id: str, patient_id: str) -> str:
    from service.clock import SystemClock
    from service.intake import erasure
    from service.reads.answers import render
    from service.reads.erasures import ERASURE
    from service.storage.transactions import Transactions

    transactions = Transactions.open(loaded.settings.database.url)
    try:
        done = await erasure.erase(
            transactions,
            loaded.settings,
            clinic_id,
            patient_id,
            actor="cli",
            now=SystemClock().now(),
        )
    finally:
        await transactions.close()
    return render(ERASURE, done)


if __name__ == "__main__":
    sys.exit(main())
