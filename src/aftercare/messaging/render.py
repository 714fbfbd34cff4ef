"""Message templates: `render(name, channel, language, context) -> Rendered(subject, text, html)`.

Files (Jinja2, StrictUndefined; HTML autoescaped):
  templates/sms/<name>.<lang>.txt
  templates/email/<name>.<lang>.subject.txt, <name>.<lang>.txt, <name>.<lang>.html
SMS text is collapsed to one line and folded into GSM-7 (messaging/gsm.py), so one odd character
cannot turn a message into 70-character UCS-2 segments. The context comes from
`aftercare.messaging.context` (first name, clinic name and phone, emergency number, link, and per
kind the protocol settings, rehab phase, survey or visit).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import jinja2

from aftercare.messaging import gsm
from aftercare.models import Channel, Language
from aftercare.settings import get_settings


@dataclass(frozen=True)
class Rendered:
    subject: str | None
    text: str
    html: str | None


class TemplateMissing(LookupError):
    """No template for this name, channel and language."""


class TemplateRenderError(ValueError):
    """A template exists but cannot be rendered with the context given (e.g. a missing variable)."""


def _paths(name: str, channel: Channel, language: str) -> dict[str, str]:
    if channel == Channel.sms:
        return {"text": f"sms/{name}.{language}.txt"}
    return {
        "subject": f"email/{name}.{language}.subject.txt",
        "text": f"email/{name}.{language}.txt",
        "html": f"email/{name}.{language}.html",
    }


@lru_cache(maxsize=8)
def environment(templates_dir: Path) -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(templates_dir)),
        undefined=jinja2.StrictUndefined,
        autoescape=jinja2.select_autoescape(enabled_extensions=("html",), default_for_string=False),
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=False,
    )


def render(
    name: str,
    channel: Channel | str,
    language: Language | str,
    context: dict[str, Any],
    *,
    templates_dir: Path | None = None,
) -> Rendered:
    """Render every part of one message. Raises TemplateMissing / TemplateRenderError with a clear message."""
    channel, language = Channel(channel), Language(language).value
    env = environment(templates_dir or get_settings().templates_dir)
    parts: dict[str, str] = {}
    for part, path in _paths(name, channel, language).items():
        try:
            template = env.get_template(path)
        except jinja2.TemplateNotFound:
            raise TemplateMissing(_missing(name, channel, language, path, env)) from None
        try:
            parts[part] = template.render({**context, "language": language, "channel": channel.value})
        except jinja2.UndefinedError as exc:
            raise TemplateRenderError(f"{path}: {exc.message}") from None
    if channel == Channel.sms:
        return Rendered(subject=None, text=sms_text(parts["text"]), html=None)
    return Rendered(subject=_one_line(parts["subject"]), text=email_text(parts["text"]), html=parts["html"].strip())


def sms_text(raw: str) -> str:
    """One line, single spaces, GSM-7 where a stand-in exists."""
    return gsm.fold(" ".join(raw.split()))


def email_text(raw: str) -> str:
    lines = [line.rstrip() for line in raw.replace("\xa0", " ").splitlines()]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def _one_line(raw: str) -> str:
    return " ".join(raw.split())


def available(channel: Channel | str, templates_dir: Path | None = None) -> dict[str, set[str]]:
    """Template name -> languages present, for one channel (email counts only when all three parts exist)."""
    channel = Channel(channel)
    root = (templates_dir or get_settings().templates_dir) / channel.value
    found: dict[str, set[str]] = {}
    pattern = re.compile(r"^(?P<name>[a-z][a-z0-9_]*)\.(?P<lang>[a-z]{2})\.txt$")
    for path in root.glob("*.txt"):
        match = pattern.match(path.name)
        if not match:
            continue
        name, lang = match["name"], match["lang"]
        if channel == Channel.email and not all(
            (root / f"{name}.{lang}.{suffix}").is_file() for suffix in ("subject.txt", "html")
        ):
            continue
        found.setdefault(name, set()).add(lang)
    return found


def _missing(name: str, channel: Channel, language: str, path: str, env: jinja2.Environment) -> str:
    languages = sorted(available(channel, Path(env.loader.searchpath[0])).get(name, set()))  # type: ignore[union-attr]
    have = f"it exists in: {', '.join(languages)}" if languages else "no language has it"
    return f"no {channel.value} template {name!r} in {language!r} (looked for templates/{path}; {have})"
