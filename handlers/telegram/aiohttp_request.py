"""PTB's HTTP transport on aiohttp: the Bot API client of the sender and the Application.

python-telegram-bot talks HTTP through a `BaseRequest`; its own is httpx. Against the Bot API test
server one sendMessage cost the calling process 4.9-5.4 ms of CPU through httpx and 0.9-1.0 ms
through aiohttp (docs/BENCHMARKS.md), and the outbox sender is mostly such calls. PTB documents
`BaseRequest` as the place to plug in another HTTP library.
"""

from __future__ import annotations

import json
import ssl
from typing import Any

import aiohttp
from telegram._utils.defaultvalue import DefaultValue
from telegram._utils.types import ODVInput
from telegram.error import NetworkError, TimedOut
from telegram.request import BaseRequest, RequestData


def _given(value: ODVInput[float], default: float | None) -> float | None:
    """A timeout PTB passed for this call, or ours when it passed none."""
    return default if isinstance(value, DefaultValue) else value


class AiohttpRequest(BaseRequest):
    """One aiohttp session with a bounded connection pool; PTB's timeouts map onto aiohttp's."""

    __slots__ = ("_pool", "_session", "_ssl", "_timeouts")

    def __init__(
        self,
        *,
        connection_pool_size: int,
        connect_timeout: float | None = 5.0,
        read_timeout: float | None = 5.0,
        write_timeout: float | None = 5.0,
        pool_timeout: float | None = 1.0,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self._pool = connection_pool_size
        self._ssl = ssl_context
        self._timeouts = {
            "connect": connect_timeout,
            "read": read_timeout,
            "write": write_timeout,
            "pool": pool_timeout,
        }
        self._session: aiohttp.ClientSession | None = None

    @property
    def read_timeout(self) -> float | None:
        """The default read timeout (PTB adds it to getUpdates' long-poll timeout)."""
        return self._timeouts["read"]

    async def initialize(self) -> None:
        """Open the session (again, after a shutdown)."""
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(limit=self._pool, ssl=self._ssl if self._ssl else True)
            self._session = aiohttp.ClientSession(connector=connector)

    async def shutdown(self) -> None:
        """Close the session and its connections."""
        if self._session is not None and not self._session.closed:
            await self._session.close()

    async def do_request(
        self,
        url: str,
        method: str,
        request_data: RequestData | None = None,
        read_timeout: ODVInput[float] = BaseRequest.DEFAULT_NONE,
        write_timeout: ODVInput[float] = BaseRequest.DEFAULT_NONE,
        connect_timeout: ODVInput[float] = BaseRequest.DEFAULT_NONE,
        pool_timeout: ODVInput[float] = BaseRequest.DEFAULT_NONE,
    ) -> tuple[int, bytes]:
        """One Bot API call: a JSON body, multipart when files go along."""
        if self._session is None or self._session.closed:
            raise RuntimeError("This AiohttpRequest is not initialized!")
        files = request_data.multipart_data if request_data else None
        data: Any = None
        headers = {"User-Agent": self.USER_AGENT}
        if request_data is not None and not files:
            # JSON, not a form: urllib percent-encodes a Chinese text byte by byte, a seventh of the
            # call's CPU (0.29 -> 0.25 ms per sendMessage, docs/BENCHMARKS.md). The Bot API takes both.
            data = json.dumps(request_data.parameters, ensure_ascii=False).encode()
            headers["Content-Type"] = "application/json"
        if files:
            form = aiohttp.FormData(request_data.json_parameters if request_data else {})
            for name, (filename, content, mime) in files.items():
                form.add_field(name, content, filename=filename, content_type=mime)
            data = form
        read = _given(read_timeout, self._timeouts["read"])
        write = _given(write_timeout, self._timeouts["write"])
        # aiohttp has no write timeout: an upload is bounded by a total of writing and reading.
        total = (write or 0) + (read or 0) if files and write is not None and read is not None else None
        connect = _given(connect_timeout, self._timeouts["connect"])
        pool = _given(pool_timeout, self._timeouts["pool"])
        timeout = aiohttp.ClientTimeout(
            total=total,
            # aiohttp's `connect` is waiting for a pooled connection plus opening a new one.
            connect=None if connect is None or pool is None else connect + pool,
            sock_connect=connect,
            sock_read=None if files else read,
        )
        try:
            async with self._session.request(
                method, url, data=data, headers=headers, timeout=timeout
            ) as response:
                return response.status, await response.read()
        except TimeoutError as err:  # aiohttp's timeouts subclass it
            raise TimedOut(f"aiohttp: {type(err).__name__}: {err}") from err
        except aiohttp.ClientError as err:
            raise NetworkError(f"aiohttp.{type(err).__name__}: {err}") from err
