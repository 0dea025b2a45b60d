"""Open a page in headless Chromium (Debian's chromium + chromium-driver, driven by Selenium) and
report what a reader's browser did: which images loaded, which requests left the page, which
elements exist; and save a full-page screenshot."""
from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

BROWSERS = ("chromium", "chromium-browser", "google-chrome")


def binaries() -> tuple[str, str] | None:
    browser = next((p for p in map(shutil.which, BROWSERS) if p), None)
    driver = shutil.which("chromedriver")
    return (browser, driver) if browser and driver else None


def needs_browser():
    if binaries() is None:
        pytest.skip("no Chromium with chromedriver on this machine (.ci/run installs Debian's chromium and "
                    "chromium-driver; elsewhere install them to run this test)")
    try:
        import selenium  # noqa: F401
    except ImportError:
        pytest.skip("selenium is not installed (pip install -e '.[dev]')")


@dataclass
class PageVisit:
    images: list[dict]        # alt, complete, width (natural)
    requests: list[str]       # every URL the page asked for, other than itself and data: URLs
    ids: set[str]
    title: str
    screenshot: Path


def visit(page: Path, screenshot: Path, width: int = 1280) -> PageVisit:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    browser, driver_path = binaries()
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update", "--no-first-run",
                 f"--window-size={width},1000"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=options)
    try:
        url = page.resolve().as_uri()
        driver.get(url)  # returns after the load event: every image has loaded or failed by then
        images = driver.execute_script(
            "return Array.from(document.images).map(i => ({alt: i.alt, complete: i.complete,"
            " width: i.naturalWidth}))")
        ids = set(driver.execute_script("return Array.from(document.querySelectorAll('[id]')).map(e => e.id)"))
        requests = []
        for entry in driver.get_log("performance"):
            message = json.loads(entry["message"])["message"]
            if message.get("method") == "Network.requestWillBeSent":
                asked = message["params"]["request"]["url"]
                if asked != url and not asked.startswith("data:"):
                    requests.append(asked)
        height = driver.execute_script("return document.documentElement.scrollHeight")
        driver.set_window_size(width, min(max(height, 600), 16000))
        driver.save_screenshot(str(screenshot))
        return PageVisit(images, requests, ids, driver.title, screenshot)
    finally:
        driver.quit()
