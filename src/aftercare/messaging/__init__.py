"""Outbound messaging: one small provider interface, Twilio SMS, SendGrid email and a console outbox."""
