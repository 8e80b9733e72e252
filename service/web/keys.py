"""Typed application keys, in one place."""

from __future__ import annotations

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from service.clock import Clock
from service.config import Settings
from service.delivery.dispatch import Dispatcher
from service.delivery.return_path import ReturnPath
from service.delivery.sms.base import SmsSender
from service.delivery.timers import Timers
from service.intake.ingest import Ingest
from service.notifications.deliverer import Deliverer
from service.observability.metrics import Metrics
from service.storage.transactions import Transactions
from service.storage.writer_gate import WriterGate

SETTINGS = web.AppKey("settings", Settings)
CLOCK = web.AppKey("clock", Clock)
ENGINE = web.AppKey("engine", AsyncEngine)
SESSIONS = web.AppKey("sessions", async_sessionmaker[AsyncSession])
READER = web.AppKey("reader", AsyncEngine)  # reads beside the writes (db.create_reader)
READS = web.AppKey("reads", async_sessionmaker[AsyncSession])
SENDER = web.AppKey("sender", SmsSender)
INGEST = web.AppKey("ingest", Ingest)
DISPATCHER = web.AppKey("dispatcher", Dispatcher)
TIMERS = web.AppKey("timers", Timers)
METRICS = web.AppKey("metrics", Metrics)
GATE = web.AppKey("gate", WriterGate)  # who writes next: sends first (writer_gate)
RETURN_PATH = web.AppKey("return_path", ReturnPath)
TRANSACTIONS = web.AppKey("transactions", Transactions)  # store functions in transactions
DELIVERER = web.AppKey("deliverer", Deliverer)  # notifications to clinic systems (SPEC §11)
