"""Read and validate instrument files; errors name the file, the field and the problem.

Layout of the folder (settings.config_dir / "instruments"):
    <id>.yaml                       one instrument per file
    third_party/<folder>/NOTICE     owner, terms and what is (not) included, for item text we do not own
    third_party/<folder>/items.yaml the owner's item text (or placeholders while it may not be shipped)
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from aftercare.configfile import field_path as _field_path
from aftercare.instruments.schema import AnswerValue, Instrument, ItemType, Scalar, WebText


class InstrumentError(ValueError):
    """An instrument file that cannot be used, with where and why."""


class ThirdPartyTexts(BaseModel):
    """third_party/<folder>/items.yaml: the owner's wording per item reference and language."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    instrument: str
    included: bool
    placeholder_note: str | None = None
    items: dict[str, dict[str, str]] = Field(min_length=1)


@dataclass(frozen=True)
class SurveyItem:
    """One question of a survey: the item and the instrument (id, version) it belongs to."""

    instrument: Instrument
    item: ItemType


class _SafeLoader(yaml.SafeLoader):
    """YAML 1.2 booleans: only true/false are booleans, so the answer words `no`, `yes`, `on` and `off` stay
    words (plain YAML 1.1 would turn `words: {en: [no, none]}` into `[False, "none"]`)."""


_SafeLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_SafeLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        raw = yaml.load(path.read_text(encoding="utf-8"), Loader=_SafeLoader)
    except yaml.YAMLError as exc:
        raise InstrumentError(f"{path}: not valid YAML: {exc}") from exc
    except OSError as exc:
        raise InstrumentError(f"{path}: cannot read: {exc}") from exc
    if not isinstance(raw, dict):
        raise InstrumentError(f"{path}: expected a mapping at the top level")
    return raw


def _problems(exc: ValidationError) -> str:
    return "; ".join(f"{_field_path(e['loc'])}: {e['msg']}" for e in exc.errors())


def load_instrument_file(path: Path) -> Instrument:
    raw = _read_yaml(path)
    try:
        return Instrument.model_validate(raw)
    except ValidationError as exc:
        raise InstrumentError(f"{path}: {_problems(exc)}") from exc


def _load_third_party(path: Path, instrument: Instrument, folder: Path) -> ThirdPartyTexts:
    assert instrument.third_party is not None
    where = folder / "third_party" / instrument.third_party.folder
    if not (where / "NOTICE").is_file():
        raise InstrumentError(f"{path}: third_party.folder: {where / 'NOTICE'} is missing (clinical.md §5)")
    texts_path = where / "items.yaml"
    raw = _read_yaml(texts_path)
    try:
        texts = ThirdPartyTexts.model_validate(raw)
    except ValidationError as exc:
        raise InstrumentError(f"{texts_path}: {_problems(exc)}") from exc
    if texts.instrument != instrument.id:
        raise InstrumentError(f"{texts_path}: instrument: {texts.instrument!r} is not {instrument.id!r}")
    for index, item in enumerate(instrument.items):
        if item.third_party_ref and item.third_party_ref not in texts.items:
            raise InstrumentError(
                f"{path}: items[{index}].third_party_ref: {item.third_party_ref!r} is not in {texts_path}"
            )
    return texts


class InstrumentRegistry:
    """Every instrument in a folder, by id. Loading fails loudly on the first bad file."""

    def __init__(self, instruments: dict[str, Instrument], third_party: dict[str, ThirdPartyTexts]) -> None:
        self._instruments = instruments
        self._third_party = third_party

    @classmethod
    def from_dir(cls, folder: Path) -> InstrumentRegistry:
        instruments: dict[str, Instrument] = {}
        third_party: dict[str, ThirdPartyTexts] = {}
        if not folder.is_dir():
            raise InstrumentError(f"{folder}: instrument folder does not exist")
        for path in sorted(folder.glob("*.yaml")) + sorted(folder.glob("*.yml")):
            instrument = load_instrument_file(path)
            if instrument.id in instruments:
                raise InstrumentError(f"{path}: id: instrument {instrument.id!r} is defined twice")
            if path.stem != instrument.id:
                raise InstrumentError(f"{path}: id: {instrument.id!r} must match the file name {path.stem!r}")
            if instrument.third_party is not None:
                third_party[instrument.id] = _load_third_party(path, instrument, folder)
            instruments[instrument.id] = instrument
        return cls(instruments, third_party)

    def get(self, instrument_id: str) -> Instrument:
        try:
            return self._instruments[instrument_id]
        except KeyError:
            known = ", ".join(sorted(self._instruments)) or "none"
            raise InstrumentError(f"unknown instrument {instrument_id!r} (known: {known})") from None

    def ids(self) -> list[str]:
        return sorted(self._instruments)

    def all(self) -> list[Instrument]:
        return [self._instruments[i] for i in self.ids()]

    def __contains__(self, instrument_id: object) -> bool:
        return instrument_id in self._instruments

    def missing(self, instrument_ids: Iterable[str]) -> list[str]:
        """The ids in `instrument_ids` that no file defines (e.g. those a protocol's surveys name)."""
        return sorted({i for i in instrument_ids if i not in self._instruments})

    def survey_items(
        self,
        instrument_ids: Iterable[str],
        *,
        settings: Mapping[str, Scalar] | None = None,
        answers: Mapping[str, AnswerValue] | None = None,
    ) -> list[SurveyItem]:
        """The questions of a survey in order. An item id asked by an earlier instrument is not asked
        again (e.g. swelling_trend in both redflag_checkin and swelling_trend). Items whose
        `only_if_setting` / `ask_if` do not hold for `settings` / `answers` are left out; pass the
        answers so far to re-evaluate `ask_if` as the conversation goes on."""
        seen: set[str] = set()
        out: list[SurveyItem] = []
        for instrument_id in instrument_ids:
            instrument = self.get(instrument_id)
            for item in instrument.items:
                if item.id in seen:
                    continue
                seen.add(item.id)
                if item.only_if_setting and not item.applies(None, dict(settings or {})):
                    continue
                if item.ask_if and answers is not None and not item.applies(dict(answers), None):
                    continue
                out.append(SurveyItem(instrument, item))
        return out

    def web_text(self, instrument_id: str, item_id: str, language: str, *, emergency_number: str) -> WebText:
        """The web form label (+ help) for an item: the owner's official wording when it is shipped under
        third_party/ (included: true), else our own wording from the instrument file."""
        instrument = self.get(instrument_id)
        item = instrument.item(item_id)
        own = item.web.get(language).filled(emergency_number)
        texts = self._third_party.get(instrument_id)
        if texts is None or not texts.included or not item.third_party_ref:
            return own
        official = texts.items[item.third_party_ref].get("es" if language == "es" else "en")
        return WebText(label=official, help=own.help) if official else own

    def third_party(self, instrument_id: str) -> ThirdPartyTexts | None:
        return self._third_party.get(instrument_id)
