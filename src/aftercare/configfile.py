"""Reading config/*.yaml files: one YAML reader and one way to name the field a validation error is about."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Generic, TypeVar

import yaml
from pydantic import ValidationError

T = TypeVar("T")


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


class FileCache(Generic[T]):
    """Parsed config files, parsed again only when a file changes (its mtime).

    `get(path)` looks at the file (one stat) on every call; `get()` is the hot path (triage reads its files for
    every message): the default file is looked at most every `recheck_seconds`, since under load every system
    call hands the interpreter lock to another thread and costs far more than the call itself.
    """

    def __init__(self, parse: Callable[[Path], T], default: Callable[[], Path],
                 unreadable: Callable[[Path, OSError], Exception], recheck_seconds: float = 1.0) -> None:
        self.parse, self.default, self.unreadable, self.recheck_seconds = parse, default, unreadable, recheck_seconds
        self._parsed: dict[Path, tuple[float, T]] = {}  # absolute path -> (mtime, parsed)
        self._looked: dict[Path, tuple[float, T]] = {}  # default path -> (monotonic time looked, parsed)

    def get(self, path: Path | None = None) -> T:
        if path is not None:
            return self._load(path)
        default = self.default()
        looked = self._looked.get(default)
        now = time.monotonic()
        if looked is not None and now - looked[0] < self.recheck_seconds:
            return looked[1]
        parsed = self._load(default)
        self._looked[default] = (now, parsed)
        return parsed

    def _load(self, path: Path) -> T:
        path = Path(os.path.abspath(path))
        try:
            mtime = os.stat(path).st_mtime
        except OSError as exc:
            raise self.unreadable(path, exc) from exc
        cached = self._parsed.get(path)
        if cached is not None and cached[0] == mtime:
            return cached[1]
        parsed = self.parse(path)
        self._parsed[path] = (mtime, parsed)
        return parsed
