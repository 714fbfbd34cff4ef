"""`aftercare triage test FILE.jsonl`: dry-run triage rules and word lists on sample messages before using them."""

from __future__ import annotations

import json
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import typer
from pydantic import ValidationError

from aftercare.triage import RulesError, RuleSet, TriageInput, TriageResult, describe_errors, evaluate, load_rules
from aftercare.triage.lexicon import Lexicon, LexiconError, load_lexicon

triage_app = typer.Typer(help="Triage rules: dry-run them against sample messages.", no_args_is_help=True)

SEVERITIES = ("emergency", "urgent", "review", "routine", "none")
_ANNOTATIONS = ("id", "expect", "note", "tags")  # kept with a line, never triaged


@dataclass(frozen=True)
class Outcome:
    """One input line: its result, or why it could not be read."""

    line: int
    annotations: dict[str, Any]
    text: str | None = None
    result: TriageResult | None = None
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        if self.result is None:
            return {"line": self.line, **_ids(self.annotations), "error": self.error}
        body: dict[str, Any] = {"line": self.line, **_ids(self.annotations), **self.result.to_dict()}
        expect = self.annotations.get("expect")
        if expect is not None:
            body["expect"] = expect
            body["match"] = expect == self.result.severity
        return body


def _ids(annotations: dict[str, Any]) -> dict[str, Any]:
    return {"id": annotations["id"]} if "id" in annotations else {}


def run_file(lines: list[str], ruleset: RuleSet, lexicon: Lexicon | None = None) -> list[Outcome]:
    """Triage every non-blank, non-comment line; a bad line becomes an Outcome with an error naming it."""
    outcomes = []
    for number, raw in enumerate(lines, start=1):
        stripped = raw.strip()
        if not stripped or stripped.startswith(("#", "//")):
            continue
        outcomes.append(_one(number, stripped, ruleset, lexicon))
    return outcomes


def _one(number: int, raw: str, ruleset: RuleSet, lexicon: Lexicon | None) -> Outcome:
    try:
        body = json.loads(raw)
    except json.JSONDecodeError as exc:
        return Outcome(number, {}, error=f"not valid JSON ({exc.msg} at column {exc.colno})")
    if not isinstance(body, dict):
        return Outcome(number, {}, error='expected a JSON object like {"text": "...", "day": 3}')
    annotations = {key: body.pop(key) for key in _ANNOTATIONS if key in body}
    expect = annotations.get("expect")
    if expect is not None and expect not in SEVERITIES:
        return Outcome(number, annotations, error=f"expect: must be one of {', '.join(SEVERITIES)}, got {expect!r}")
    if "day" not in body:
        return Outcome(number, annotations, error="day: required (days since the procedure, e.g. 3)")
    try:
        inp = TriageInput.model_validate(body)
    except ValidationError as exc:
        return Outcome(number, annotations, error="; ".join(describe_errors(exc)))
    return Outcome(number, annotations, inp.text, evaluate(inp, ruleset, lexicon))


def _read_lines(file: Path) -> list[str]:
    if str(file) == "-":
        return sys.stdin.read().splitlines()
    try:
        return file.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        typer.echo(f"{file}: cannot read: {exc}", err=True)
        raise typer.Exit(2) from None


def _print_table(outcomes: list[Outcome], out: TextIO) -> None:
    out.write(f"{'line':>4}  {'severity':<9}  {'human':<5}  text\n")
    for outcome in outcomes:
        if outcome.result is None:
            out.write(f"{outcome.line:>4}  {'ERROR':<9}  {'':<5}  {outcome.error}\n")
            continue
        result = outcome.result
        text = (outcome.text or "(answers only)").replace("\n", " ")
        text = text if len(text) <= 80 else text[:77] + "..."
        expect = outcome.annotations.get("expect")
        flag = f"   << expected {expect}" if expect is not None and expect != result.severity else ""
        human = "yes" if result.needs_human else "no"
        out.write(f"{outcome.line:>4}  {result.severity:<9}  {human:<5}  {text}{flag}\n")
        for fired in result.fired:
            out.write(f"{'':>6}{fired.tier.value:<9}  {fired.id}: {fired.explained}\n")


def _summary(outcomes: list[Outcome]) -> str:
    done = [o for o in outcomes if o.result is not None]
    counts: Counter[str] = Counter(o.result.severity for o in done if o.result is not None)
    parts = [f"{counts[s]} {s}" for s in SEVERITIES if counts[s]]
    line = f"{len(outcomes)} input(s): " + (", ".join(parts) or "none triaged")
    bad = len(outcomes) - len(done)
    if bad:
        line += f"; {bad} bad line(s)"
    expected = [o for o in done if "expect" in o.annotations]
    if expected:
        matched = sum(1 for o in expected if o.result is not None and o.result.severity == o.annotations["expect"])
        line += f"; expected tier matched {matched}/{len(expected)}"
    return line


def test(
    file: Path = typer.Argument(..., help='JSON lines: {"text": "...", "day": N, "answers": {...}, ...}; - = stdin'),
    as_json: bool = typer.Option(False, "--json", help="one JSON object per input line instead of a table"),
    rules: Path | None = typer.Option(None, "--rules", help="rules file to test (default: config/triage.yaml)"),
    lexicon_file: Path | None = typer.Option(
        None, "--lexicon", help="free-text word lists to test (default: config/triage-lexicon.yaml)"
    ),
) -> None:
    """Dry-run the triage rules and lexicon: one result per input line (severity, rules fired, reasons).

    Each line: {"text": "...", "day": N} with optional "answers", "baseline", "previous" (check-in field
    vocabulary), "survey", "missed_checkins", "text_kind"; and optional "id", "expect", "note", "tags", which are
    echoed back ("expect" is compared with the result). Blank lines and lines starting with # are skipped.
    Exit code 0, or 1 if any line could not be read (the others are still triaged).
    """
    try:
        ruleset = load_rules(rules)
        lexicon = load_lexicon(lexicon_file)
    except (RulesError, LexiconError) as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from None
    outcomes = run_file(_read_lines(file), ruleset, lexicon)
    for outcome in outcomes:
        if outcome.error is not None:
            typer.echo(f"{file}: line {outcome.line}: {outcome.error}", err=True)
    if as_json:
        for outcome in outcomes:
            typer.echo(json.dumps(outcome.to_dict(), ensure_ascii=False))
    else:
        _print_table(outcomes, sys.stdout)
        typer.echo(_summary(outcomes))
    if any(o.error is not None for o in outcomes):
        raise typer.Exit(1)


triage_app.command("test")(test)


def register(app: typer.Typer) -> None:
    app.add_typer(triage_app, name="triage")
