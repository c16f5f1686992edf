"""Golden vectors made by tools/make_vectors.py with the official library (see its docstring)."""

from __future__ import annotations

import json
import uuid
from functools import cache
from pathlib import Path
from typing import Any

from parsec_server.protocol.codec import datetime_from_us
from parsec_server.protocol.ids import HumanHandle

VECTORS = Path(__file__).parent / "vectors"


@cache
def load(name: str) -> Any:
    return json.loads((VECTORS / name).read_text(encoding="utf-8"))


def untag(value: Any) -> Any:
    """Tagged JSON -> the Python values our decoders produce (tuple, frozenset, HumanHandle...)."""
    if isinstance(value, list):
        return [untag(v) for v in value]
    if isinstance(value, dict):
        if len(value) == 1:
            ((key, inner),) = value.items()
            if key == "$uuid":
                return uuid.UUID(hex=inner)
            if key == "$dt":
                return datetime_from_us(inner)
            if key == "$bytes":
                return bytes.fromhex(inner)
            if key == "$tuple":
                return tuple(untag(v) for v in inner)
            if key == "$map":
                return {untag(k): untag(v) for k, v in inner}
            if key == "$set":
                return frozenset(untag(v) for v in inner)
            if key == "$hh":
                return HumanHandle(*inner)
        return {k: untag(v) for k, v in value.items()}
    return value
