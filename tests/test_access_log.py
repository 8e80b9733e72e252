"""The access log leaves out accepted status callbacks and nothing else (web.access_log)."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from pytest_aiohttp import AiohttpClient, AiohttpServer

from service.web.access_log import AccessLog
from service.web.app import create_app
from tests.fakes.twilio import ACCOUNT_SID, AUTH_TOKEN, sign_twilio
from tests.helpers.ports import free_port
from tests.support import make_settings

STATUS = "/v1/twilio/status"


class Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


@pytest.fixture
def access() -> Iterator[tuple[logging.Logger, Lines]]:
    logger = logging.getLogger("aftercare.access.test")
    lines = Lines()
    logger.addHandler(lines)
    logger.setLevel(logging.INFO)
    yield logger, lines
    logger.removeHandler(lines)


async def test_accepted_callbacks_are_left_out_refused_ones_and_the_rest_logged(
    database: str,
    aiohttp_server: AiohttpServer,
    aiohttp_client: AiohttpClient,
    access: tuple[logging.Logger, Lines],
) -> None:
    logger, lines = access
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    settings = make_settings(
        database,
        server={"public_base_url": base},
        twilio={"account_sid": ACCOUNT_SID, "auth_token": AUTH_TOKEN},
    )
    server = await aiohttp_server(
        create_app(settings),
        port=port,
        access_log=logger,
        access_log_class=AccessLog,
        access_log_format="%r %s",
    )
    client: TestClient[web.Request, None] = await aiohttp_client(server)
    form = {"MessageSid": "SM" + "7" * 32, "MessageStatus": "sent", "AccountSid": ACCOUNT_SID}
    signature = sign_twilio(AUTH_TOKEN, base + STATUS, form)

    assert (
        await client.post(STATUS, data=form, headers={"X-Twilio-Signature": signature})
    ).status == 200
    assert (
        await client.post(STATUS, data=form, headers={"X-Twilio-Signature": "forged"})
    ).status == 403
    assert (await client.get("/healthz")).status == 200
    assert [line.split()[1] for line in lines.lines] == [STATUS, "/healthz"]
    assert lines.lines[0].endswith(" 403")

    logger.setLevel(logging.DEBUG)  # log_level = "DEBUG": every line
    assert (
        await client.post(STATUS, data=form, headers={"X-Twilio-Signature": signature})
    ).status == 200
    assert lines.lines[-1].endswith(" 200") and STATUS in lines.lines[-1]
