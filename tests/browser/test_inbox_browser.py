"""The inbox in a real browser (headless chromium through Selenium) against a real
`aftercare serve` and a fake Twilio in processes of their own: an urgent reply posted as
Twilio signs it shows in an open inbox without a reload, `Acknowledge` stops the re-alert,
`Mark done` removes an item, and both work with JavaScript disabled.

AFTERCARE_SCREENSHOTS=1 saves the inbox at a phone's and a desktop's width into docs/images/.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientSession

from tests.browser.conftest import (
    CHROMEDRIVER,
    CHROMIUM,
    EMAIL,
    PASSWORD,
    _require_browser,
    create_account,
)
from tests.fakes.twilio import AUTH_TOKEN, message_sid, sign_twilio
from tests.fakes.twilio_process import fake_twilio_process
from tests.fixtures.conversations import CARE, NURSE
from tests.helpers.events import completed_event, encode, signed
from tests.helpers.ports import free_port
from tests.helpers.toml import write_toml
from tests.processes import ROOT, Service, fake_state, process_config, until_async
from tests.support import FROM, PHONE, SECRET, TOKEN

WAIT = 15  # s: every wait has a deadline
LIVE = 5  # s: the contract's bound for a new item to show without a reload
REMINDER = 8  # s: the test clinic's escalation_reminder (time to acknowledge before it)
IMAGES = ROOT / "docs" / "images"


@dataclass
class World:
    service: Service
    twilio_url: str
    http: ClientSession

    async def checked_in(self) -> None:
        """Ana's check-in sent (its reply window open)."""
        completed = datetime.now(UTC) - timedelta(hours=2)
        event = completed_event(
            treatment={"protocol": "care", "completed_at": completed.isoformat()},
            patient={"timezone": "UTC"},
        )
        raw = encode(event)
        url = f"{self.service.base}/v1/clinics/glow/events"
        async with self.http.post(url, data=raw, headers=signed(raw, secret=SECRET)) as answer:
            assert answer.status == 202
        treatment_id = event["data"]["treatment"]["id"]

        async def sent() -> bool:
            statuses = await self.service.statuses(self.http, treatment_id)
            return statuses[0] in ("sent", "delivered")

        await until_async(sent)

    async def text(self, body: str, sender: str = PHONE) -> None:
        """A text to the clinic's number, posted as Twilio signs it."""
        params = {"MessageSid": message_sid(), "From": sender, "To": FROM, "Body": body}
        url = self.service.base + "/v1/twilio/inbound"
        headers = {"X-Twilio-Signature": sign_twilio(AUTH_TOKEN, url, params)}
        async with self.http.post(url, data=params, headers=headers) as answer:
            assert answer.status == 200

    async def alerts(self) -> int:
        """How many texts the fake Twilio was handed for the on-call number."""
        messages = (await fake_state(self.http, self.twilio_url))["messages"]
        return sum(1 for m in messages if m["to"] == NURSE)

    async def escalation(self) -> dict[str, Any]:
        url = f"{self.service.base}/v1/clinics/glow/escalations"
        async with self.http.get(url, headers={"Authorization": f"Bearer {TOKEN}"}) as answer:
            [found] = (await answer.json())["escalations"]
            return dict(found)


@pytest.fixture
async def world(tmp_path: Path, db_path: Path) -> AsyncIterator[World]:
    """A real service (clinic glow, on-call NURSE, reminder after REMINDER s) and a fake
    Twilio, with the browser's account."""
    async with fake_twilio_process() as twilio_url, ClientSession() as http:
        port = free_port()
        data = process_config(port, twilio_url, f"sqlite+aiosqlite:///{db_path}", steps=1)
        data["clinics"]["glow"].update(on_call_numbers=[NURSE], escalation_reminder=f"{REMINDER}s")
        data["protocols"] = {"care": CARE}
        config = write_toml(tmp_path / "config.toml", data)
        create_account(config)
        service = Service(config, port, tmp_path / "serve.log")
        await service.start(http)
        try:
            yield World(service, twilio_url, http)
        finally:
            service.stop()


def _chromium(*, javascript: bool) -> Any:
    _require_browser()
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service as DriverService

    options = Options()
    options.binary_location = str(CHROMIUM)
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage"):
        options.add_argument(argument)
    if not javascript:
        options.add_experimental_option(
            "prefs", {"profile.managed_default_content_settings.javascript": 2}
        )
    driver = webdriver.Chrome(options=options, service=DriverService(str(CHROMEDRIVER)))
    driver.set_page_load_timeout(20)
    _width(driver, 375, 812)
    return driver


def _width(driver: Any, width: int, height: int) -> None:
    """The viewport exactly `width` wide (headless chromium keeps windows 500 px or more)."""
    driver.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": width < 600},
    )


