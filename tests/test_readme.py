"""The README is the runbook: its two commands are the Makefile's, and every setting is documented."""

from __future__ import annotations

import re
from pathlib import Path

from aftercare.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def test_every_setting_is_documented() -> None:
    names = [f"AFTERCARE_{name.upper()}" for name in Settings.model_fields]
    missing = [name for name in names if f"`{name}`" not in README]
    assert missing == [], f"document these in README.md (Configuration): {missing}"


def test_the_first_two_commands_are_run_and_test() -> None:
    first_block = re.search(r"```sh\n(.*?)```", README, re.S)
    assert first_block is not None
    commands = [line.split("#")[0].strip() for line in first_block.group(1).splitlines() if line.strip()]
    assert commands[:2] == ["make run", "make test"]
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    assert re.search(r"^run:", makefile, re.M) and re.search(r"^test:", makefile, re.M)
    assert "make test" in (ROOT / ".ci" / "run").read_text(encoding="utf-8")
