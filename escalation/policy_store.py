"""SLA policies edited in the console: versioned YAML in the database, loaded over the file at start.

The newest row of ``sla_policy_versions`` is the policy set in force; without any row the YAML file
(``settings.sla_policies_file`` or the shipped demo) applies. Saving a version is audited and announced
on the bus topic ``sla-policies`` after commit; every process reloads (and also re-checks the newest
version every ``poll_seconds``, so a lost bus event only delays a reload).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from sqlalchemy import ForeignKey, Integer, String, Text, func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Mapped, mapped_column

from bot.bus import emit
from bot.db import Base, BigId
from bot.errors import InvalidInput
from bot.teams.service import audit
from escalation.policies import DEFAULT_FILE, PolicySet, parse_policies

if TYPE_CHECKING:
    from bot.runtime import Runtime

log = logging.getLogger(__name__)
TOPIC = "sla-policies"
MAX_YAML = 200_000
VERSION_KEY = "sla_policy_version"


class SlaPolicyVersion(Base):
    """One saved version of the SLA policies document (the newest applies)."""

    __tablename__ = "sla_policy_versions"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    version: Mapped[int] = mapped_column(Integer, unique=True)
    yaml_text: Mapped[str] = mapped_column(Text)
    comment: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[datetime]
    created_by: Mapped[int | None] = mapped_column(ForeignKey("staff.id"))


def parse_policy_yaml(text: str, *, source: str = "") -> PolicySet:
    """Parse and validate a policies document; InvalidInput says what is wrong."""
    if not text.strip():
        raise InvalidInput("sla.empty", "the policies document is empty")
    if len(text) > MAX_YAML:
        raise InvalidInput("sla.too_long", f"the policies document is longer than {MAX_YAML} characters")
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise InvalidInput("sla.yaml", f"not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise InvalidInput("sla.shape", "expected a mapping with calendars, defaults and policies")
    try:
        return parse_policies(data, source=source)
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        # ZoneInfoNotFoundError is a KeyError; a wrong shape surfaces as TypeError / AttributeError.
        raise InvalidInput("sla.invalid", f"invalid policies: {exc}") from exc


def file_text(path: Path | str | None) -> tuple[str, str]:
    """The YAML file that applies when no version is stored: (text, source)."""
    file = Path(path) if path else DEFAULT_FILE
    return file.read_text(encoding="utf-8"), str(file)


async def latest_version(session: AsyncSession) -> SlaPolicyVersion | None:
    """The version in force, if any was saved."""
    return await session.scalar(select(SlaPolicyVersion).order_by(SlaPolicyVersion.version.desc()).limit(1))


async def latest_version_number(session: AsyncSession) -> int:
    """The newest version number (0 when none is stored)."""
    return int(await session.scalar(select(func.coalesce(func.max(SlaPolicyVersion.version), 0))) or 0)


async def list_versions(session: AsyncSession, *, limit: int = 20) -> list[SlaPolicyVersion]:
    """Saved versions, newest first."""
    rows = await session.scalars(
        select(SlaPolicyVersion).order_by(SlaPolicyVersion.version.desc()).limit(limit)
    )
    return list(rows.all())


async def save_policies(
    session: AsyncSession, *, text: str, comment: str, actor_staff_id: int | None, now: datetime
) -> tuple[SlaPolicyVersion, PolicySet]:
    """Validate and store a new version, audited; every process reloads after commit."""
    text = text.replace("\r\n", "\n")
    policies = parse_policy_yaml(text)
    previous = await latest_version_number(session)
    row = SlaPolicyVersion(
        version=previous + 1,
        yaml_text=text,
        comment=comment.strip()[:200],
        created_at=now,
        created_by=actor_staff_id,
    )
    session.add(row)
    await session.flush()  # a concurrent save of the same number fails on the unique key here
    audit(
        session,
        action="sla.policies.save",
        object_type="sla_policies",
        object_id=row.version,
        actor_staff_id=actor_staff_id,
        now=now,
        data={
            "version": row.version,
            "previous": previous,
            "policies": [p.key for p in policies.policies],
            "calendars": sorted(policies.calendars),
            "comment": row.comment,
        },
    )
    emit(session, TOPIC, {"type": "sla.policies.changed", "version": row.version})
    return row, policies


async def load_stored(maker: async_sessionmaker[AsyncSession]) -> tuple[int, PolicySet] | None:
    """The newest stored version, parsed; None when none is stored."""
    async with maker() as session:
        row = await latest_version(session)
    if row is None:
        return None
    return row.version, parse_policy_yaml(row.yaml_text, source=f"database version {row.version}")


async def apply_stored(rt: Runtime) -> int:
    """Swap the stored policies into this process's SLA engine; returns the version (0: the file)."""
    stored = await load_stored(rt.maker)
    if stored is None:
        rt.extras[VERSION_KEY] = 0
        return 0
    version, policies = stored
    rt.sla.reload(policies)
    rt.extras[VERSION_KEY] = version
    log.info("SLA policies: database version %d in force", version)
    return version


async def prepare_policies(rt: Runtime) -> None:
    """At start: stored policies win over the file (a bad stored version keeps the file, loudly)."""
    try:
        await apply_stored(rt)
    except Exception:
        log.exception("stored SLA policies could not be loaded; the policies file stays in force")


async def run_policy_refresh(rt: Runtime, stop: asyncio.Event, *, poll_seconds: float = 30.0) -> None:
    """Reload whenever any process saves a version (bus), or a poll finds a newer one."""
    wake = asyncio.Event()

    async def listen() -> None:
        async for event in rt.bus.subscribe([TOPIC]):
            if event.get("type") == "sla.policies.changed":
                wake.set()

    listener = asyncio.create_task(listen(), name="sla-policies-listener")
    try:
        while not stop.is_set():
            waiters = [asyncio.create_task(stop.wait()), asyncio.create_task(wake.wait())]
            try:
                await asyncio.wait(waiters, timeout=poll_seconds, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for w in waiters:
                    w.cancel()
            if stop.is_set():
                break
            wake.clear()
            try:
                async with rt.maker() as session:
                    newest = await latest_version_number(session)
                if newest != rt.extras.get(VERSION_KEY, 0):
                    await apply_stored(rt)
            except Exception:
                log.exception("SLA policies reload failed; keeping the ones in force")
    finally:
        listener.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await listener


def policy_rows(policies: PolicySet) -> list[dict[str, Any]]:
    """What applies to what, as plain rows for a table (in matching order)."""
    return [
        {
            "order": n,
            "key": p.key,
            "categories": sorted(p.categories),
            "priorities": sorted(p.priorities),
            "dealers": sorted(p.dealers),
            "targets": dict(p.targets),
            "calendar": p.calendar,
            "pause": p.pause_resolution_when_waiting_customer,
            "ladders": {m: [s.describe() for s in steps] for m, steps in p.ladders.items()},
        }
        for n, p in enumerate(policies.policies, 1)
    ]
