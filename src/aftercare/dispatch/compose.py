"""Turning a claimed job (or a reply) into the message a provider sends: the templates, nothing else.

The context was built at claim time (messaging.context), so composing needs no database and gives the
same text every time: reconciliation looks an earlier attempt up by its exact body.
"""

from __future__ import annotations

from datetime import datetime

from aftercare.dispatch.claim import Job
from aftercare.dispatch.replies import ReplyComposer
from aftercare.dispatch.send import Composer
from aftercare.messaging.base import Attachment, OutboundMessage
from aftercare.messaging.context import patient_context
from aftercare.messaging.render import render
from aftercare.models import Channel, Clinic, OutboundReply
from aftercare.settings import Settings
from aftercare.timeutil import utcnow

MIN_VALIDITY_SECONDS = 600


def validity_seconds(window_end: datetime, settings: Settings, now: datetime | None = None) -> int:
    """Twilio ValidityPeriod: the configured one, shortened so a queued SMS is not delivered after its window."""
    left = int((window_end - (now or utcnow())).total_seconds())
    return max(MIN_VALIDITY_SECONDS, min(settings.twilio_validity_seconds, left))


def composer(settings: Settings) -> Composer:
    def compose(job: Job) -> OutboundMessage:
        rendered = render(job.template, job.channel, job.language, job.context, templates_dir=settings.templates_dir)
        return OutboundMessage(
            message_id=job.message_id,
            channel=job.channel,
            to=job.to,
            body=rendered.text,
            subject=rendered.subject,
            html=rendered.html,
            validity_seconds=validity_seconds(job.window_end, settings) if job.channel == Channel.sms else None,
            attachments=attachments(job) if job.channel == Channel.email else (),
        )

    return compose


def attachments(job: Job) -> tuple[Attachment, ...]:
    """Files the context asks to attach (`attachments`: [{filename, content_type, content}], e.g. a visit's .ics)."""
    return tuple(Attachment(str(a["filename"]), str(a["content_type"]), str(a["content"]))
                 for a in job.context.get("attachments") or ())


def reply_composer(settings: Settings) -> ReplyComposer:
    def compose(reply: OutboundReply, clinic: Clinic | None) -> OutboundMessage:
        if reply.body is not None:  # written when it was queued (a survey question)
            return OutboundMessage(message_id=f"re-{reply.id}", channel=reply.channel, to=reply.to_address,
                                   body=reply.body)
        if clinic is None:
            raise ValueError(f"reply {reply.id}: no clinic to answer for")
        context = patient_context(clinic=clinic, language=reply.language)
        rendered = render(reply.template, reply.channel, reply.language, context, templates_dir=settings.templates_dir)
        return OutboundMessage(
            message_id=f"re-{reply.id}", channel=reply.channel, to=reply.to_address, body=rendered.text,
            subject=rendered.subject, html=rendered.html,
        )

    return compose
