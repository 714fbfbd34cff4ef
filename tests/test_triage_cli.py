"""`aftercare triage test`: JSON lines and a readable table, a candidate rules file, bad lines named by number."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from aftercare.cli import app

runner = CliRunner()


def write(tmp_path: Path, *lines: str, name: str = "messages.jsonl") -> Path:
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_json_lines_one_per_input(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '{"text": "tengo fiebre 38,7", "day": 4}',
        "",
        "# a comment line is skipped",
        '{"text": "no fever, knee feels better", "day": 2}',
        '{"day": 5, "answers": {"nrs_now": 2, "swelling_trend": "better"}}',
        '{"day": 91, "survey": "mo3", "answers": {"nrs_pain": 5, "koos_jr": 55}, '
        '"baseline": {"nrs_pain": 6, "koos_jr": 50}}',
    )
    result = runner.invoke(app, ["triage", "test", str(path), "--json"])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(r["line"], r["severity"]) for r in rows] == [(1, "urgent"), (4, "routine"), (5, "none"), (6, "review")]
    assert rows[0]["rules"] == ["U1-fever-measured", "U2-fever-reported", "T0-free-text"]
    assert rows[0]["reasons"][0].startswith("Temperature 38.7 C in the first 3 weeks (day 4)")
    assert rows[1]["rules"] == ["T0-free-text"] and rows[1]["needs_human"] is True
    assert rows[2] | {"findings": []} == rows[2] and rows[2]["rules"] == [] and rows[2]["needs_human"] is False
    assert rows[3]["rules"] == ["R8-non-responder"]
    assert "pain down 1 points (16.7%), KOOS JR up 5" in rows[3]["reasons"][0]


def test_readable_table_with_reasons_and_expectations(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '{"id": "a", "text": "my calf is swollen", "day": 6, "expect": "urgent"}',
        '{"id": "b", "text": "mi esposo tiene fiebre", "day": 3, "expect": "routine"}',
    )
    result = runner.invoke(app, ["triage", "test", str(path)])
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "line  severity   human  text" in out
    assert "   1  urgent     yes    my calf is swollen\n" in out
    assert "U6-calf: Pain or swelling of one calf or leg (possible DVT)" in out
    assert "   2  review     yes    mi esposo tiene fiebre   << expected routine" in out
    assert '"fiebre" (about someone else)' in out
    assert out.strip().endswith("2 input(s): 1 urgent, 1 review; expected tier matched 1/2")


def test_bad_lines_are_named_and_the_rest_still_run(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '{"text": "pain 9/10", "day": 2}',
        "{not json",
        '{"text": "no day given"}',
        '{"text": "x", "day": "three"}',
        '{"day": 4, "answers": {"temp_c": "hot", "colour": 1}}',
        '["a", "list"]',
        '{"text": "x", "day": 3, "expect": "critical"}',
        '{"text": "x", "day": 3, "anwsers": {}}',
        '{"text": "chills", "day": 3}',
    )
    result = runner.invoke(app, ["triage", "test", str(path), "--json"])
    assert result.exit_code == 1
    rows = {row["line"]: row for row in map(json.loads, result.stdout.splitlines())}
    assert rows[1]["severity"] == "urgent" and rows[9]["severity"] == "urgent"
    assert rows[2]["error"].startswith("not valid JSON")
    assert rows[3]["error"] == "day: required (days since the procedure, e.g. 3)"
    assert rows[4]["error"] == "day: must be a number of days since the procedure, got 'three'"
    assert rows[5]["error"] == "answers.temp_c: must be a number, got 'hot'"
    assert rows[6]["error"].startswith("expected a JSON object")
    assert rows[7]["error"].startswith("expect: must be one of emergency, urgent, review, routine, none")
    assert rows[8]["error"] == "anwsers: unknown key"
    for number in (2, 3, 4, 5, 6, 7, 8):
        assert f"{path}: line {number}: " in result.stderr


def test_a_candidate_rules_file(tmp_path: Path) -> None:
    rules = write(
        tmp_path,
        "constants: {fever_c: 37.5}",
        "rules:",
        "  - {id: F, tier: urgent, when: temp_c >= fever_c, reason: 'Temperature {temp_c} C'}",
        name="candidate.yaml",
    )
    path = write(tmp_path, '{"text": "37.8 this morning", "day": 2}', '{"text": "how long do I ice?", "day": 2}')
    result = runner.invoke(app, ["triage", "test", str(path), "--json", "--rules", str(rules)])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert rows[0]["rules"] == ["F"] and rows[0]["reasons"][0].startswith("Temperature 37.8 C")
    assert rows[1]["severity"] == "none" and rows[1]["needs_human"] is True  # no rule, still read by a person


def test_a_bad_rules_file_is_refused_naming_rule_and_field(tmp_path: Path) -> None:
    rules = write(tmp_path, "rules:", "  - {id: F, tier: urgent, when: temp_f >= 38, reason: x}", name="bad.yaml")
    path = write(tmp_path, '{"text": "fever", "day": 2}')
    result = runner.invoke(app, ["triage", "test", str(path), "--rules", str(rules)])
    assert result.exit_code == 2
    assert "rule F, when (field temp_f): unknown field 'temp_f'" in result.stderr
    assert "Traceback" not in result.output


def test_missing_input_file_and_stdin(tmp_path: Path) -> None:
    missing = runner.invoke(app, ["triage", "test", str(tmp_path / "nope.jsonl")])
    assert missing.exit_code == 2 and "cannot read" in missing.stderr
    piped = runner.invoke(app, ["triage", "test", "-", "--json"], input='{"text": "sin fiebre", "day": 1}\n')
    assert piped.exit_code == 0 and json.loads(piped.stdout)["severity"] == "routine"


def test_the_installed_command_runs_the_shipped_table() -> None:
    """The same table the clinic sees, through the console script (a real subprocess)."""
    import subprocess
    import sys

    table = Path(__file__).parent / "data" / "triage_messages.jsonl"
    script = Path(sys.executable).parent / "aftercare"
    done = subprocess.run([str(script), "triage", "test", str(table)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    last = done.stdout.strip().splitlines()[-1]
    assert last.startswith(f"{sum(1 for line in table.open() if line.startswith('{'))} input(s):")
