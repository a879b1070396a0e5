"""A real headless Chromium (Debian's package) driven by Playwright, against the live app."""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import STRICT

CHROMIUM = os.environ.get("BUTLER_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _require_chromium() -> None:
    if not Path(CHROMIUM).exists():
        if STRICT:
            pytest.fail(f"Chromium not found at {CHROMIUM}")
        pytest.skip("Chromium is not installed (apt-get install chromium)")


@pytest.fixture
async def browser() -> AsyncIterator[object]:
    """Chromium, or a skip (a failure in strict mode) when it is not installed."""
    _require_chromium()
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        try:
            yield browser
        finally:
            await browser.close()


@pytest.fixture
async def contexts(browser: Any) -> AsyncIterator[list[Any]]:
    """Browser contexts a test opens; closed afterwards even when the test fails."""
    opened: list[Any] = []
    yield opened
    for ctx in opened:
        await ctx.close()
