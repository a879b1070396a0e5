"""FastAPI dependencies of the REST API: authenticated staff."""

from __future__ import annotations

from fastapi import Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from bot.teams.auth import Unauthorized, staff_from_token
from bot.teams.models import Staff
from handlers.common import runtime

bearer = HTTPBearer(auto_error=False, description="token from POST /api/v1/auth/token")


async def token_staff(request: Request, creds: HTTPAuthorizationCredentials | None) -> Staff:
    """Resolve the bearer token to an active staff member (own short transaction)."""
    if creds is None or creds.scheme.lower() != "bearer":
        raise Unauthorized("auth.token", "missing bearer token")
    rt = runtime(request)
    async with rt.maker() as session:
        return await staff_from_token(session, rt.settings, creds.credentials)
