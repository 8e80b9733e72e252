"""Typed application keys, in one place."""

from __future__ import annotations

from aiohttp import web

from service.clock import Clock
from service.config import Settings
from service.delivery.dispatch import Dispatcher
from service.delivery.photos import Photos
from service.delivery.return_path import ReturnPath
from service.delivery.sms.base import SmsSender
from service.delivery.timers import Timers
from service.intake.ingest import Ingest
from service.notifications.deliverer import Deliverer
from service.observability.metrics import Metrics
from service.storage.heartbeat import WriteCheck
from service.storage.transactions import Transactions
from service.web.rate_limit import RateLimits

SETTINGS = web.AppKey("settings", Settings)
CLOCK = web.AppKey("clock", Clock)
SENDER = web.AppKey("sender", SmsSender)
INGEST = web.AppKey("ingest", Ingest)
DISPATCHER = web.AppKey("dispatcher", Dispatcher)
TIMERS = web.AppKey("timers", Timers)
METRICS = web.AppKey("metrics", Metrics)
RETURN_PATH = web.AppKey("return_path", ReturnPath)
# Store functions in transactions: writes through the writer gate, reads beside them.
TRANSACTIONS = web.AppKey("transactions", Transactions)
DELIVERER = web.AppKey("deliverer", Deliverer)  # notifications to clinic systems (contract §11)
WRITE_CHECK = web.AppKey("write_check", WriteCheck)  # readiness means writable (contract §14)
RATE_LIMITS = web.AppKey("rate_limits", RateLimits)  # events per clinic (docs/edge.md)
PHOTOS = web.AppKey("photos", Photos)  # the photo downloader (contract §17)
