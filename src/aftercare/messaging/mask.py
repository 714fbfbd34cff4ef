"""Addresses as they may appear in logs: enough to tell two apart, not enough to contact anyone."""

from __future__ import annotations


def mask_address(address: str) -> str:
    """`+14165550199` -> `+1*******99`; `ana.lopez@example.org` -> `a***@example.org`."""
    if "@" in address:
        local, _, domain = address.partition("@")
        return f"{local[:1]}***@{domain}"
    if len(address) <= 4:
        return "*" * len(address)
    head = 2 if address.startswith("+") else 1
    return address[:head] + "*" * (len(address) - head - 2) + address[-2:]
