"""Surveys as staff read them on the patient timeline: each response's answers and scores, in words."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlmodel import Session, col, select

from aftercare.instruments import ChoiceItem, InstrumentRegistry, TemperatureItem, YesNoItem
from aftercare.models import SurveyAnswer, SurveyResponse, SurveyScore
from aftercare.settings import Settings
from aftercare.surveys import items
from aftercare.web.timeline import label


@dataclass
class AnswerView:
    item_id: str
    question: str
    value: str
    raw: str
    source: str
    at: datetime


@dataclass
class ScoreView:
    instrument_id: str
    instrument_version: str
    name: str
    value: str
    complete: bool
    caveats: list[str]


@dataclass
class SurveyView:
    response_id: int
    touchpoint_id: int
    key: str
    label: str
    survey_id: str
    status: str
    channel: str
    opened_at: datetime | None
    completed_at: datetime | None
    ended_at: datetime | None
    end_reason: str | None
    miss_reason: str | None
    miss_detail: str | None
    handoff: bool
    answers: list[AnswerView] = field(default_factory=list)
    scores: list[ScoreView] = field(default_factory=list)

    @property
    def status_text(self) -> str:
        if self.status == "missed":
            why = "not received" if self.miss_reason == "not_received" else "not answered"
            return f"missed — {why}" + (f" ({self.miss_detail})" if self.miss_detail else "")
        if self.status == "closed":
            return f"closed with some answers — {self.end_reason}" if self.end_reason else "closed with some answers"
        return {"open": "open", "complete": "answered"}.get(self.status, self.status)


def _question(registry: InstrumentRegistry, instrument_id: str, item_id: str) -> str:
    try:
        return registry.web_text(instrument_id, item_id, "en", emergency_number="911").label
    except (KeyError, LookupError, ValueError):
        return item_id.replace("_", " ")


def _value(registry: InstrumentRegistry, instrument_id: str, item_id: str, value: Any) -> str:
    if value is None:
        return "not clear (kept as typed)"
    try:
        item = registry.get(instrument_id).item(item_id)
    except (KeyError, LookupError, ValueError):
        return str(value)
    if isinstance(item, ChoiceItem):
        choice = item.choice_for(value)
        return f"{choice.key} · {choice.label.en}" if choice else str(value)
    if isinstance(item, YesNoItem):
        return "yes" if value is True else "no" if value is False else str(value)
    if isinstance(item, TemperatureItem) and isinstance(value, int | float):
        return f"{value:.1f} °C ({value * 9 / 5 + 32:.1f} °F)"
    return str(value)


def _title(registry: InstrumentRegistry, score: SurveyScore) -> str:
    try:
        return registry.get(score.instrument_id).title.en
    except (KeyError, LookupError, ValueError):
        return score.name


def _score_value(score: SurveyScore) -> str:
    if score.value is None:
        missing = ", ".join(score.detail.get("missing") or [])
        return f"not scored (missing: {missing})" if missing else "—"
    if isinstance(score.value, bool):
        text = "yes" if score.value else "no"
    elif isinstance(score.value, float):
        text = f"{score.value:.1f}"
    else:
        text = str(score.value)
    if score.raw is not None and score.instrument_id == "koos_jr":
        text += f" (raw {score.raw})"
    return text + (f" · {score.category.replace('_', ' ')}" if score.category else "")


def survey_views(session: Session, settings: Settings, procedure_ids: Iterable[int]) -> dict[int, list[SurveyView]]:
    """Per procedure: its survey responses (oldest first) with the answers that count and the scores."""
    ids = list(procedure_ids)
    if not ids:
        return {}
    registry = items.instrument_registry(settings.config_dir)
    responses = list(session.exec(
        select(SurveyResponse).where(col(SurveyResponse.procedure_id).in_(ids))
        .order_by(col(SurveyResponse.closes_at), col(SurveyResponse.id))))
    response_ids = [r.id for r in responses]
    answers: dict[int, dict[str, SurveyAnswer]] = {}
    for row in session.exec(select(SurveyAnswer).where(col(SurveyAnswer.response_id).in_(response_ids),
                                                       col(SurveyAnswer.counts).is_(True))
                            .order_by(col(SurveyAnswer.id))):
        answers.setdefault(row.response_id, {})[row.item_id] = row
    scores: dict[int, list[SurveyScore]] = {}
    for score in session.exec(select(SurveyScore).where(col(SurveyScore.response_id).in_(response_ids))
                              .order_by(col(SurveyScore.id))):
        scores.setdefault(score.response_id, []).append(score)
    out: dict[int, list[SurveyView]] = {}
    for r in responses:
        assert r.id is not None
        view = SurveyView(
            response_id=r.id, touchpoint_id=r.touchpoint_id, key=r.touchpoint_key, label=label(r.touchpoint_key),
            survey_id=r.survey_id, status=r.status.value, channel=r.channel.value, opened_at=r.opened_at,
            completed_at=r.completed_at, ended_at=r.ended_at, end_reason=r.end_reason, miss_reason=r.miss_reason,
            miss_detail=r.miss_detail, handoff=r.handoff_at is not None,
            answers=[AnswerView(a.item_id, _question(registry, a.instrument_id, a.item_id),
                                _value(registry, a.instrument_id, a.item_id, a.value), a.raw_text, a.source,
                                a.created_at) for a in answers.get(r.id, {}).values()],
            scores=[ScoreView(s.instrument_id, s.instrument_version, _title(registry, s), _score_value(s),
                              s.complete, list(s.caveats)) for s in scores.get(r.id, [])],
        )
        out.setdefault(r.procedure_id, []).append(view)
    return out
