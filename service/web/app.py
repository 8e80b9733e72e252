"""The application factory. Each resource is one cleanup context, in dependency order:
database → SMS sender → dispatcher and scheduler → the staff console's dependencies →
notifications' deliverer → the write check of readiness. Background work runs under a
`Supervisor` (nothing dies quietly)."""

from __future__ import annotations

import secrets
import socket
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from functools import partial

from aiohttp import web
from aiohttp.abc import AbstractResolver

from service.clock import Clock, SystemClock
from service.config import Settings
from service.console import CONSOLE, Console, Passwords
from service.console import setup as setup_console
from service.conversations import inbound
from service.conversations.reminders import Reminders
from service.delivery.dispatch import Dispatcher
from service.delivery.photos import Photos
from service.delivery.replies import Handled, Reply
from service.delivery.return_path import ReturnPath
from service.delivery.sms.base import SmsSender
from service.delivery.timers import Timers
from service.intake.ingest import Ingest
from service.notifications import retention
from service.notifications.deliverer import Deliverer
from service.observability.metrics import Metrics
from service.observability.supervision import Supervisor
from service.storage import pruning
from service.storage.checkpoint import checkpointing, database_file
from service.storage.heartbeat import WriteCheck
from service.storage.transactions import Session, Transactions
from service.web import (
    api,
    audit_api,
    erasure_api,
    escalations,
    events,
    media_api,
    notifications_api,
    ops,
    twilio_hooks,
)
from service.web.edge import bodies, hide_server_versions, server_header
from service.web.errors import problems, request_ids
from service.web.http_metrics import http_metrics
from service.web.keys import (
    CLOCK,
    DELIVERER,
    DISPATCHER,
    INGEST,
    METRICS,
    PHOTOS,
    RATE_LIMITS,
    RETURN_PATH,
    SENDER,
    SETTINGS,
    TIMERS,
    TRANSACTIONS,
    WRITE_CHECK,
)
from service.web.rate_limit import RateLimits

SenderFactory = Callable[[Settings], SmsSender]
DRAIN_SECONDS = 10.0


def create_app(
    settings: Settings,
    *,
    sender: SmsSender | SenderFactory | None = None,
    clock: Clock | None = None,
    instance: str | None = None,
    resolver: AbstractResolver | None = None,
) -> web.Application:
    """Build the service. `sender` is an SmsSender, a factory called inside the loop, or
    None for the configured backend; `resolver` resolves notification endpoints' names (the
    system's resolver when None)."""
    # Outermost first: the request metrics see the status the error middleware answered, and
    # that renders the edge's refusals (bodies: size and time).
    app = web.Application(
        middlewares=[http_metrics, request_ids, problems, bodies],
        client_max_size=settings.server.max_body_bytes,
    )
    app.on_response_prepare.append(server_header)
    hide_server_versions()
    app[SETTINGS] = settings
    app[RATE_LIMITS] = RateLimits.of(settings)
    app[CLOCK] = clock or SystemClock()
    app[METRICS] = Metrics()
    modules = (events, api, erasure_api, escalations, notifications_api, twilio_hooks, ops)
    app.add_routes(media_api.routes)
    for module in (*modules, audit_api):
        app.add_routes(module.routes)
    setup_console(app)
    app.cleanup_ctx.append(_database)
    app.cleanup_ctx.append(_sender(sender))
    instance = instance or f"{socket.gethostname()}-{secrets.token_hex(3)}"
    app.cleanup_ctx.append(_dispatch(instance))
    app.cleanup_ctx.append(_console)
    app.cleanup_ctx.append(_notifications(instance, resolver))
    app.cleanup_ctx.append(_photos(instance))
    app.cleanup_ctx.append(_write_check(instance))
    return app


async def _database(app: web.Application) -> AsyncIterator[None]:
    app[TRANSACTIONS] = transactions = Transactions.open(app[SETTINGS].database.url)
    supervisor = Supervisor(app[METRICS])
    app[INGEST] = Ingest(
        settings=app[SETTINGS],
        transactions=transactions,
        clock=app[CLOCK],
        spawn=partial(supervisor.spawn, task="intake"),
    )
    app[RETURN_PATH] = ReturnPath(
        settings=app[SETTINGS],
        transactions=transactions,
        clock=app[CLOCK],
        metrics=app[METRICS],
        handle_reply=partial(_handle_reply, app[SETTINGS]),
    )
    app[METRICS].watch_queue("events", lambda: app[INGEST].intake.waiting)
    app[METRICS].watch_queue("gate", lambda: transactions.gate.waiting)
    async with checkpointing(app[SETTINGS].database.url, supervisor=supervisor):
        yield
    await app[RETURN_PATH].close()
    await app[INGEST].close()
    await transactions.close()


