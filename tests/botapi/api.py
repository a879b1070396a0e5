"""Request plumbing shared by the method modules: typed parameters, context, the method registry."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from tests.botapi.limits import RateLimiter
from tests.botapi.model import ApiError, BotState, World, bad_request

JSON = dict[str, Any]


@dataclass
class Upload:
    """A file part of a multipart request."""

    filename: str | None
    content_type: str | None
    data: bytes


@dataclass
class WithDescription:
    """A successful result that Telegram answers with an extra "description" (setWebhook)."""

    result: Any
    description: str


class Params:
    """Method parameters from the query string and a JSON, form or multipart body.

    Form and multipart values arrive as strings (PTB JSON-encodes non-string values), while a JSON
    body carries typed values; like Telegram, each accessor coerces to the type the method expects.
    """

    def __init__(self, values: dict[str, Any], uploads: dict[str, Upload] | None = None) -> None:
        self.values = values
        self.uploads = uploads or {}

    def has(self, name: str) -> bool:
        """Whether a non-empty value was given."""
        return self.values.get(name) not in (None, "") or name in self.uploads

    def string(self, name: str, *, required: bool = False, empty: str | None = None) -> str | None:
        """A string parameter."""
        value = self.values.get(name)
        if value is None or value == "":
            if required:
                raise bad_request(empty or f'parameter "{name}" is required')
            return None
        return value if isinstance(value, str) else json.dumps(value)

    def integer(self, name: str, *, required: bool = False, empty: str | None = None) -> int | None:
        """An integer parameter."""
        value = self.values.get(name)
        if value is None or value == "":
            if required:
                raise bad_request(empty or f'parameter "{name}" is required')
            return None
        if isinstance(value, bool):
            return int(value)
        try:
            return int(value)
        except (TypeError, ValueError):
            raise bad_request(f"invalid {name} specified") from None

    def number(self, name: str, *, required: bool = False) -> float | None:
        """A float parameter."""
        value = self.values.get(name)
        if value is None or value == "":
            if required:
                raise bad_request(f'parameter "{name}" is required')
            return None
        try:
            return float(value)
        except (TypeError, ValueError):
            raise bad_request(f"invalid {name} specified") from None

    def flag(self, name: str, default: bool = False) -> bool:
        """A boolean parameter ("true"/"false", 1/0, or JSON booleans)."""
        value = self.values.get(name)
        if value is None or value == "":
            return default
        if isinstance(value, str):
            return value.strip().lower() in ("true", "1")
        return bool(value)

    def parsed(self, name: str) -> Any:
        """A JSON-serialized parameter (reply_markup, entities, allowed_updates...)."""
        value = self.values.get(name)
        if value is None or value == "":
            return None
        if isinstance(value, str):
            try:
                return json.loads(value)
            except ValueError:
                raise bad_request(f"can't parse {name} JSON object") from None
        return value

    def chat_id(self, name: str = "chat_id") -> int | str:
        """A chat id: integer or @username."""
        value = self.values.get(name)
        if value is None or value == "":
            raise bad_request(f"{name} is empty")
        if isinstance(value, str) and value.startswith("@"):
            return value
        try:
            return int(value)
        except (TypeError, ValueError):
            raise bad_request("chat not found") from None

    def file(self, name: str) -> Upload | str | None:
        """An InputFile: an uploaded part, attach://<part>, or a file_id/URL string."""
        if name in self.uploads:
            return self.uploads[name]
        value = self.values.get(name)
        if isinstance(value, str) and value.startswith("attach://"):
            upload = self.uploads.get(value.removeprefix("attach://"))
            if upload is None:
                raise bad_request(f"wrong remote file identifier specified: can't find {value}")
            return upload
        return value if isinstance(value, str) and value else None

    def loggable(self) -> JSON:
        """Parameters for the call log, with uploads summarised instead of raw bytes."""
        data = dict(self.values)
        for key, up in self.uploads.items():
            data[key] = {"upload": up.filename, "size": len(up.data)}
        return data


@dataclass
class Ctx:
    """What a method implementation can reach."""

    world: World
    bot: BotState
    limiter: RateLimiter


Handler = Callable[[Ctx, Params], Awaitable[Any]]
METHODS: dict[str, tuple[str, Handler]] = {}


def method(name: str) -> Callable[[Handler], Handler]:
    """Register a Bot API method; lookup is case-insensitive as the Bot API documents."""

    def register(fn: Handler) -> Handler:
        METHODS[name.lower()] = (name, fn)
        return fn

    return register


def not_found() -> ApiError:
    """Telegram's answer to an unknown method."""
    return ApiError(404, "Not Found")
