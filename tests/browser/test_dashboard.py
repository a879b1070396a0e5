"""In a real browser: the manager dashboard draws every chart, drills down and exports CSV."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import AsyncIterator
from typing import Any

import pytest
from playwright.async_api import Browser, Page, Request, expect
from sqlalchemy import select

from bot.clock import FrozenClock
from bot.conversations.enums import ACTIVE_STATUSES
from bot.conversations.models import Case
from bot.settings import Settings
from escalation.models import BREACHED, SlaTimer
from handlers.console.dashboard import CHARTS, CSV_COLUMNS
from tests.browser.conftest import SCREENSHOTS
from tests.browser.dashboard_story import Story, tell
from tests.browser.test_console_flow import _collect_errors
from tests.live import DEMO_PASSWORD, LiveServer, serve


@pytest.fixture
async def told(settings: Settings) -> AsyncIterator[tuple[LiveServer, Story]]:
    """The live app on a frozen clock, after five days of customer service."""
    clock = FrozenClock()
    async with serve(settings, clock=clock) as server:
        story = await tell(server.rt, clock)
        yield server, story


async def _sign_in(page: Page, live: LiveServer, username: str, lang: str = "en") -> None:
    await page.goto(f"{live.url}/console/login?lang={lang}")
    await page.fill("input[name=username]", username)
    await page.fill("input[name=password]", DEMO_PASSWORD)
    await page.click("button[type=submit]")
    await page.wait_for_url(re.compile(r"/console/$"))


def _ids(html_rows: list[str]) -> set[int]:
    return {int(x) for x in html_rows if x}


async def _listed(page: Page) -> set[int]:
    """Case ids on a drill-down page (every row: the stories are far below the page limit)."""
    await expect(page.locator("#drill")).to_be_visible()
    return _ids(await page.locator("#drill-rows tbody tr").evaluate_all("rs => rs.map(r => r.dataset.case)"))


async def _cases(live: LiveServer, *where: Any) -> set[int]:
    async with live.rt.maker() as session:
        return set((await session.scalars(select(Case.id).where(*where))).all())


async def _breached_now(live: LiveServer) -> set[int]:
    async with live.rt.maker() as session:
        rows = await session.scalars(
            select(SlaTimer.case_id)
            .join(Case, Case.id == SlaTimer.case_id)
            .where(SlaTimer.state == BREACHED, Case.status.in_(ACTIVE_STATUSES))
        )
        return set(rows.all())


async def _click_point(page: Page, chart: str, dataset: int, index: int) -> None:
    """Click one bar or point of a chart where Chart.js drew it."""
    canvas = page.locator(f"canvas[data-chart={chart}]")
    await canvas.scroll_into_view_if_needed()
    xy = await canvas.evaluate(
        "(c, [d, i]) => { const p = Chart.getChart(c).getDatasetMeta(d).data[i].getCenterPoint();"
        " return [p.x, p.y]; }",
        [dataset, index],
    )
    box = await canvas.bounding_box()
    assert box is not None
    await page.mouse.click(box["x"] + xy[0], box["y"] + xy[1])


async def test_manager_dashboard_charts_drill_down_and_csv(
    told: tuple[LiveServer, Story], browser: Browser, contexts: list[Any]
) -> None:
    live, story = told
    ctx = await browser.new_context(
        locale="en-US", viewport={"width": 1440, "height": 1000}, accept_downloads=True
    )
    contexts.append(ctx)
    page = await ctx.new_page()
    errors: list[str] = []
    _collect_errors(page, errors)

    def on_failed(request: Request) -> None:
        # Leaving a page aborts its live event stream; that is not a failed request.
        if not (request.url.endswith("/events") and request.failure == "net::ERR_ABORTED"):
            errors.append(f"failed {request.url} {request.failure}")

    page.on("requestfailed", on_failed)
    await _sign_in(page, live, "manager1")
    await page.goto(f"{live.url}/console/dashboard")
    await expect(page.locator("h1")).to_have_text("SLA dashboard")

    # Every chart is a Chart.js instance with data, and its canvas has pixels drawn.
    drawn = await page.evaluate(
        """() => [...document.querySelectorAll('canvas[data-chart]')].map(c => {
             const chart = Chart.getChart(c);
             const ink = c.getContext('2d').getImageData(0, 0, c.width, c.height).data
                          .some((v, i) => i % 4 === 3 && v > 0);
             const values = chart ? chart.data.datasets.flatMap(d => d.data)
                                     .filter(v => v !== null && v !== undefined) : [];
             return [c.dataset.chart, !!chart, ink, values.length];
           })"""
    )
    assert [d[0] for d in drawn] == [key for key, _ in CHARTS]
    for key, has_chart, ink, values in drawn:
        assert has_chart and ink, key
        assert values > 0, f"chart {key} has no data"
    tiles = {
        name: await page.locator(f"[data-tile={name}] .tile-value").inner_text()
        for name in ("open", "waiting_staff", "at_risk", "breached_now", "bot_resolved", "csat")
    }
    assert all(v not in ("0", "–") for v in tiles.values()), tiles
    assert await page.locator("#queue tbody tr").count() > 0
    assert await page.locator("#team tbody tr").count() > 0
    # Definitions: a tooltip on each tile and chart, and the help panel a chart's "?" opens.
    await expect(page.locator("[data-tile=at_risk]")).to_have_attribute("title", re.compile("80 %"))
    await expect(page.locator("#chart-hitDay figcaption")).to_have_attribute("title", re.compile("applied"))
    await page.locator("#chart-hitDay a.help-link").click()
    await expect(page.locator("#dash-help")).to_have_attribute("open", "")
    await expect(page.locator("#dash-help")).to_contain_text("(applied - missed) / applied")
    await page.screenshot(path=str(SCREENSHOTS / "dashboard.png"), full_page=True)
    assert errors == []

    # A tile: the cases breached now.
    await page.locator("[data-tile=breached_now]").click()
    listed = await _listed(page)
    assert listed == await _breached_now(live) and listed
    assert tiles["breached_now"] == str(len(listed))

    # A chart: today's backlog bar lists the cases open now.
    await page.goto(f"{live.url}/console/dashboard")
    labels = await page.locator("canvas[data-chart=backlog]").evaluate("c => Chart.getChart(c).data.labels")
    await _click_point(page, "backlog", 0, len(labels) - 1)
    await page.wait_for_url(re.compile(r"/console/dashboard/cases\?.*metric=backlog"))
    listed = await _listed(page)
    assert listed == await _cases(live, Case.status.in_(ACTIVE_STATUSES)) and listed

    # Another chart: the specialist with the most breaches, then the CSV of that list.
    await page.goto(f"{live.url}/console/dashboard")
    await _click_point(page, "breaches", 0, 0)
    await page.wait_for_url(re.compile(r"/console/dashboard/cases\?.*metric=breaches"))
    listed = await _listed(page)
    assert listed and listed <= set(story.cases)
    total = int(await page.locator("#drill").get_attribute("data-total") or -1)
    assert total == len(listed)
    async with page.expect_download() as info:
        await page.click("#export-csv")
    download = await info.value
    path = await download.path()
    text = path.read_bytes().decode("utf-8-sig")
    rows = list(csv.reader(io.StringIO(text)))
    assert tuple(rows[0]) == CSV_COLUMNS
    assert len(rows) == 1 + total
    assert {int(r[0]) for r in rows[1:]} == listed
    assert errors == []


async def test_dashboard_in_chinese(live: LiveServer, browser: Browser, contexts: list[Any]) -> None:
    ctx = await browser.new_context(locale="zh-CN")
    contexts.append(ctx)
    page = await ctx.new_page()
    errors: list[str] = []
    _collect_errors(page, errors)
    await _sign_in(page, live, "manager1", lang="zh-CN")
    await page.goto(f"{live.url}/console/dashboard")
    await expect(page.locator("h1")).to_have_text("SLA 数据看板")
    await expect(page.locator("#dash-help summary")).to_have_text("指标口径说明")
    count = await page.evaluate("document.querySelectorAll('canvas[data-chart]').length")
    charts = await page.evaluate(
        "[...document.querySelectorAll('canvas[data-chart]')].filter(c => Chart.getChart(c)).length"
    )
    assert count == charts == len(CHARTS)
    assert errors == []
