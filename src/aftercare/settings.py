"""One validated Settings object, read from AFTERCARE_* environment variables and `.env`."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PLACEHOLDER = "change-me"
_REPO_ROOT = Path(__file__).resolve().parents[2]


def _default_dir(name: str) -> Path:
    """`config/` and `templates/` next to the source tree, else under the working directory."""
    beside_source = _REPO_ROOT / name
    return beside_source if beside_source.is_dir() else Path.cwd() / name


class Settings(BaseSettings):
    """Every knob of the service. Documented one by one in README.md (Configuration)."""

    model_config = SettingsConfigDict(
        env_prefix="AFTERCARE_", env_file=".env", env_ignore_empty=True, extra="ignore"
    )

    environment: Literal["development", "test", "production"] = Field(
        "development", description="development and test accept the placeholder secrets; production refuses them"
    )
    database_url: str = Field(
        "sqlite:///./.data/aftercare.db", description="SQLAlchemy URL of the app database"
    )
    secret_key: SecretStr = Field(
        SecretStr(PLACEHOLDER), description="signs session cookies, CSRF tokens and survey links"
    )
    public_base_url: str = Field(
        "http://127.0.0.1:8000", description="URL patients and providers reach us at (links, webhooks)"
    )
    host: str = Field("127.0.0.1", description="address `aftercare serve` binds")
    port: int = Field(8000, description="port `aftercare serve` binds")
    config_dir: Path = Field(default_factory=lambda: _default_dir("config"), description="protocols, clinic")
    templates_dir: Path = Field(default_factory=lambda: _default_dir("templates"), description="message/web")
    calendar_file: Path | None = Field(
        None,
        description="the clinic calendar for bookings (physicians, hours, slots); unset: <config_dir>/clinic.yaml",
    )
    default_phone_region: str = Field("US", description="region for phone numbers written without +country")
    default_timezone: str = Field("America/New_York", description="patient zone when none is given")
    default_language: Literal["en", "es"] = Field("en", description="patient language when none is given")
    flow_mode: Literal["inline", "deployment", "off"] = Field(
        "inline",
        description=(
            "inline: the app runs Prefect flows in a background thread against PREFECT_API_URL; "
            "deployment: the app asks Prefect workers to run them (run_deployment); "
            "off: plans are built in-process without Prefect (tests, scripts)"
        ),
    )
    embedded_prefect: bool = Field(
        True, description="`aftercare serve` starts a local Prefect server when PREFECT_API_URL is unset"
    )
    prefect_port: int = Field(4200, description="port of the embedded Prefect server")
    prefect_home: Path = Field(
        Path(".data/prefect"), description="PREFECT_HOME of the embedded Prefect server (its SQLite DB and log)"
    )
    prefect_start_timeout: int = Field(
        90, description="seconds `aftercare serve` waits for the embedded Prefect server to answer /api/health"
    )
    prefect_work_pool: str = Field(
        "aftercare", description="Prefect process work pool `aftercare deploy-flows` registers deployments on"
    )
    scheduler_enabled: bool = Field(True, description="run the APScheduler ticker inside `aftercare serve`")
    tick_seconds: int = Field(30, description="seconds between scheduler ticks (plans, dispatch)")
    plan_grace_seconds: int = Field(
        120, description="a procedure still without a plan this long after recording is planned by the ticker"
    )
    max_future_days: int = Field(365, description="performed_at further ahead than this is refused")
    max_past_days: int = Field(3 * 365, description="performed_at further back than this is refused")
    demo_seed: bool = Field(True, description="`aftercare serve` seeds the demo clinic into an empty database")
    session_max_age_seconds: int = Field(12 * 3600, description="staff login session lifetime")
    login_max_failures: int = Field(
        5, ge=1, le=100,
        description="failed sign-ins for one email within AFTERCARE_LOGIN_LOCKOUT_MINUTES before sign-in is refused "
        "for it (an address gets 4 times as many)",
    )
    login_lockout_minutes: int = Field(15, ge=1, le=1440, description="how long failed sign-ins count, and the lockout")

    # Messaging providers. A channel without its credentials uses the console outbox (nothing leaves the box).
    twilio_account_sid: str | None = Field(None, description="Twilio Account SID (AC...); SMS uses Twilio when set")
    twilio_auth_token: SecretStr | None = Field(
        None, description="Twilio Auth Token: REST auth and X-Twilio-Signature validation"
    )
    twilio_messaging_service_sid: str | None = Field(
        None, description="Messaging Service SID (MG...) to send from; preferred over twilio_from_number"
    )
    twilio_from_number: str | None = Field(None, description="E.164 sender number when no Messaging Service is set")
    twilio_api_base_url: str | None = Field(
        None, description="replaces https://*.twilio.com in every Twilio API call (a local fake); unset = real Twilio"
    )
    twilio_validity_seconds: int = Field(
        3600, ge=1, le=36000, description="Twilio ValidityPeriod: a message queued longer than this is not delivered"
    )
    sendgrid_api_key: SecretStr | None = Field(None, description="SendGrid API key; email uses SendGrid when set")
    sendgrid_from_email: str | None = Field(None, description="sender address (a SendGrid-authenticated domain)")
    sendgrid_from_name: str | None = Field(None, description="sender display name (unset: the address alone)")
    sendgrid_api_base_url: str | None = Field(
        None, description="SendGrid API host, e.g. a local fake; unset = https://api.sendgrid.com"
    )
    sendgrid_unsubscribe_group_id: int | None = Field(
        None, description="SendGrid ASM unsubscribe group id put on every email (care follow-up group)"
    )
    sendgrid_webhook_public_key: str | None = Field(
        None, description="base64 ECDSA public key of the signed SendGrid Event Webhook (Mail Settings)"
    )
    sendgrid_activity_lookup: bool = Field(
        False,
        description=(
            "reconcile ambiguous email sends through the Email Activity API (paid SendGrid add-on); "
            "off = an ambiguous email cannot be looked up"
        ),
    )
    provider_timeout_seconds: float = Field(
        10.0, gt=0, le=120, description="HTTP timeout of every Twilio/SendGrid API call (no SDK-level retries)"
    )
    provider_pool_size: int = Field(
        32, ge=1, le=1024, description="keep-alive HTTP connections per Twilio client (raise for many dispatch threads)"
    )

    # Dispatcher (sending what is due) and webhooks.
    dispatch_batch_size: int = Field(200, ge=1, le=5000, description="touchpoints claimed per dispatcher round")
    dispatch_workers: int = Field(16, ge=1, le=256, description="threads sending in parallel in one dispatcher")
    dispatch_lease_seconds: int = Field(
        300, ge=10, description="a claim older than this belongs to a dead dispatcher and is reconciled, not resent"
    )
    dispatch_max_seconds: float = Field(
        50.0, gt=0, description="one dispatch run stops claiming after this long (the next tick continues)"
    )
    dispatch_max_attempts: int = Field(
        5, ge=1, le=50, description="provider calls per touchpoint before it is marked failed for a coordinator"
    )
    dispatch_retry_base_seconds: float = Field(
        30.0, ge=0, description="first retry delay after a retryable failure; doubles per attempt, with jitter"
    )
    dispatch_retry_max_seconds: float = Field(3600.0, ge=0, description="longest retry delay")
    dispatch_reconcile_grace_seconds: float = Field(
        600.0,
        ge=0,
        description="a maybe-sent message the provider has no record of is resent only after this long",
    )
    daily_message_cap: int = Field(
        1, ge=1, le=20, description="non-clinical automated messages per patient per local day (others move on)"
    )
    sms_rate_per_second: float = Field(
        0.0, ge=0, description="SMS sends per second per sender, held across all dispatchers (0 = no limit)"
    )
    email_rate_per_second: float = Field(
        0.0, ge=0, description="emails per second per sender, held across all dispatchers (0 = no limit)"
    )
    sms_help_reply: bool = Field(
        True, description="answer HELP/AYUDA ourselves (turn off when Twilio Advanced Opt-Out answers HELP)"
    )
    sms_optout_confirmation: bool = Field(
        True, description="confirm a plain-language opt-out once (keyword STOP is confirmed by Twilio, not us)"
    )
    twilio_auth_token_secondary: SecretStr | None = Field(
        None, description="previous Twilio Auth Token, also accepted on webhooks while a rotation is under way"
    )
    webhook_max_age_seconds: int = Field(
        300, ge=10, description="signed SendGrid events older (or newer) than this are refused as replays"
    )

    # Surveys (SMS conversations, web forms, reminders).
    survey_sms_link: bool = Field(
        True, description="SMS survey and check-in invitations carry the web-form link too (answer by text or form)"
    )
    checkin_reminder_time: str = Field(
        "12:00", pattern=r"^([01]\d|2[0-3]):[0-5]\d$",
        description="local time (HH:MM) of the next-day reminder for an unanswered early check-in",
    )
    survey_reminder_days: list[int] = Field(
        [2, 5], description="days after an outcome survey's invitation that reminders go out, inside its window "
        "(JSON list; a protocol setting `survey_reminder_days: \"2,5\"` overrides it)",
    )

    # Triage, flags and paging.
    oncall_file: Path | None = Field(
        None, description="the on-call rota and escalation times for flag pages; unset = <config_dir>/oncall.yaml"
    )
    inbound_reader: Literal["process", "thread", "ticker"] = Field(
        "process",
        description="who reads the inbound SMS the webhook stored (patient, conversation, triage): process = "
        "`aftercare inbound`, started by `aftercare serve` beside the web app (its own service in docker-compose); "
        "thread = a thread in each web process; ticker = only the ticker's inbound-tick (after the triage grace)",
    )
    inbound_poll_seconds: float = Field(
        0.2, ge=0.02, le=60,
        description="how often `aftercare inbound` looks for newly stored SMS (a thread reader is also woken at once)",
    )
    triage_grace_seconds: int = Field(
        30, ge=5, le=3600,
        description="a stored answer or message still untriaged this long (no flow ran) is triaged by the ticker",
    )
    triage_linger_seconds: float = Field(
        5.0, ge=0, le=300,
        description="an in-app triage-response run waits this long for more messages before it ends (a run per burst)",
    )
    triage_on_workers: bool = Field(
        False,
        description=(
            "flow_mode=deployment only: start `triage-response` on Prefect workers (a worker takes ~6 s to start a "
            "run, too slow for a 5 s page); false = the app runs it itself, as a flow run on the same Prefect server"
        ),
    )

    @field_validator("default_timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown IANA time zone {value!r}") from exc
        return value

    @model_validator(mode="after")
    def _refuse_placeholders(self) -> Settings:
        if self.environment == "production" and self.secret_key.get_secret_value() in (PLACEHOLDER, ""):
            raise ValueError("AFTERCARE_SECRET_KEY must be set to a real secret in production")
        if self.environment == "production" and len(self.secret_key.get_secret_value()) < 32:
            raise ValueError("AFTERCARE_SECRET_KEY must be at least 32 characters in production")
        return self

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")


@lru_cache
def get_settings() -> Settings:
    return Settings()
