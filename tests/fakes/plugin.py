"""pytest fixtures around the fake: `fake_providers` (the server) and `fake_provider_settings` (env pointing at it)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from aftercare.settings import Settings, get_settings
from tests.fakes.server import FakeProviders
from tests.fakes.signing import sendgrid_signer


@pytest.fixture
def fake_providers() -> Iterator[FakeProviders]:
    """A fresh fake Twilio + SendGrid on a free local port; stopped after the test."""
    with FakeProviders() as fake:
        yield fake


@pytest.fixture
def fake_provider_settings(fake_providers: FakeProviders, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    """Settings with Twilio and SendGrid credentials pointing at `fake_providers` (short timeout)."""
    for name in ("TWILIO_REGION", "TWILIO_EDGE"):
        monkeypatch.delenv(name, raising=False)
    for name, value in fake_providers.settings_env().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AFTERCARE_SENDGRID_WEBHOOK_PUBLIC_KEY", sendgrid_signer().public_key)
    monkeypatch.setenv("AFTERCARE_PROVIDER_TIMEOUT_SECONDS", "1")
    monkeypatch.setenv("AFTERCARE_PUBLIC_BASE_URL", "https://aftercare.example")
    get_settings.cache_clear()
    yield get_settings()
    get_settings.cache_clear()
