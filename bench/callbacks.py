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
    if not args.callbacks:
        return f"status callbacks: OFF (--no-callbacks); {latency}"
    return (
        f"status callbacks: ON (sending, sent after {args.sent_delay} s, delivered "
        f"{args.delivered_delay} s later, {args.undelivered:.0%} undelivered), except in "
        f"the rows marked 'callbacks off'; {latency}"
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
