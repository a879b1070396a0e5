"""The dashboard through real HTTP (uvicorn): access per role, page, tiles, drill-down, CSV, live hints."""

from __future__ import annotations

import asyncio
import contextlib
import csv
import io
import json
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
import pytest_asyncio
from sqlalchemy import update

from bot.conversations.models import Case
from bot.teams.models import Customer
from handlers.console.dashboard import csv_cell
from handlers.console.texts import UI
from tests.console.dashboard_data import World, build_world, frozen, migrated_settings
from tests.live import DEMO_HASH, DEMO_PASSWORD, LiveServer, serve

pytestmark = pytest.mark.asyncio(loop_scope="module")
NASTY_SUBJECT = '=HYPERLINK("http://evil.example","x"), <b>bold</b>'
NASTY_NAME = '-@evil, "quoted"\nsecond line'


@pytest_asyncio.fixture(scope="module", loop_scope="module", params=["sqlite", "postgresql"])
async def site(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[tuple[LiveServer, World]]:
    """A live server with the hand-built dashboard data (no demo seed: it takes seconds to load)."""
    async with migrated_settings(request.param, tmp_path_factory.mktemp("http")) as settings:
        async with serve(settings, clock=frozen(), seed=False) as server:
            world = await build_world(server.rt, password_hash=DEMO_HASH)
            async with server.rt.transaction() as session:
                await session.execute(
                    update(Case).where(Case.id == world.cases["c3"]).values(subject=NASTY_SUBJECT)
                )
                group_g4 = world.groups["g4"]
                await session.execute(
                    update(Customer)
                    .where(Customer.display_name == "Customer g4")
                    .values(display_name=NASTY_NAME)
                    .execution_options(synchronize_session=False)
                )
            assert group_g4
            yield server, world


@contextlib.asynccontextmanager
async def login(server: LiveServer, username: str) -> AsyncIterator[httpx.AsyncClient]:
    """A console session for a staff member."""
    async with server.client(follow_redirects=False) as client:
        yield await _sign_in(client, username)


async def _sign_in(client: httpx.AsyncClient, username: str) -> httpx.AsyncClient:
    page = await client.get("/console/login")
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert csrf, page.text[:500]
    r = await client.post(
        "/console/login", data={"username": username, "password": DEMO_PASSWORD, "csrf": csrf.group(1)}
    )
    assert r.status_code == 303, r.text[:300]
    await client.get("/console/login?lang=en")  # the staff's default UI language is zh-CN
    return client


def tile(html: str, name: str) -> str:
    """The number shown on a tile."""
    m = re.search(rf'data-tile="{name}"[^>]*>.*?class="tile-value">([^<]*)<', html, re.S)
    assert m, f"tile {name} not found"
    return m.group(1).strip()


def chart_data(html: str) -> dict[str, Any]:
    """The chart specs embedded in the page."""
    m = re.search(r'<script type="application/json" id="dash-data">(.*?)</script>', html, re.S)
    assert m
    return dict(json.loads(m.group(1)))


def case_ids(html: str) -> set[int]:
    """Case ids listed on a drill-down page."""
    return {int(x) for x in re.findall(r'data-case="(\d+)"', html)}


async def test_access_by_role(site: tuple[LiveServer, World]) -> None:
    server, _ = site
    paths = [
        "/console/dashboard",
        "/console/dashboard/tiles",
        "/console/dashboard/cases?metric=open",
        "/console/dashboard/export.csv?metric=open",
        "/console/dashboard/events",
    ]
    async with server.client(follow_redirects=False) as anon:
        for path in paths:
            r = await anon.get(path)
            assert r.status_code == 303 and r.headers["location"] == "/console/login", path
    async with login(server, "w_butler") as specialist:
        for path in paths:
            assert (await specialist.get(path)).status_code == 403, path
    for who in ("w_manager", "w_admin", "w_lead"):
        async with login(server, who) as client:
            r = await client.get("/console/dashboard")
            assert r.status_code == 200, (who, r.text[:300])


async def test_manager_page_tiles_charts_and_help(site: tuple[LiveServer, World]) -> None:
    server, world = site
    async with login(server, "w_manager") as client:
        r = await client.get("/console/dashboard?from=2026-10-31&to=2026-11-02")
        assert r.status_code == 200
        html = r.text
        assert [
            tile(html, t) for t in ("open", "waiting_staff", "at_risk", "breached_now", "bot_resolved")
        ] == [
            "3",
            "2",
            "1",
            "1",
            "2",
        ]
        assert tile(html, "csat") == "100.0%"
        assert html.count("<canvas data-chart=") == 7
        assert "How these numbers are computed" in html and "(applied - missed) / applied" in html
        assert 'src="/static/vendor/chart.umd.js"' in html and 'src="/static/console/dashboard.js"' in html
        assert "onclick" not in html.lower() and "javascript:" not in html.lower()
        assert ">Dealer A</option>" in html and ">Dealer B</option>" in html
        # The customer-controlled subject is escaped, in the queue and anywhere else.
        assert "<b>bold</b>" not in html
        charts = chart_data(html)
        assert set(charts) == {"hitDay", "hitRole", "frt", "backlog", "breaches", "csat", "bot"}
        for key, spec in charts.items():
            for ds in spec["datasets"]:
                assert len(ds["data"]) == len(ds["drill"]) == len(spec["labels"]), key
        day = charts["hitDay"]["labels"].index("2026-11-01")
        assert charts["hitDay"]["datasets"][0]["data"][day] == 75.0
        drill = await client.get(charts["hitDay"]["datasets"][0]["drill"][day])
        assert drill.status_code == 200
        assert case_ids(drill.text) == {world.cases["c2"], world.cases["c4"]}
        # Every chart point opens a list.
        for key in charts:
            url = charts[key]["datasets"][0]["drill"][0] if charts[key]["labels"] else None
            if url:
                assert (await client.get(url)).status_code == 200, url
        r = await client.get(f"/console/dashboard/tiles?dealer={world.dealer_b}")
        assert r.status_code == 200 and tile(r.text, "open") == "1"
        zh = await client.get("/console/dashboard?lang=zh-CN")
        assert "SLA 数据看板" in zh.text and "指标口径说明" in zh.text
        await client.get("/console/dashboard?lang=en")


async def test_drill_down_and_csv_export(site: tuple[LiveServer, World]) -> None:
    server, world = site
    c = world.cases
    async with login(server, "w_manager") as client:
        r = await client.get("/console/dashboard/cases?metric=open")
        assert r.status_code == 200
        assert case_ids(r.text) == {c["c3"], c["c4"], c["c5"]}
        assert "<b>bold</b>" not in r.text and "&lt;b&gt;bold&lt;/b&gt;" in r.text
        assert 'href="/console/dashboard/export.csv?' in r.text
        r = await client.get("/console/dashboard/cases?metric=breached_now")
        assert case_ids(r.text) == {c["c5"]}
        r = await client.get("/console/dashboard/export.csv?metric=open")
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/csv")
        assert "attachment" in r.headers["content-disposition"]
        text = r.content.decode("utf-8-sig")
        rows = list(csv.DictReader(io.StringIO(text)))
        assert {int(row["case_id"]) for row in rows} == {c["c3"], c["c4"], c["c5"]}
        by_id = {int(row["case_id"]): row for row in rows}
        assert by_id[c["c3"]]["subject"] == "'" + NASTY_SUBJECT
        assert by_id[c["c4"]]["customer"] == "'" + NASTY_NAME
        assert by_id[c["c4"]]["dealer"] == "Dealer B"
        assert by_id[c["c3"]]["opened_at"].startswith("2026-11-02T")
        r = await client.get("/console/dashboard/export.csv?metric=bot_resolved&day=2026-11-02")
        assert len(list(csv.DictReader(io.StringIO(r.content.decode("utf-8-sig"))))) == 2
        for bad in ("metric=nope", "metric=open&from=yesterday", "metric=sla&role=%3Cscript%3E"):
            assert (await client.get(f"/console/dashboard/cases?{bad}")).status_code == 422, bad
        assert (await client.get("/console/dashboard?from=2026-11-02&to=2026-10-01")).status_code == 422


async def test_lead_sees_only_their_dealer(site: tuple[LiveServer, World]) -> None:
    server, world = site
    c = world.cases
    async with login(server, "w_lead") as lead_a:
        html = (await lead_a.get(f"/console/dashboard?dealer={world.dealer_b}")).text
        assert tile(html, "open") == "2"
        assert '<select name="dealer">' not in html
        r = await lead_a.get(f"/console/dashboard/cases?metric=open&dealer={world.dealer_b}")
        assert case_ids(r.text) == {c["c3"], c["c5"]}
        r = await lead_a.get(f"/console/dashboard/export.csv?metric=open&dealer={world.dealer_b}")
        ids = {int(row["case_id"]) for row in csv.DictReader(io.StringIO(r.content.decode("utf-8-sig")))}
        assert ids == {c["c3"], c["c5"]}
    async with login(server, "w_lead_b") as lead_b:
        html = (await lead_b.get("/console/dashboard")).text
        assert [tile(html, t) for t in ("open", "at_risk", "breached_now")] == ["1", "0", "0"]
        r = await lead_b.get("/console/dashboard/cases?metric=open")
        assert case_ids(r.text) == {c["c4"]}


async def test_live_hints_reach_the_page(site: tuple[LiveServer, World]) -> None:
    server, _ = site
    async with login(server, "w_manager") as client:
        async with client.stream("GET", "/console/dashboard/events") as stream:
            assert stream.headers["content-type"].startswith("text/event-stream")
            lines = stream.aiter_lines()
            assert (await anext(lines)).startswith("retry:")
            await asyncio.sleep(0.05)  # subscribed once the first line went out
            await server.rt.bus.publish("cases", {"type": "case.new", "case_id": 1})
            seen = [await asyncio.wait_for(anext(lines), 5) for _ in range(2)]
            assert "event: case.new" in seen
        await server.rt.bus.publish("cases", {"type": "case.new", "case_id": 2})  # ends the server side


async def test_csv_cells_are_formula_safe() -> None:
    from datetime import date

    from escalation.metrics import Scope

    s = Scope(date(2026, 11, 1), date(2026, 11, 2), datetime(2026, 11, 2, 9, tzinfo=UTC), tz="Asia/Shanghai")
    assert [csv_cell(v, s) for v in ("=1+1", "+1", "-1", "@A1", "\tx", "\rx", "ok", None, 3, 1.23456)] == [
        "'=1+1",
        "'+1",
        "'-1",
        "'@A1",
        "'\tx",
        "'\rx",
        "ok",
        "",
        "3",
        "1.235",
    ]
    assert csv_cell(datetime(2026, 11, 2, 9, tzinfo=UTC), s) == "2026-11-02T17:00:00+08:00"


async def test_texts_have_the_same_keys_in_both_locales() -> None:
    assert set(UI["en"]) == set(UI["zh-CN"])
    assert {k for k in UI["en"] if k.startswith("dash_")} == {k for k in UI["zh-CN"] if k.startswith("dash_")}
