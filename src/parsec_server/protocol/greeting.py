"""Greeting steps as the server stores them (protocol.md §4.7).

`invite_greeter_step` / `invite_claimer_step` requests carry a step dict (see the generated
`GreeterStep` / `ClaimerStep` decoders: `{"step": <tag>, <fields>}`). Per attempt the server keeps,
for each side, the raw data of each step (empty bytes for data-less steps) and answers step i with
the peer's step i rebuilt from its data. Step 5 of the greeter is tagged with the literal "5".
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "claimer_step_data",
    "claimer_step_from_data",
    "greeter_step_data",
    "greeter_step_from_data",
]

# index -> (tag, data field or None)
GREETER_STEPS: tuple[tuple[str, str | None], ...] = (
    ("NUMBER_0_WAIT_PEER", "public_key"),
    ("NUMBER_1_GET_HASHED_NONCE", None),
    ("NUMBER_2_SEND_NONCE", "greeter_nonce"),
    ("NUMBER_3_GET_NONCE", None),
    ("NUMBER_4_WAIT_PEER_TRUST", None),
    ("5", None),
    ("NUMBER_6_GET_PAYLOAD", None),
    ("NUMBER_7_SEND_PAYLOAD", "greeter_payload"),
    ("NUMBER_8_WAIT_PEER_ACKNOWLEDGMENT", None),
)
CLAIMER_STEPS: tuple[tuple[str, str | None], ...] = (
    ("NUMBER_0_WAIT_PEER", "public_key"),
    ("NUMBER_1_SEND_HASHED_NONCE", "hashed_nonce"),
    ("NUMBER_2_GET_NONCE", None),
    ("NUMBER_3_SEND_NONCE", "claimer_nonce"),
    ("NUMBER_4_SIGNIFY_TRUST", None),
    ("NUMBER_5_WAIT_PEER_TRUST", None),
    ("NUMBER_6_SEND_PAYLOAD", "claimer_payload"),
    ("NUMBER_7_GET_PAYLOAD", None),
    ("NUMBER_8_ACKNOWLEDGE", None),
)
_GREETER_INDEX = {tag: i for i, (tag, _) in enumerate(GREETER_STEPS)}
_CLAIMER_INDEX = {tag: i for i, (tag, _) in enumerate(CLAIMER_STEPS)}


def _data(
    step: dict[str, Any], table: tuple[tuple[str, str | None], ...], index: dict[str, int]
) -> tuple[int, bytes]:
    i = index[step["step"]]
    field = table[i][1]
    return i, b"" if field is None else bytes(step[field])


def _from_data(i: int, data: bytes, table: tuple[tuple[str, str | None], ...]) -> dict[str, Any]:
    tag, field = table[i]
    return {"step": tag} if field is None else {"step": tag, field: data}


def greeter_step_data(step: dict[str, Any]) -> tuple[int, bytes]:
    """A decoded greeter step -> (step index, raw data to store)."""
    return _data(step, GREETER_STEPS, _GREETER_INDEX)


def claimer_step_data(step: dict[str, Any]) -> tuple[int, bytes]:
    return _data(step, CLAIMER_STEPS, _CLAIMER_INDEX)


def greeter_step_from_data(index: int, data: bytes) -> dict[str, Any]:
    """Stored greeter data -> the greeter step dict to put in an `invite_claimer_step` ok reply."""
    return _from_data(index, data, GREETER_STEPS)


def claimer_step_from_data(index: int, data: bytes) -> dict[str, Any]:
    return _from_data(index, data, CLAIMER_STEPS)
