"""Which provider serves each channel, decided from settings.

SMS uses Twilio when twilio_account_sid, twilio_auth_token and a sender (twilio_messaging_service_sid
or twilio_from_number) are set; email uses SendGrid when sendgrid_api_key and sendgrid_from_email
are set; otherwise the channel goes to the console outbox. A half-configured channel is refused in
production and falls back to the console (with a warning) elsewhere.

Build the providers once per dispatcher process and reuse them: they keep connection pools.
"""

from __future__ import annotations

import logging

from sqlalchemy.engine import Engine

from aftercare.messaging.base import Provider
from aftercare.messaging.console import ConsoleOutbox
from aftercare.messaging.sendgrid_email import SendGridEmail
from aftercare.messaging.twilio_sms import TwilioSms
from aftercare.models import Channel
from aftercare.settings import Settings, get_settings

log = logging.getLogger(__name__)


class ProviderConfigError(ValueError):
    """Credentials for a channel are set only in part."""


def missing_twilio(settings: Settings) -> list[str]:
    """The Twilio settings still needed for real SMS (empty = complete)."""
    missing = [name for name in ("twilio_account_sid", "twilio_auth_token") if not getattr(settings, name)]
    if not settings.twilio_messaging_service_sid and not settings.twilio_from_number:
        missing.append("twilio_messaging_service_sid or twilio_from_number")
    return missing


def missing_sendgrid(settings: Settings) -> list[str]:
    """The SendGrid settings still needed for real email (empty = complete)."""
    return [name for name in ("sendgrid_api_key", "sendgrid_from_email") if not getattr(settings, name)]


def _partial(settings: Settings, channel: Channel, missing: list[str]) -> bool:
    """True when some but not all credentials of the channel are set."""
    prefix = "twilio_" if channel == Channel.sms else "sendgrid_"
    credentials = ("account_sid", "auth_token") if channel == Channel.sms else ("api_key", "from_email")
    return bool(missing) and any(getattr(settings, prefix + name) for name in credentials)


def provider_for(channel: Channel, settings: Settings | None = None, *, engine: Engine | None = None) -> Provider:
    """The provider for one channel. `engine` is where the console outbox stores (default: the app database)."""
    settings = settings or get_settings()
    missing = missing_twilio(settings) if channel == Channel.sms else missing_sendgrid(settings)
    if not missing:
        if channel == Channel.sms:
            return TwilioSms.from_settings(settings)
        return SendGridEmail.from_settings(settings)
    if _partial(settings, channel, missing):
        names = ", ".join(" or ".join("AFTERCARE_" + n.upper() for n in name.split(" or ")) for name in missing)
        problem = f"{channel.value} credentials are incomplete: set {names}"
        if settings.environment == "production":
            raise ProviderConfigError(problem)
        log.warning("%s; %s messages go to the console outbox", problem, channel.value)
    return ConsoleOutbox(channel, engine)


def providers(settings: Settings | None = None, *, engine: Engine | None = None) -> dict[Channel, Provider]:
    """One provider per channel."""
    settings = settings or get_settings()
    return {channel: provider_for(channel, settings, engine=engine) for channel in Channel}


def describe(settings: Settings | None = None) -> dict[str, str]:
    """Which provider each channel would use, for start-up logs and `aftercare` status output."""
    settings = settings or get_settings()
    return {
        Channel.sms.value: "twilio" if not missing_twilio(settings) else "console",
        Channel.email.value: "sendgrid" if not missing_sendgrid(settings) else "console",
    }
