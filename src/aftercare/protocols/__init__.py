"""Care-plan protocols: versioned YAML files in config/protocols/, validated on load."""

from aftercare.protocols.loader import ProtocolError, ProtocolRegistry, load_protocol_file
from aftercare.protocols.schema import Offset, Protocol, ProtocolTouchpoint

__all__ = [
    "Offset",
    "Protocol",
    "ProtocolError",
    "ProtocolRegistry",
    "ProtocolTouchpoint",
    "load_protocol_file",
]
