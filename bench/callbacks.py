"""bench/run.py's side of Twilio's return traffic (issue 12): options, and the figures on
the status callbacks the fake posts (bench/fake_callbacks.py) after each dispatch run."""

from __future__ import annotations

import argparse
import asyncio
import math
import time
from typing import Any

import aiohttp
from fake_callbacks import add_traffic_options

FINAL = "('delivered', 'undelivered')"
# The fake of issue 28's measurement, the mixed phase's unless the command line says otherwise:
# creates answered at once, `sent` 0.2 s after `sending`, `delivered` 0.2 s after `sent`.
MIXED_FAKE = {"create_latency": "0", "sent_delay": "0.2", "delivered_delay": "0.2"}


def add_options(p: argparse.ArgumentParser) -> None:
    """The fake's latency and callback options, and the quiet-machine switch."""
    p.add_argument(
        "--no-callbacks",
        dest="callbacks",
        action="store_false",
        help="the fake posts no status callbacks (default: on, and each burst "
        "is run again with them off)",
    )
    add_traffic_options(p, create_latency="0.1-0.3")
    p.add_argument(
        "--no-quiet-wait",
        dest="quiet_wait",
        action="store_false",
        help="do not wait for a quiet machine before each run (smoke runs)",
    )


def unset_fake_defaults(p: argparse.ArgumentParser) -> dict[str, str]:
    """Take the defaults off the fake's timing options, so that what the command line gave
    can be told apart (`fill_fake_defaults` puts them back); the defaults by option."""
    defaults = {}
    for action in p._actions:
        if action.dest in MIXED_FAKE:
            defaults[action.dest] = action.default
            action.default = None
    return defaults


def fill_fake_defaults(args: argparse.Namespace, defaults: dict[str, str]) -> None:
    """The timing options' defaults for the options not given, and `args.mixed_fake`: the
    mixed phase's timing, issue 28's (MIXED_FAKE) but for what the command line gave."""
    args.mixed_fake = {}
    args.mixed_fake_given = []
    for key, default in defaults.items():
        value = getattr(args, key)
        if value is None:
            setattr(args, key, default)
            args.mixed_fake[key] = MIXED_FAKE[key]
        else:
            args.mixed_fake[key] = value
            args.mixed_fake_given.append(key)


async def configure(http: aiohttp.ClientSession, fake_url: str, **settings: str) -> None:
    """Change the fake's settings (`callbacks`, `create_latency`, `sent_delay`, ...)."""
    query = "&".join(f"{k}={v}" for k, v in settings.items())
    async with http.post(f"{fake_url}/_control/config?{query}") as r:
        await r.read()


def fake_args(args: argparse.Namespace, auth_token: str) -> list[str]:
    """bench/fake_twilio.py's command-line options for these run options."""
    out = [
        "--auth-token",
        auth_token,
        "--create-latency",
        args.create_latency,
        "--sent-delay",
        args.sent_delay,
        "--delivered-delay",
        args.delivered_delay,
        "--undelivered",
        str(args.undelivered),
    ]
    return out + ([] if args.callbacks else ["--no-callbacks"])


def header(args: argparse.Namespace) -> str:
    """The figures header's line on the return traffic."""
    latency = f"creates answered after {args.create_latency} s"
    mixed = ""
    if "mixed" in args.phases:
        m = args.mixed_fake
        source = (
            f"{', '.join('--' + k.replace('_', '-') for k in args.mixed_fake_given)} from the "
            "command line, the rest issue 28's"
            if args.mixed_fake_given
            else "issue 28's measurement"
        )
        mixed = (
            f"; the mixed phase: creates answered after {m['create_latency']} s, sent after "
            f"{m['sent_delay']} s, delivered {m['delivered_delay']} s later ({source})"
        )
    if not args.callbacks:
        return f"status callbacks: OFF (--no-callbacks); {latency}{mixed}"
    return (
        f"status callbacks: ON (sending, sent after {args.sent_delay} s, delivered "
        f"{args.delivered_delay} s later, {args.undelivered:.0%} undelivered), except in "
        f"the rows marked 'callbacks off'; {latency}{mixed}"
    )


async def switch(http: aiohttp.ClientSession, fake_url: str, on: bool) -> None:
    """Turn the fake's callbacks on or off for the next messages."""
    async with http.post(f"{fake_url}/_control/config?callbacks={int(on)}") as r:
        await r.read()


async def fake_callbacks(http: aiohttp.ClientSession, fake_url: str) -> dict[str, Any]:
    async with http.get(fake_url + "/_control/callbacks") as r:
        state: dict[str, Any] = await r.json()
        return state


async def returned(
    http: aiohttp.ClientSession, fake_url: str, final_count: Any, last_send: float, deadline: float
) -> dict[str, Any]:
    """Wait until every message is final in the service's database and the fake has
    nothing left to post; seconds from the last send to then, callback latency, failures.
    `final_count` is an async callable: how many of the run's messages are final."""
    done = math.nan
    while time.time() < deadline:
        state = await fake_callbacks(http, fake_url)
        if state["pending_messages"] == 0 and await final_count():
            done = time.time()
            break
        await asyncio.sleep(0.25)
    calls = state["callbacks"]
    latency = [c[2] - c[1] for c in calls if c[2] is not None]
    return {
        "final_after": done - last_send,
        "posted": float(len(calls)),
        "failed": float(state["failed"]),
        "latency": latency,
    }
