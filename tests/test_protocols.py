"""Protocol files: the shipped ones load; a bad one is refused naming the file, the field and the problem."""

from __future__ import annotations

from pathlib import Path

import pytest

from aftercare.protocols import ProtocolError, ProtocolRegistry, load_protocol_file

SHIPPED = Path(__file__).resolve().parents[1] / "config" / "protocols"
MINIMAL = """
id: tiny
version: "1.0"
title: Tiny
procedure: test
settings: {hold_days: 3}
surveys: {checkin: {instruments: [nrs_now]}}
touchpoints:
  - {id: checkin_d1, kind: checkin, survey: checkin, template: checkin_invite, at: {days: 1, time: "10:00"}}
"""


def write(tmp_path: Path, text: str, name: str = "p.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_shipped_protocols_load_with_versions() -> None:
    registry = ProtocolRegistry.from_dir(SHIPPED)
    assert registry.ids() == ["msc-knee-injection", "msc-knee-ligament"]
    assert all(p.version for p in registry.all())


def test_a_second_protocol_is_just_another_file(tmp_path: Path) -> None:
    write(tmp_path, MINIMAL, "tiny.yaml")
    assert ProtocolRegistry.from_dir(tmp_path).get("tiny").touchpoints[0].id == "checkin_d1"


@pytest.mark.parametrize(
    ("change", "field", "problem"),
    [
        ('time: "10:00"', 'time: "25:00"', "touchpoints[0].at.time"),
        ("kind: checkin,", "kind: phone_call,", "touchpoints[0].kind"),
        ("survey: checkin,", "survey: nope,", "unknown survey 'nope'"),
        ("days: 1,", "days: -missing_setting,", "unknown setting 'missing_setting'"),
        ('version: "1.0"', 'version: "one"', "version"),
        ("id: checkin_d1,", "id: checkin_d1, colour: red,", "colour"),
    ],
)
def test_bad_files_name_the_file_field_and_problem(tmp_path: Path, change: str, field: str, problem: str) -> None:
    path = write(tmp_path, MINIMAL.replace(change, field))
    with pytest.raises(ProtocolError) as info:
        load_protocol_file(path)
    message = str(info.value)
    assert str(path) in message and problem in message


def test_not_yaml_and_duplicate_ids_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ProtocolError, match="not valid YAML"):
        load_protocol_file(write(tmp_path, "id: [unclosed"))
    clean = tmp_path / "two"
    clean.mkdir()
    write(clean, MINIMAL, "a.yaml")
    write(clean, MINIMAL, "b.yaml")
    with pytest.raises(ProtocolError, match="defined twice"):
        ProtocolRegistry.from_dir(clean)


def test_unknown_protocol_lists_the_known_ones() -> None:
    with pytest.raises(ProtocolError, match="known: msc-knee-injection, msc-knee-ligament"):
        ProtocolRegistry.from_dir(SHIPPED).get("prp-hip")
