"""Password hashing and signed tokens (API bearer tokens, session cookies)."""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

_hasher = PasswordHasher()
# A real hash to verify against when the username is unknown, so timing does not reveal which it was.
_DUMMY_HASH = _hasher.hash("not-a-real-password")


def hash_password(password: str) -> str:
    """Argon2id hash of a password."""
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    """Whether the password matches; constant work even for unknown users."""
    try:
        return _hasher.verify(password_hash or _DUMMY_HASH, password) and password_hash is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def make_serializer(secret: str, salt: str) -> URLSafeTimedSerializer:
    """A signer for one purpose (the salt keeps purposes apart)."""
    return URLSafeTimedSerializer(secret, salt=salt)


def issue_staff_token(secret: str, *, staff_id: int) -> str:
    """A signed bearer token for the REST API."""
    return make_serializer(secret, "api-token").dumps({"sid": staff_id})


def read_staff_token(secret: str, token: str, *, max_age_seconds: int) -> int | None:
    """The staff id in a valid, unexpired token, else None."""
    try:
        data = make_serializer(secret, "api-token").loads(token, max_age=max_age_seconds)
    except (BadSignature, SignatureExpired):
        return None
    sid = data.get("sid") if isinstance(data, dict) else None
    return sid if isinstance(sid, int) else None
