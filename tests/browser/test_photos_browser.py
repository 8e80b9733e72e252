"""Patients' photos in a real browser (headless chromium through Selenium) against a real
`aftercare serve` and the fake Twilio in a process of its own, serving the MMS media behind
auth and its CDN on 127.0.0.2: with the inbox open, Ana's photo reply shows without a reload
as a thumbnail that really loaded (under the console's CSP, from the no-store route); her
page shows the whole image.

AFTERCARE_SCREENSHOTS=1 saves the inbox with the photo at a phone's width into docs/images/.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientSession

from tests.browser.conftest import create_account
from tests.browser.test_inbox_browser import (
    IMAGES,
    LIVE,
    WAIT,
    World,
    _chromium,
    _items,
    _sign_in,
    _wait,
)
from tests.fakes.twilio import AUTH_TOKEN, message_sid, sign_twilio
from tests.fakes.twilio_process import fake_twilio_process
from tests.fixtures.conversations import CARE
from tests.fixtures.photos import gps_jpeg
from tests.helpers.ports import free_port
from tests.helpers.toml import write_toml
from tests.processes import Service, process_config
from tests.support import FROM, PHONE


@pytest.fixture
async def world(tmp_path: Path, db_path: Path) -> AsyncIterator[World]:
    """A real service whose Twilio (and media CDN, 127.0.0.2) is the fake's process."""
    async with fake_twilio_process(media=True) as twilio_url, ClientSession() as http:
        port = free_port()
        data = process_config(port, twilio_url, f"sqlite+aiosqlite:///{db_path}", steps=1)
        data["twilio"]["media_hosts"] = ["127.0.0.2"]
        data["protocols"] = {"care": CARE}
        config = write_toml(tmp_path / "config.toml", data)
        create_account(config)
        service = Service(config, port, tmp_path / "serve.log")
        await service.start(http)
        try:
            yield World(service, twilio_url, http)
        finally:
            service.stop()


@pytest.fixture
def browser() -> Iterator[Any]:
    driver = _chromium(javascript=True)
    try:
        yield driver
    finally:
        driver.quit()


async def _mms(world: World, photo: bytes) -> None:
    """Ana's MMS with `photo`, its MediaUrl the fake's, posted as Twilio signs it."""
    added = f"{world.twilio_url}/_control/media"
    async with world.http.post(added, data=photo, headers={"Content-Type": "image/jpeg"}) as r:
        media_url = (await r.json())["url"]
    params = {"MessageSid": message_sid(), "From": PHONE, "To": FROM, "Body": ""}
    params |= {"NumMedia": "1", "MediaUrl0": media_url, "MediaContentType0": "image/jpeg"}
    url = world.service.base + "/v1/twilio/inbound"
    headers = {"X-Twilio-Signature": sign_twilio(AUTH_TOKEN, url, params)}
    async with world.http.post(url, data=params, headers=headers) as answer:
        assert answer.status == 200


def _loaded(driver: Any, selector: str) -> list[int]:
    """The natural widths of the images `selector` finds that have loaded."""
    script = "return [...document.querySelectorAll(arguments[0])].map(i => i.naturalWidth)"
    return list(driver.execute_script(script, selector))


def _all_loaded(selector: str) -> Any:
    """A wait's condition: some images `selector` finds, each loaded (naturalWidth > 0)."""
    return lambda d: bool(_loaded(d, selector)) and min(_loaded(d, selector)) > 0


async def test_a_photo_reply_shows_in_the_inbox_and_on_the_timeline(
    world: World, browser: Any
) -> None:
    """The thumbnail appears without a reload and loads (naturalWidth > 0, 120 px wide by
    CSS); its link opens nothing else but the image; Ana's page shows it at its own size
    within the phone's width."""
    from selenium.webdriver.common.by import By

    await world.checked_in()
    _sign_in(browser, world.service.base)
    browser.execute_script("window.loadedOnce = true")  # gone if the page reloads
    await _mms(world, gps_jpeg(300, 200))
    _wait(browser, LIVE + WAIT, lambda d: _items(d) == ["Photo reply"])
    _wait(browser, WAIT, _all_loaded("img.photos__thumb"))
    assert browser.execute_script("return window.loadedOnce === true")
    thumb = browser.find_element(By.CSS_SELECTOR, "img.photos__thumb")
    assert thumb.get_attribute("alt") == "Photo from Ana" and thumb.size["width"] == 120
    _screenshot(browser)
    browser.find_element(By.LINK_TEXT, "Open Ana's page").click()
    _wait(browser, WAIT, _all_loaded("img.timeline__photo"))
    [width] = _loaded(browser, "img.timeline__photo")
    assert width == 200  # upright: the JPEG's orientation tag applied when it was stored
    shown = browser.find_element(By.CSS_SELECTOR, "img.timeline__photo").size["width"]
    assert 0 < shown <= browser.execute_script("return window.innerWidth")


def _screenshot(driver: Any) -> None:
    if os.environ.get("AFTERCARE_SCREENSHOTS") == "1":
        IMAGES.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(IMAGES / "console-inbox-photo-phone.png"))
