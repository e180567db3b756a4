"""Debian Chromium for the viewer's browser tests (driven by Playwright).

Needs ``/usr/bin/chromium`` (``apt-get install -y chromium``); never ``playwright install``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path("/usr/bin/chromium")
LAUNCH_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
               "--disable-background-networking", "--disable-component-update",
               "--disable-sync"]

needs_chromium = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason="needs Debian Chromium at /usr/bin/chromium: apt-get install -y chromium",
)


@contextmanager
def chromium() -> Iterator[Any]:
    """A headless Chromium, closed on exit."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p, launched(p.chromium) as browser:
        yield browser


@contextmanager
def launched(browser_type: Any, extra_args: Sequence[str] = ()) -> Iterator[Any]:
    """Another Chromium of a running Playwright (``browser.browser_type``), with more flags."""
    browser = browser_type.launch(executable_path=str(CHROMIUM), headless=True,
                                  args=[*LAUNCH_ARGS, *extra_args])
    try:
        yield browser
    finally:
        browser.close()


@contextmanager
def new_page(browser: Any) -> Iterator[Any]:
    """A page in a fresh context; fails the test if the page raised a JavaScript error."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        yield page
    finally:
        context.close()
    assert errors == [], f"JavaScript errors: {errors}"


def open_page(page: Any, url: str) -> None:
    """Load a viewer page and wait until it has rendered without an error."""
    page.goto(url)
    page.wait_for_selector("body[data-ready]")
    assert page.locator("#error").count() == 0, page.locator("#error").inner_text()
