"""Segments and validity on the wire (contract §18): the real dispatcher and database, the real
twilio client against the fake Twilio server, a fake clock (tests/fixtures/dispatch.py)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from prometheus_client import generate_latest

from service.delivery.dispatch import Dispatcher
from service.storage.models import Message
from tests.fixtures.dispatch import World, world

__all__ = ["world"]  # the fixture, from tests/fixtures/dispatch.py

CURLY = "Don\u2019t touch it \u2013 let it heal."
STRAIGHT = "Don't touch it - let it heal."


async def _set(world: World, message_id: str, **values: Any) -> None:
    """Change a planned message's row (its body, its expiry) before it is sent."""
    await world.transactions.write(
        lambda s: s.connection().execute(
            sa.update(Message).where(Message.id == message_id).values(**values)  # type: ignore[arg-type]
        )
    )


def _gsm7(world: World, mode: str) -> None:
    """The dispatcher, with `sms.gsm7 = mode`."""
    settings = world.dispatcher.settings
    sms = settings.sms.model_copy(update={"gsm7": mode})
    world.dispatcher = Dispatcher(
        settings=settings.model_copy(update={"sms": sms}),
        transactions=world.transactions,
        sender=world.dispatcher.sender,
        clock=world.clock,
        instance="test-1",
    )


async def _send_first(world: World, **values: Any) -> Message:
    first = (await world.plan())[0]
    await _set(world, first.id, **values)
    world.at(first.send_at)
    await world.dispatcher.dispatch_due()
    return await world.message(first.id)


def _segments_metric(world: World, kind: str) -> float:
    text = generate_latest(world.dispatcher.metrics.registry).decode()
    line = f'aftercare_segments_sent_total{{kind="{kind}"}} '
    return float(next(x for x in text.splitlines() if x.startswith(line)).split()[-1])


class TestGsm7:
    async def test_typographic_punctuation_goes_out_plain_as_gsm7_by_default(
        self, world: World
    ) -> None:
        stored = await _send_first(world, body=CURLY)
        [sent] = world.fake.messages
        assert sent.body == f"{STRAIGHT}\nReply STOP to opt out."
        assert stored.body == STRAIGHT  # what is stored is what was sent
        assert (stored.encoding, stored.segments) == ("GSM-7", 1)
        assert _segments_metric(world, stored.kind) == 1

    async def test_off_sends_text_as_written_in_ucs2(self, world: World) -> None:
        _gsm7(world, "off")
        body = CURLY * 3  # 87 characters + footer: UCS-2, 2 parts of 67
        stored = await _send_first(world, body=body)
        [sent] = world.fake.messages
        assert sent.body == f"{body}\nReply STOP to opt out."
        assert (stored.body, stored.encoding, stored.segments) == (body, "UCS-2", 2)
        assert _segments_metric(world, stored.kind) == 2


class TestValidityPeriod:
    async def test_every_create_carries_the_seconds_left_before_expiry(self, world: World) -> None:
        first = (await world.plan())[0]
        world.at(first.send_at + timedelta(seconds=7))
        await world.dispatcher.dispatch_due()
        [sent] = world.fake.messages
        left = (first.expires_at - world.clock.now()).total_seconds()
        assert sent.validity_period is not None
        assert abs(sent.validity_period - left) <= 1

    async def test_clamped_to_twilio_maximum(self, world: World) -> None:
        first = (await world.plan())[0]
        await _set(world, first.id, expires_at=first.send_at + timedelta(days=2))
        world.at(first.send_at)
        await world.dispatcher.dispatch_due()
        assert [m.validity_period for m in world.fake.messages] == [36_000]

    async def test_clamped_to_one_second_at_least(self, world: World) -> None:
        first = (await world.plan())[0]
        await _set(world, first.id, expires_at=first.send_at + timedelta(milliseconds=400))
        world.at(first.send_at)
        await world.dispatcher.dispatch_due()
        assert [m.validity_period for m in world.fake.messages] == [1]
