"""The patient page in a real browser, at a phone's width: found by search, its timeline in the
patient's local time, a staff text typed and sent — and the fake Twilio (a process of its own,
behind a real `aftercare serve`) handed exactly one text.

With AFTERCARE_SCREENSHOTS=1 it also saves the page at 375 px and at a desktop's width into
docs/images/ (docs/console-staff.md shows them).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientSession

from tests.browser.conftest import EMAIL, PASSWORD, create_account
from tests.browser.test_console_browser import WAIT, _button, _field, _until_heading
from tests.fakes.twilio import AUTH_TOKEN, message_sid, sign_twilio
from tests.fakes.twilio_process import fake_twilio_process
from tests.fixtures.conversations import CARE
from tests.helpers.events import completed_event, encode, signed
from tests.helpers.ports import free_port
from tests.helpers.toml import write_toml
from tests.processes import ROOT, Service, fake_state, process_config, until_async
from tests.support import FROM, PHONE, SECRET

IMAGES = ROOT / "docs" / "images"
MADRID = "Europe/Madrid"


@dataclass
class World:
    base: str
    twilio_url: str
    http: ClientSession

    async def bodies_to(self, number: str) -> list[str]:
        state = await fake_state(self.http, self.twilio_url)
        return [m["body"] for m in state["messages"] if m["to"] == number]

    async def checked_in_and_replied(self) -> None:
        """Ana (Madrid) planned, her check-in sent, and her reply "2" posted as Twilio does."""
        completed = datetime.now(UTC) - timedelta(hours=2)
        event = completed_event(
            treatment={"protocol": "care", "completed_at": completed.isoformat()},
            patient={"timezone": MADRID},
        )
        raw = encode(event)
        url = f"{self.base}/v1/clinics/glow/events"
        async with self.http.post(url, data=raw, headers=signed(raw, secret=SECRET)) as answer:
            assert answer.status == 202, await answer.text()

        async def sent() -> bool:
            return len(await self.bodies_to(PHONE)) == 1

        await until_async(sent, timeout=WAIT)
        params = {"MessageSid": message_sid(), "From": PHONE, "To": FROM, "Body": "2"}
        inbound = self.base + "/v1/twilio/inbound"
        headers = {"X-Twilio-Signature": sign_twilio(AUTH_TOKEN, inbound, params)}
        async with self.http.post(inbound, data=params, headers=headers) as answer:
            assert answer.status == 200


@pytest.fixture
async def world(tmp_path: Path, db_path: Path) -> AsyncIterator[World]:
    """A real `aftercare serve` sending through a fake Twilio process, one account of glow."""
    async with fake_twilio_process(callbacks=False) as twilio_url, ClientSession() as http:
        port = free_port()
        data = process_config(port, twilio_url, f"sqlite+aiosqlite:///{db_path}", steps=1)
        data["protocols"] = {"care": CARE}
        config = write_toml(tmp_path / "config.toml", data)
        create_account(config)
        service = Service(config, port, tmp_path / "serve.log")
        await service.start(http)
        try:
            yield World(service.base, twilio_url, http)
        finally:
            service.stop()


async def test_find_a_patient_read_the_timeline_and_send_one_text(
    browser: Any, world: World
) -> None:
    """Sign in; `Search patients` for Ana; her page shows the check-in and her reply at Madrid
    time; `Message` + `Send` says "Sent", the fake Twilio gets exactly one text with that
    body, and the timeline lists it as kind staff."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    await world.checked_in_and_replied()
    browser.get(world.base + "/console/")
    _until_heading(browser, "Sign in")
    _field(browser, "Email").send_keys(EMAIL)
    _field(browser, "Password").send_keys(PASSWORD)
    _button(browser, "Sign in").click()
    _until_heading(browser, "Inbox")  # the search box is in every page's header: wait for one
    _field(browser, "Search patients").send_keys("0123" + Keys.ENTER)
    _until_heading(browser, "Find a patient")
    browser.find_element(By.LINK_TEXT, "Ana").click()
    _until_heading(browser, "Ana")
    page = browser.find_element(By.TAG_NAME, "main").text
    assert "Hi Ana, how is your skin?" in page and "Reply from patient" in page
    assert MADRID in page and PHONE not in browser.page_source
    _assert_local_times(browser)
    body = "Hi Ana, it's Nurse Kim. Please call us when you can."
    _field(browser, "Message").send_keys(body)
    _button(browser, "Send").click()
    _until_text(browser, "Sent")

    async def one_text() -> bool:
        return any(b.startswith(body) for b in await world.bodies_to(PHONE))

    await until_async(one_text, timeout=WAIT)
    assert [b for b in await world.bodies_to(PHONE) if b.startswith(body)] == [body]
    assert "Text to patient · staff" in browser.find_element(By.TAG_NAME, "main").text
    assert _fits(browser)
    if os.environ.get("AFTERCARE_SCREENSHOTS") == "1":
        _screenshots(browser)


def _assert_local_times(browser: Any) -> None:
    """Every <time> on the page shows its instant in Madrid's time."""
    from selenium.webdriver.common.by import By

    from service.planning.timing import zone

    times = browser.find_elements(By.CSS_SELECTOR, ".timeline__when time")
    assert len(times) >= 2
    for shown in times:
        at = datetime.fromisoformat(shown.get_attribute("datetime"))
        assert at.utcoffset() == at.astimezone(zone(MADRID)).utcoffset()
        assert shown.text == at.strftime("%a %d %b %Y, %H:%M")


def _until_text(driver: Any, text: str) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(driver, WAIT).until(
        ec.text_to_be_present_in_element((By.CSS_SELECTOR, ".notification"), text)
    )


def _fits(driver: Any) -> bool:
    return bool(
        driver.execute_script("return document.documentElement.scrollWidth <= window.innerWidth")
    )


def _screenshots(driver: Any) -> None:
    """The whole page at 375 px (a phone) and 1280 px (a desktop), as PNGs in docs/images."""
    IMAGES.mkdir(exist_ok=True)
    for name, width in (("console-patient-375.png", 375), ("console-patient-desktop.png", 1280)):
        metrics = {"width": width, "height": 900, "deviceScaleFactor": 1, "mobile": width < 500}
        driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", metrics)
        height = driver.execute_script("return document.documentElement.scrollHeight")
        driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {**metrics, "height": height})
        driver.save_screenshot(str(IMAGES / name))
    driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
