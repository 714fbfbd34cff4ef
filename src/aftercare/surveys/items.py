"""Which questions a survey response asks, and the answers it has so far.

A response keeps the instrument ids it was created with (check-ins start with `quick_status`); the items
come from the instrument registry (config/instruments) and the protocol's settings (`only_if_setting`);
`ask_if` items appear once the answer they depend on allows them.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

from sqlmodel import Session, col, select

from aftercare.instruments import AnswerValue, InstrumentRegistry, SurveyItem
from aftercare.models import Procedure, ProtocolSnapshot, SurveyAnswer, SurveyResponse, TouchpointKind
from aftercare.protocols.schema import Protocol

log = logging.getLogger(__name__)
QUICK_STATUS = "quick_status"


@lru_cache(maxsize=4)
def instrument_registry(config_dir: Path) -> InstrumentRegistry:
    """The instruments of `config_dir/instruments`, loaded once per process."""
    return InstrumentRegistry.from_dir(config_dir / "instruments")


_protocols: dict[tuple[str, str], Protocol] = {}


def protocol_of(session: Session, procedure: Procedure) -> Protocol | None:
    """The protocol (as its snapshot) the procedure's plan was built from; cached per id and version."""
    key = (procedure.protocol_id, procedure.protocol_version)
    if key not in _protocols:
        snapshot = session.exec(
            select(ProtocolSnapshot).where(
                ProtocolSnapshot.protocol_id == key[0], ProtocolSnapshot.version == key[1]
            )
        ).first()
        if snapshot is None:
            return None
        _protocols[key] = Protocol.model_validate(snapshot.body)
    return _protocols[key]


def instrument_ids(protocol: Protocol | None, survey_id: str, kind: TouchpointKind) -> list[str]:
    """The instruments a response asks: the protocol survey's, after `quick_status` for a check-in."""
    survey = protocol.surveys.get(survey_id) if protocol else None
    ids = list(survey.instruments) if survey else []
    if kind == TouchpointKind.checkin and QUICK_STATUS not in ids:
        ids.insert(0, QUICK_STATUS)
    return ids


def protocol_settings(session: Session, response: SurveyResponse) -> dict[str, Any]:
    procedure = session.get(Procedure, response.procedure_id)
    protocol = protocol_of(session, procedure) if procedure else None
    return dict(protocol.settings) if protocol else {}


def current_answers(session: Session, response_id: int) -> dict[str, AnswerValue]:
    """Item id -> value of the latest answer that stands for the item (None: answered, value unknown)."""
    rows = session.exec(
        select(SurveyAnswer.item_id, SurveyAnswer.value)
        .where(SurveyAnswer.response_id == response_id, col(SurveyAnswer.counts).is_(True))
        .order_by(col(SurveyAnswer.id))
    )
    return {str(item_id): value for item_id, value in rows}


def items_for(
    registry: InstrumentRegistry,
    response: SurveyResponse,
    settings: Mapping[str, Any],
    answers: Mapping[str, AnswerValue] | None,
) -> list[SurveyItem]:
    """The response's questions in order (instruments no longer configured are left out, and logged)."""
    known = [i for i in response.instrument_ids if i in registry]
    if len(known) != len(response.instrument_ids):
        log.warning("survey response %s: instruments %s are not configured", response.id,
                    sorted(set(response.instrument_ids) - set(known)))
    return registry.survey_items(known, settings=settings, answers=answers)


def next_item(
    registry: InstrumentRegistry,
    response: SurveyResponse,
    settings: Mapping[str, Any],
    answers: Mapping[str, AnswerValue],
) -> SurveyItem | None:
    """The first question without an answer (None: the survey is complete)."""
    return next((si for si in items_for(registry, response, settings, answers) if si.item.id not in answers), None)


def item_by_id(
    registry: InstrumentRegistry, response: SurveyResponse, settings: Mapping[str, Any], item_id: str | None
) -> SurveyItem | None:
    if item_id is None:
        return None
    return next((si for si in items_for(registry, response, settings, None) if si.item.id == item_id), None)


def missing_required(
    registry: InstrumentRegistry,
    response: SurveyResponse,
    settings: Mapping[str, Any],
    answers: Mapping[str, AnswerValue],
) -> list[SurveyItem]:
    """Questions that still need an answer before the survey is complete (optional ones never do)."""
    return [si for si in items_for(registry, response, settings, answers)
            if si.item.id not in answers and not si.item.optional]
