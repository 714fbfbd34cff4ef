"""Read and validate protocol files; errors name the file, the field and the problem."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from aftercare.configfile import field_path as _field_path
from aftercare.protocols.schema import Protocol


class ProtocolError(ValueError):
    """A protocol file that cannot be used, with where and why."""




def load_protocol_file(path: Path) -> Protocol:
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ProtocolError(f"{path}: not valid YAML: {exc}") from exc
    except OSError as exc:
        raise ProtocolError(f"{path}: cannot read: {exc}") from exc
    if not isinstance(raw, dict):
        raise ProtocolError(f"{path}: expected a mapping at the top level")
    try:
        return Protocol.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(f"{_field_path(e['loc'])}: {e['msg']}" for e in exc.errors())
        raise ProtocolError(f"{path}: {problems}") from exc


def checksum(body: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


class ProtocolRegistry:
    """Every protocol in a folder, by id. Loading fails loudly on the first bad file."""

    def __init__(self, protocols: dict[str, Protocol]) -> None:
        self._protocols = protocols

    @classmethod
    def from_dir(cls, folder: Path) -> ProtocolRegistry:
        protocols: dict[str, Protocol] = {}
        files = sorted(folder.glob("*.yaml")) + sorted(folder.glob("*.yml"))
        for path in files:
            protocol = load_protocol_file(path)
            if protocol.id in protocols:
                raise ProtocolError(f"{path}: protocol id {protocol.id!r} is defined twice")
            protocols[protocol.id] = protocol
        return cls(protocols)

    def get(self, protocol_id: str) -> Protocol:
        try:
            return self._protocols[protocol_id]
        except KeyError:
            known = ", ".join(sorted(self._protocols)) or "none"
            raise ProtocolError(f"unknown protocol {protocol_id!r} (known: {known})") from None

    def ids(self) -> list[str]:
        return sorted(self._protocols)

    def all(self) -> list[Protocol]:
        return [self._protocols[i] for i in self.ids()]
