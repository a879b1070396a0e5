"""The app behind uvicorn in a background thread, with demo data, for synchronous tests that talk HTTP."""

from __future__ import annotations

import asyncio
import threading

from bot.app import create_app
from bot.seed import seed_demo
from bot.settings import Settings
from tests.live import DEMO_HASH, DEMO_PASSWORD, serve_app


class AppThread(threading.Thread):
    """Runs `main()` in its own event loop; `main()` ends by awaiting `serve()`."""

    def __init__(self, name: str) -> None:
        super().__init__(daemon=True, name=name)
        self.ready = threading.Event()
        self._serve_loop: asyncio.AbstractEventLoop | None = None
        self._stop_event: asyncio.Event | None = None
        self.url = ""
        self.error: BaseException | None = None

    async def main(self) -> None:
        """What the thread runs (override)."""
        raise NotImplementedError

    def run(self) -> None:
        """Thread body: a start-up failure is handed to the waiting test, not lost in the thread."""
        try:
            asyncio.run(self.main())
        except BaseException as exc:
            self.error = exc
            self.ready.set()

    async def serve(self, settings: Settings) -> None:
        """Seed demo data, serve the app on a free port until stop()."""
        app = create_app(settings)
        async with app.state.rt.transaction() as session:
            await seed_demo(session, password=DEMO_PASSWORD, password_hash=DEMO_HASH)
        self._serve_loop, self._stop_event = asyncio.get_running_loop(), asyncio.Event()
        async with serve_app(app) as url:
            self.url = url
            self.ready.set()
            await self._stop_event.wait()

    def start_and_wait(self, timeout: float = 120) -> str:
        """Start the thread; the server's base URL once it answers (or the start-up error)."""
        self.start()
        assert self.ready.wait(timeout), f"{self.name} did not start"
        if self.error is not None:
            raise self.error
        return self.url

    def stop(self) -> None:
        """Stop the server and wait for the thread."""
        if self._serve_loop is not None and self._stop_event is not None:
            self._serve_loop.call_soon_threadsafe(self._stop_event.set)
        self.join(30)
