"""Errors our services raise for bad input; every interface turns them into a clear answer."""

from __future__ import annotations


class InputError(ValueError):
    """Input that names a field and what is wrong with it. Nothing has been stored."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class ConflictError(ValueError):
    """The request contradicts what is stored (e.g. a different protocol for a known procedure)."""


class NotFoundError(LookupError):
    """No such record (or not visible to the caller)."""
