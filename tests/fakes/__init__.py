"""Fakes at the external edge: a local Twilio + SendGrid HTTP server and webhook signing helpers.

    from tests.fakes import FakeProviders, replies
    with FakeProviders(latency=0.05) as fake:          # bench/: real SDKs against fake.url
        fake.script(replies.twilio_error(21610))       # the next SMS create is refused (opted out)
        fake.rule(replies.server_error(), channel="email", every=100)
        ...
        fake.sent_sms, fake.sent_email, fake.requests, fake.creates("sms")

In tests use the `fake_providers` / `fake_provider_settings` fixtures (tests/fakes/plugin.py).
"""

from tests.fakes import replies
from tests.fakes.replies import Reply
from tests.fakes.server import (
    ACCOUNT_SID,
    AUTH_TOKEN,
    MESSAGING_SERVICE_SID,
    SENDGRID_API_KEY,
    FakeProviders,
    RecordedRequest,
    SentEmail,
    SentSms,
)

__all__ = [
    "ACCOUNT_SID",
    "AUTH_TOKEN",
    "MESSAGING_SERVICE_SID",
    "SENDGRID_API_KEY",
    "FakeProviders",
    "RecordedRequest",
    "Reply",
    "SentEmail",
    "SentSms",
    "replies",
]
