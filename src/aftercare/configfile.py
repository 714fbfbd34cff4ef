"""Reading config/*.yaml files: one YAML reader and one way to name the field a validation error is about."""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import ValidationError


def field_path(loc: tuple[int | str, ...]) -> str:
    """`touchpoints[3].at.time` from pydantic's location tuple."""
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path or "(top level)"


def problems(exc: ValidationError) -> str:
    """Every validation problem as `field: message`, joined by `; `."""
    return "; ".join(f"{field_path(e['loc'])}: {e['msg'].removeprefix('Value error, ')}" for e in exc.errors())


def read_yaml(path: Path, error: type[Exception]) -> object:
    """The parsed file; `error` names the file and what is wrong when it cannot be read or parsed."""
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise error(f"{path}: not valid YAML: {exc}") from None
    except OSError as exc:
        raise error(f"{path}: cannot read: {exc.strerror or exc}") from None
