"""Domain errors that adapters turn into clear answers (HTTP 4xx, a polite chat reply)."""

from __future__ import annotations


class DomainError(Exception):
    """A request the domain refuses; `code` is stable, `message` is for people."""

    status = 400

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class InvalidInput(DomainError):
    """The input breaks a rule (empty, too long, wrong format)."""

    status = 422


class NotFound(DomainError):
    """The object does not exist (or the caller may not know it exists)."""

    status = 404


class Forbidden(DomainError):
    """The caller may not do this."""

    status = 403


class Conflict(DomainError):
    """The object is not in a state that allows this."""

    status = 409