def _handle_reply(settings: Settings, s: Session, reply: Reply, now: datetime) -> Handled:
    return inbound.handle(s, settings, reply, now=now)


def _sender(
    given: SmsSender | SenderFactory | None,
) -> Callable[[web.Application], AsyncIterator[None]]:
    async def ctx(app: web.Application) -> AsyncIterator[None]:
        if given is None:
            from service.delivery.sms import make_sender

            sender = make_sender(app[SETTINGS])
        else:
            sender = given(app[SETTINGS]) if callable(given) else given
        app[SENDER] = sender
        yield
        await sender.aclose()

    return ctx


def _dispatch(instance: str) -> Callable[[web.Application], AsyncIterator[None]]:
    async def ctx(app: web.Application) -> AsyncIterator[None]:
        dispatcher = Dispatcher(
            settings=app[SETTINGS],
            transactions=app[TRANSACTIONS],
            sender=app[SENDER],
            clock=app[CLOCK],
            instance=instance,
            metrics=app[METRICS],
        )
        app[METRICS].watch_queue("outcomes", lambda: dispatcher.recorder.waiting)
        timers = Timers(
            settings=app[SETTINGS].scheduler,
            transactions=app[TRANSACTIONS],
            clock=app[CLOCK],
            dispatch_due=dispatcher.dispatch_due,
            recover=dispatcher.recover,
            supervisor=dispatcher.supervisor,
        )
        dispatcher.rearm = timers.arm
        _periodic(app, timers)
        app[DISPATCHER], app[TIMERS] = dispatcher, timers
        timers.start()
        yield
        await timers.stop(timeout=DRAIN_SECONDS)
        await dispatcher.close(timeout=DRAIN_SECONDS)

    return ctx


async def _console(app: web.Application) -> AsyncIterator[None]:
    """The staff console's dependencies, once the database and the timers are up."""
    app[CONSOLE] = Console(
        settings=app[SETTINGS],
        transactions=app[TRANSACTIONS],
        clock=app[CLOCK],
        metrics=app[METRICS],
        arm=app[TIMERS].arm,
        passwords=Passwords(),
    )
    yield


def _periodic(app: web.Application, timers: Timers) -> None:
    """The sweeps of the rows besides the dispatcher's: the escalations' reminders (every
    poll), the outbox's retention and `[retention]`'s pruner (hourly)."""
    settings, transactions, clock = app[SETTINGS], app[TRANSACTIONS], app[CLOCK]
    reminders = Reminders(
        settings=settings, transactions=transactions, clock=clock, arm=timers.arm_many
    )
    poll = settings.scheduler.poll_interval.total_seconds()
    timers.every(reminders.run, seconds=poll, task="reminders")
    outbox = retention.Retention(settings=settings, transactions=transactions, clock=clock)
    timers.every(outbox.run, seconds=retention.EVERY_SECONDS, task="outbox_retention")
    pruner = pruning.Pruner(
        retention=settings.retention, transactions=transactions, clock=clock, metrics=app[METRICS]
    )
    timers.every(pruner.run, seconds=pruning.EVERY_SECONDS, task="pruning")


def _notifications(
    instance: str, resolver: AbstractResolver | None
) -> Callable[[web.Application], AsyncIterator[None]]:
    async def ctx(app: web.Application) -> AsyncIterator[None]:
        deliverer = Deliverer(
            settings=app[SETTINGS],
            transactions=app[TRANSACTIONS],
            clock=app[CLOCK],
            instance=instance,
            metrics=app[METRICS],
            resolver=resolver,
        )
        app[DELIVERER] = deliverer
        deliverer.start()
        yield
        await deliverer.stop(timeout=DRAIN_SECONDS)

    return ctx


def _photos(instance: str) -> Callable[[web.Application], AsyncIterator[None]]:
    """The photo downloader (contract §17), beside the dispatcher, its writes background ones."""

    async def ctx(app: web.Application) -> AsyncIterator[None]:
        photos = Photos(
            settings=app[SETTINGS],
            transactions=app[TRANSACTIONS],
            clock=app[CLOCK],
            instance=instance,
            metrics=app[METRICS],
        )
        app[PHOTOS] = photos
        photos.start()
        yield
        await photos.stop(timeout=DRAIN_SECONDS)

    return ctx


def _write_check(instance: str) -> Callable[[web.Application], AsyncIterator[None]]:
    """Readiness's write check (`heartbeat`), its first heartbeat written before serving."""

    async def ctx(app: web.Application) -> AsyncIterator[None]:
        path = database_file(app[SETTINGS].database.url)
        check = WriteCheck(app[TRANSACTIONS], instance=instance, clock=app[CLOCK], path=path)
        app[WRITE_CHECK] = check
        await check.status()
        yield
        await check.close()

    return ctx
