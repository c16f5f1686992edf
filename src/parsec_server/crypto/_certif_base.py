"""Base class of the generated certificate content classes (`crypto/_certif_generated.py`)."""

from __future__ import annotations

from typing import Any, ClassVar

__all__ = ["Certificate"]


class Certificate:
    """Decoded certificate content: slotted, immutable by contract (mypy `Final` attributes).

    `TYPE` is the `type` tag of the signed msgpack map, `FIELDS` the other fields in schema order.
    `author` is None for certificates signed by the organization root key."""

    __slots__ = ()
    TYPE: ClassVar[str]
    FIELDS: ClassVar[tuple[str, ...]]

    def to_dict(self) -> dict[str, Any]:
        """The msgpack map that was signed (`type` tag first)."""
        return {"type": self.TYPE, **{name: getattr(self, name) for name in self.FIELDS}}

    def _values(self) -> tuple[Any, ...]:
        return tuple(getattr(self, name) for name in self.FIELDS)

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        assert isinstance(other, Certificate)
        return self._values() == other._values()

    def __hash__(self) -> int:
        return hash((self.TYPE, tuple(repr(v) for v in self._values())))

    def __repr__(self) -> str:
        inner = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.FIELDS)
        return f"{type(self).__name__}({inner})"
