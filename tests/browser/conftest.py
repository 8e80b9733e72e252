"""The console in a real browser: Debian's headless chromium through Selenium, phone-sized
(375 x 812), against a real `aftercare serve` subprocess whose staff account was made by the
real `aftercare staff add`.

Where chromium or chromedriver is missing, the tests skip with one reason; under CI=true they
fail instead (as the PostgreSQL tests do, tests/pg.py): CI installs both (.ci/run).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from aiohttp import ClientSession

from tests.helpers.ports import free_port
from tests.helpers.toml import write_toml
from tests.processes import ROOT, Service
from tests.support import config_data

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
EMAIL = "nurse@glow.example"
PASSWORD = "a browser's own passphrase"


def _require_browser() -> None:
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not os.access(p, os.X_OK)]
    if missing:
        reason = (
            f"browser tests need {' and '.join(missing)} (apt-get install chromium chromium-driver)"
        )
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)


@pytest.fixture
def browser() -> Iterator[object]:
    """Headless chromium at a phone's size; quit after the test."""
    _require_browser()
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service as DriverService

    options = Options()
    options.binary_location = str(CHROMIUM)
    for argument in ("--headless=new", "--no-sandbox", "--window-size=375,812"):
        options.add_argument(argument)
    options.add_argument("--disable-dev-shm-usage")  # small /dev/shm in containers
    driver = webdriver.Chrome(options=options, service=DriverService(str(CHROMEDRIVER)))
    driver.set_page_load_timeout(20)
    try:
        yield driver
    finally:
        driver.quit()


def create_account(config: Path) -> None:
    """`aftercare staff add` as an operator runs it, the password on standard input."""
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "service",
            "--config",
            str(config),
            "staff",
            "add",
            "--clinic",
            "glow",
            "--email",
            EMAIL,
            "--name",
            "Nurse",
        ],
        input=PASSWORD + "\n",
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr


@pytest.fixture
async def served(tmp_path: Path, db_path: Path) -> AsyncIterator[str]:
    """A real `aftercare serve` with one account of clinic glow; its base URL."""
    port = free_port()
    data = config_data(db_path, server={"public_base_url": f"http://127.0.0.1:{port}"})
    config = write_toml(tmp_path / "config.toml", data)
    create_account(config)
    service = Service(config, port, tmp_path / "serve.log")
    async with ClientSession() as http:
        await service.start(http)
    try:
        yield service.base
    finally:
        service.stop()
