"""Signed booking links and calendar-feed tokens: opaque, random, stored only as SHA-256.

A booking link's token is derived from a random per-offer seed with the secret key (HMAC-SHA256), so
the same message renders the same link every time (reconciling a maybe-sent message compares bodies)
while the database alone cannot produce a working link. Changing AFTERCARE_SECRET_KEY retires every
link already sent (patients then call, or get the next offer).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets

from aftercare.models import BookingOffer
from aftercare.security import hash_token
from aftercare.settings import Settings

LINK_PATH = "/b/"
FEED_PREFIX = "cal_"
_TOKEN = re.compile(r"^[A-Za-z0-9_-]{20,64}$")


def new_seed() -> str:
    return secrets.token_hex(16)


def offer_token(offer: BookingOffer, settings: Settings) -> str:
    assert offer.id is not None and offer.token_seed
    key = settings.secret_key.get_secret_value().encode()
    digest = hmac.new(key, f"booking-offer:{offer.id}:{offer.token_seed}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")[:32]


def seal(offer: BookingOffer, settings: Settings) -> str:
    """Give a flushed offer its link token (stored hashed); returns the token."""
    if not offer.token_seed:
        offer.token_seed = new_seed()
    token = offer_token(offer, settings)
    offer.token_hash = hash_token(token)
    return token


def offer_link(offer: BookingOffer, settings: Settings) -> str:
    return settings.public_base_url.rstrip("/") + LINK_PATH + offer_token(offer, settings)


def well_formed(token: str) -> bool:
    return bool(_TOKEN.match(token))


def new_feed_token() -> str:
    return FEED_PREFIX + secrets.token_urlsafe(24)


def form_nonce(offer: BookingOffer, settings: Settings) -> str:
    """The hidden field that proves a POST came from the page this link rendered (no cookie needed)."""
    key = settings.secret_key.get_secret_value().encode()
    return hmac.new(key, f"booking-form:{offer.token_hash}".encode(), hashlib.sha256).hexdigest()[:32]


def nonce_ok(offer: BookingOffer, settings: Settings, sent: object) -> bool:
    return isinstance(sent, str) and hmac.compare_digest(sent.encode(), form_nonce(offer, settings).encode())
