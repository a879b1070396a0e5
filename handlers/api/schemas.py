"""Request and response bodies of the REST API v1."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import Path, Query
from pydantic import AfterValidator, BaseModel, Field


def _storable(value: str) -> str:
    """Refuse text no database can store: lone surrogates (valid JSON escapes) and NUL characters."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("text contains an invalid character (a lone UTF-16 surrogate)") from None
    if "\x00" in value:
        raise ValueError("text contains a NUL character")
    return value


# Every string a client sends goes through this (as JSON, "\ud800" decodes to an unstorable str).
Text = Annotated[str, AfterValidator(_storable)]
# Ids are 64-bit in the database: a larger number names no row and must not reach a query.
MAX_ID = 2**63 - 1
RowId = Annotated[int, Field(ge=0, le=MAX_ID)]
PathId = Annotated[int, Path(ge=0, le=MAX_ID)]
AfterId = Annotated[int, Query(ge=0, le=MAX_ID, description="only items with a larger id")]


class SessionIn(BaseModel):
    """Start a web chat."""

    display_name: Text | None = Field(None, max_length=100)
    locale: Text | None = Field(None, max_length=16, examples=["zh-CN", "en"])


class SessionOut(BaseModel):
    """A web chat session; send its id as the X-Webchat-Session header or the cookie."""

    session_id: str
    customer_id: int
    expires_at: datetime


class ChatMessageIn(BaseModel):
    """A customer message from the web chat."""

    text: Text = Field(..., description="1 to 4096 characters")
    client_message_id: Text | None = Field(None, max_length=64, description="idempotency key from the client")


class ChatMessageOut(BaseModel):
    """What happened to the message."""

    message_id: int | None
    duplicate: bool
    case_id: int | None
    answered_by_bot: bool


class ButtonIn(BaseModel):
    """A press of a button shown under a message."""

    message_id: RowId | None = None
    button: Text = Field(..., max_length=32, examples=["helpful", "not_helpful", "person", "rate:5"])


class TokenOut(BaseModel):
    """A bearer token for staff endpoints."""

    access_token: str
    token_type: str = "bearer"
    expires_in: int


class LoginIn(BaseModel):
    """Staff credentials."""

    username: Text = Field(..., max_length=64)
    password: Text = Field(..., max_length=256)


class StaffMessageIn(BaseModel):
    """A staff reply, or an internal note the customer never sees."""

    body: Text
    internal: bool = False


class TransferIn(BaseModel):
    """Hand a case to another staff member."""

    to_staff_id: RowId


class InviteIn(BaseModel):
    """Invite a specialist of a role (or a named one) into the group."""

    role: str = Field(..., pattern="^(butler|sales|service|factory)$")
    staff_id: RowId | None = None


class Page(BaseModel):
    """A list of items."""

    items: list[dict[str, Any]]