@pytest.fixture
def browser() -> Iterator[Any]:
    driver = _chromium(javascript=True)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def browser_without_js() -> Iterator[Any]:
    driver = _chromium(javascript=False)
    try:
        yield driver
    finally:
        driver.quit()


def _wait(driver: Any, seconds: float, condition: Any) -> Any:
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, seconds, poll_frequency=0.1).until(condition)


def _items(driver: Any) -> list[str]:
    from selenium.webdriver.common.by import By

    return [e.text for e in driver.find_elements(By.CSS_SELECTOR, "#inbox-items .item__title")]


def _button(driver: Any, text: str, item_title: str) -> Any:
    """The button `text` of the item titled `item_title`."""
    from selenium.webdriver.common.by import By

    path = f"//li[.//h2[normalize-space()='{item_title}']]//button[normalize-space()='{text}']"
    return driver.find_element(By.XPATH, path)


def _sign_in(driver: Any, base: str) -> None:
    from selenium.webdriver.common.by import By

    driver.get(base + "/console/")
    _wait(driver, WAIT, lambda d: d.find_elements(By.ID, "email"))
    driver.find_element(By.ID, "email").send_keys(EMAIL)
    driver.find_element(By.ID, "password").send_keys(PASSWORD)
    driver.find_element(By.XPATH, "//button[normalize-space()='Sign in']").click()
    _wait(driver, WAIT, lambda d: d.find_elements(By.ID, "inbox-items"))


def _fits(driver: Any) -> None:
    """Nothing wider than the viewport."""
    widths = driver.execute_script(
        "return [document.documentElement.scrollWidth, window.innerWidth]"
    )
    assert widths[0] <= widths[1], widths


def _screenshots(driver: Any) -> None:
    """The inbox at a phone's and a desktop's width, when AFTERCARE_SCREENSHOTS=1."""
    if os.environ.get("AFTERCARE_SCREENSHOTS") != "1":
        return
    IMAGES.mkdir(parents=True, exist_ok=True)
    for name, (width, height) in {"phone": (375, 812), "desktop": (1200, 800)}.items():
        _width(driver, width, height)
        driver.save_screenshot(str(IMAGES / f"console-inbox-{name}.png"))
    _width(driver, 375, 812)


async def test_an_urgent_reply_shows_live_and_acknowledge_stops_the_realert(
    world: World, browser: Any
) -> None:
    """With the inbox open (and empty), Ana's "2" and then her "3" show within 5 s each,
    without a reload; Acknowledge (the escalations API then names the staff email) means no
    reminder alert after escalation_reminder; Mark done removes the reply."""
    await world.checked_in()
    _sign_in(browser, world.service.base)
    assert "Nothing needs a person right now." in browser.page_source
    browser.execute_script("window.loadedOnce = true")  # gone if the page reloads
    await world.text("2")
    _wait(browser, LIVE, lambda d: _items(d) == ["Reply (Watch)"])
    await world.text("3")
    opened = asyncio.get_running_loop().time()
    _wait(browser, LIVE, lambda d: _items(d) == ["Urgent reply", "Reply (Watch)"])
    assert browser.execute_script("return window.loadedOnce === true")
    assert "number ending 0123" in browser.page_source and PHONE not in browser.page_source
    _fits(browser)
    _screenshots(browser)
    _button(browser, "Acknowledge", "Urgent reply").click()
    _wait(browser, WAIT, lambda d: "will not be alerted again" in d.page_source)
    assert (await world.escalation())["acknowledged_by"] == EMAIL
    assert _items(browser) == ["Reply (Watch)"]
    _button(browser, "Mark done", "Reply (Watch)").click()
    _wait(browser, WAIT, lambda d: "Marked done" in d.page_source)
    assert _items(browser) == [] and "Nothing needs a person right now." in browser.page_source
    # The reminder would go REMINDER s after the "3" (its job runs every second): wait past it.
    await asyncio.sleep(max(0.0, opened + REMINDER + 2.5 - asyncio.get_running_loop().time()))
    assert await world.alerts() == 1


async def test_acknowledge_and_mark_done_work_without_javascript(
    world: World, browser_without_js: Any
) -> None:
    """JavaScript off: the inbox lists both items, Acknowledge and Mark done are plain form
    posts that land back on the inbox with their confirmation."""
    browser = browser_without_js
    await world.checked_in()
    await world.text("3")
    await world.text("2")
    _sign_in(browser, world.service.base)
    assert _items(browser) == ["Reply (Watch)", "Urgent reply"]
    _fits(browser)
    _button(browser, "Acknowledge", "Urgent reply").click()
    _wait(browser, WAIT, lambda d: "will not be alerted again" in d.page_source)
    assert (await world.escalation())["acknowledged_by"] == EMAIL
    _button(browser, "Mark done", "Reply (Watch)").click()
    _wait(browser, WAIT, lambda d: "Marked done" in d.page_source)
    assert "Nothing needs a person right now." in browser.page_source
