"""Signing in and out of the console in a real browser, at a phone's width."""

from __future__ import annotations

from typing import Any

from tests.browser.conftest import EMAIL, PASSWORD

WAIT = 15  # s: every wait has a deadline


def _field(driver: Any, label: str) -> Any:
    """The control a <label> names, found by the label's text (as a person finds it)."""
    from selenium.webdriver.common.by import By

    found = driver.find_element(By.XPATH, f"//label[normalize-space()='{label}']")
    return driver.find_element(By.ID, found.get_attribute("for"))


def _button(driver: Any, text: str) -> Any:
    from selenium.webdriver.common.by import By

    return driver.find_element(By.XPATH, f"//button[normalize-space()='{text}']")


def _until_heading(driver: Any, text: str) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(driver, WAIT).until(ec.text_to_be_present_in_element((By.TAG_NAME, "h1"), text))


def test_sign_in_see_the_inbox_and_sign_out(browser: Any, served: str) -> None:
    """Email and Password by their labels, Sign in: the inbox shows the email; Sign out ends
    the session, and going back to /console/ lands on the sign-in page."""
    browser.get(served + "/console/")
    _until_heading(browser, "Sign in")
    _field(browser, "Email").send_keys(EMAIL)
    _field(browser, "Password").send_keys(PASSWORD)
    _button(browser, "Sign in").click()
    _until_heading(browser, "Inbox")
    assert EMAIL in browser.page_source
    # Nothing wider than the window (headless chromium may hold the window at 500 px).
    assert browser.execute_script(
        "return document.documentElement.scrollWidth <= window.innerWidth"
    ), browser.execute_script("return [document.documentElement.scrollWidth, innerWidth]")
    _button(browser, "Sign out").click()
    _until_heading(browser, "Sign in")
    browser.get(served + "/console/")
    _until_heading(browser, "Sign in")
    assert "/console/login" in browser.current_url
