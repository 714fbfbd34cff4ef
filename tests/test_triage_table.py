"""The message table (tests/data/triage_messages.jsonl), run through `aftercare triage test --json`.

Bars from the issue: every emergency/urgent case is flagged urgent or higher, and at most 10% of the no-concern
cases (expected routine or none) are flagged at all (review or higher). The confusion matrix is in the failure
message; run `pytest tests/test_triage_table.py -s` to see it on a pass too.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from aftercare.cli import app

TABLE = Path(__file__).parent / "data" / "triage_messages.jsonl"
TIERS = ("emergency", "urgent", "review", "routine", "none")
RANK = {tier: rank for rank, tier in enumerate(reversed(TIERS))}  # none 0 ... emergency 4


@pytest.fixture(scope="module")
def outcomes() -> list[dict[str, Any]]:
    result = CliRunner().invoke(app, ["triage", "test", str(TABLE), "--json"])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
    assert all("error" not in row for row in rows), [row for row in rows if "error" in row]
    return rows


def confusion(rows: list[dict[str, Any]]) -> str:
    counts = Counter((row["expect"], row["severity"]) for row in rows)
    width = max(len(t) for t in TIERS) + 2
    lines = ["expected \\ got".ljust(16) + "".join(t.rjust(width) for t in TIERS) + "total".rjust(width)]
    for expected in TIERS:
        cells = [counts[(expected, got)] for got in TIERS]
        lines.append(expected.ljust(16) + "".join(str(c).rjust(width) for c in cells) + str(sum(cells)).rjust(width))
    return "\n".join(lines)


def misses(rows: list[dict[str, Any]], keep: Any) -> str:
    return "\n".join(f"  {row['id']}: expected {row['expect']}, got {row['severity']} {row['rules']}"
                     for row in rows if keep(row))


def test_the_table_is_large_and_varied(outcomes: list[dict[str, Any]]) -> None:
    lines = [json.loads(line) for line in TABLE.read_text(encoding="utf-8").splitlines() if line.startswith("{")]
    assert len(lines) >= 200
    assert len({line["id"] for line in lines}) == len(lines)
    tags = Counter(tag for line in lines for tag in line.get("tags", []))
    for tag, least in {"en": 100, "es": 60, "negation": 30, "units": 20, "words": 8, "other": 10, "past": 15,
                       "answers": 25, "mixed": 5, "typo": 5, "proxy": 3}.items():
        assert tags[tag] >= least, (tag, tags[tag])
    expected = Counter(line["expect"] for line in lines)
    assert expected["emergency"] >= 20 and expected["urgent"] >= 80 and expected["review"] >= 40
    assert expected["routine"] + expected["none"] >= 80
    assert len(outcomes) == len(lines)


def test_every_emergency_and_urgent_case_is_flagged_urgent_or_higher(outcomes: list[dict[str, Any]]) -> None:
    serious = [row for row in outcomes if row["expect"] in ("emergency", "urgent")]
    caught = [row for row in serious if RANK[row["severity"]] >= RANK["urgent"]]
    print(f"\n{confusion(outcomes)}\nemergency/urgent flagged urgent or higher: {len(caught)}/{len(serious)}")
    assert len(caught) == len(serious), (
        f"\n{confusion(outcomes)}\nmissed:\n"
        + misses(outcomes, lambda r: r["expect"] in ("emergency", "urgent") and RANK[r["severity"]] < RANK["urgent"])
    )


def test_every_emergency_is_an_emergency(outcomes: list[dict[str, Any]]) -> None:
    assert not misses(outcomes, lambda r: r["expect"] == "emergency" and r["severity"] != "emergency"), (
        f"\n{confusion(outcomes)}"
    )


def test_at_most_ten_percent_of_no_concern_cases_are_flagged(outcomes: list[dict[str, Any]]) -> None:
    calm = [row for row in outcomes if row["expect"] in ("routine", "none")]
    flagged = [row for row in calm if RANK[row["severity"]] >= RANK["review"]]
    rate = len(flagged) / len(calm)
    print(f"\nno-concern flagged review or higher: {len(flagged)}/{len(calm)} ({rate:.1%})")
    assert rate <= 0.10, f"\n{confusion(outcomes)}\nflagged:\n" + misses(
        outcomes, lambda r: r["expect"] in ("routine", "none") and RANK[r["severity"]] >= RANK["review"]
    )


def test_review_cases_reach_a_person(outcomes: list[dict[str, Any]]) -> None:
    """Not a bar of the issue, but a review case that ends as routine would sit unseen in a queue."""
    under = [row for row in outcomes if row["expect"] == "review" and RANK[row["severity"]] < RANK["review"]]
    review = [row for row in outcomes if row["expect"] == "review"]
    assert len(under) <= 0.10 * len(review), f"\n{confusion(outcomes)}\n" + misses(
        outcomes, lambda r: r["expect"] == "review" and RANK[r["severity"]] < RANK["review"]
    )


def test_free_text_always_reaches_a_person_and_none_means_no_rule(outcomes: list[dict[str, Any]]) -> None:
    for row in outcomes:
        if row["text_kind"] == "free_text":
            assert row["needs_human"] and "human_queue" in row["routes"], row["id"]
        assert (row["severity"] == "none") == (row["rules"] == []), row["id"]
