"""Probes of a running deployment: live updates over web chat SSE, the outbox backlog."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine


async def outbox_backlog(url: str) -> int:
    """Telegram outbox rows not delivered yet (pending or leased)."""
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            value = await conn.scalar(
                text("SELECT count(*) FROM outbox WHERE status IN ('pending', 'sending')")
            )
    finally:
        await engine.dispose()
    return int(value or 0)


class LiveProbe:
    """A web chat customer with the live page open: posts once a second, listens to its SSE stream.

    With two web processes the stream and the posts usually land on different processes, so an
    event only arrives through Redis.
    """

    def __init__(self, base_url: str, every: float = 1.0) -> None:
        self.base_url = base_url
        self.every = every
        self.client = httpx.AsyncClient(base_url=base_url, timeout=httpx.Timeout(10, read=40))
        self.session_id = ""
        self.posts: list[tuple[float, int | None]] = []  # (when, status or None for no answer)
        self.events: list[float] = []
        self.back_at: float | None = None  # set when the broken part is back
        self._listener: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Open a web chat session and start listening."""
        r = await self.client.post(
            "/api/v1/webchat/sessions", json={"display_name": "Live probe", "locale": "en"}
        )
        r.raise_for_status()
        self.session_id = r.json()["session_id"]
        self._listener = asyncio.create_task(self._listen())

    async def _listen(self) -> None:
        """Read the SSE stream; reconnect like a browser (EventSource) when it ends."""
        headers = {"X-Webchat-Session": self.session_id}
        while True:
            with contextlib.suppress(httpx.HTTPError):
                async with self.client.stream("GET", "/api/v1/webchat/events", headers=headers) as resp:
                    async for line in resp.aiter_lines():
                        if line.startswith("event:"):
                            self.events.append(time.monotonic())
            await asyncio.sleep(1.0)

    async def run(self, stop: asyncio.Event) -> None:
        """Post a customer message every `every` seconds until stopped."""
        n = 0
        while not stop.is_set():
            n += 1
            status: int | None = None
            with contextlib.suppress(httpx.HTTPError):
                r = await self.client.post(
                    "/api/v1/webchat/messages",
                    # The knowledge base answers this every time: one live event per post.
                    json={"text": "How often should I service my car?", "client_message_id": f"probe-{n}"},
                    headers={"X-Webchat-Session": self.session_id},
                )
                status = r.status_code
            self.posts.append((time.monotonic(), status))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.every)

    async def wait_live(self, limit: float) -> bool:
        """True once an event arrives within `limit` seconds from now."""
        since = time.monotonic()
        while time.monotonic() - since < limit:
            if any(t > since for t in self.events):
                return True
            await asyncio.sleep(0.1)
        return False

    def accepted_between(self, start: float, end: float) -> dict[str, int]:
        """Posts made in a window and how many were accepted (201)."""
        window = [s for t, s in self.posts if start <= t <= end]
        return {"posted": len(window), "accepted": sum(1 for s in window if s == 201)}

    def report(self) -> dict[str, Any]:
        """Seconds from the broken part's return to the first live event after it."""
        out: dict[str, Any] = {"probe_posts": len(self.posts), "probe_events": len(self.events)}
        if self.back_at is not None:
            after = [t for t in self.events if t > self.back_at]
            out["live_resumed_after_s"] = round(after[0] - self.back_at, 2) if after else None
        return out

    async def close(self) -> None:
        """Stop listening."""
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(BaseException):
                await self._listener
        await self.client.aclose()
