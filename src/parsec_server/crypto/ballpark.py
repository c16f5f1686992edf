"""Clock tolerance for client timestamps (protocol.md §4.1 step 4, §1.5).

A client timestamp is accepted iff `-300 s < server_now - client < 320 s` (both bounds strict,
asymmetric: data arriving at the server is naturally a little in the past). Used for certificate and
vlob timestamps (reply `timestamp_out_of_ballpark`) and for auth tokens (HTTP 498)."""

from __future__ import annotations

import datetime
from typing import Literal, TypedDict

from parsec_server.protocol.codec import datetime_to_us

__all__ = [
    "BALLPARK_CLIENT_EARLY_OFFSET",
    "BALLPARK_CLIENT_LATE_OFFSET",
    "OutOfBallpark",
    "check_ballpark",
    "in_ballpark",
    "seconds_in_ballpark",
    "timestamp_out_of_ballpark",
]

BALLPARK_CLIENT_EARLY_OFFSET = 300.0  # seconds a client may be ahead of the server
BALLPARK_CLIENT_LATE_OFFSET = 320.0  # seconds a client may be behind
_EARLY_US = 300_000_000
_LATE_US = 320_000_000


class OutOfBallpark(TypedDict):
    """The `timestamp_out_of_ballpark` reply: the same fields in every command that has it (so it
    fits each command's generated `<Cmd>RepTimestampOutOfBallpark`)."""

    status: Literal["timestamp_out_of_ballpark"]
    ballpark_client_early_offset: float
    ballpark_client_late_offset: float
    server_timestamp: datetime.datetime
    client_timestamp: datetime.datetime


def in_ballpark(client: datetime.datetime, server: datetime.datetime) -> bool:
    return -_EARLY_US < datetime_to_us(server) - datetime_to_us(client) < _LATE_US


def seconds_in_ballpark(client_seconds: int, server: datetime.datetime) -> bool:
    """Same rule for a whole-seconds Unix timestamp (auth tokens)."""
    return -_EARLY_US < datetime_to_us(server) - client_seconds * 1_000_000 < _LATE_US


def timestamp_out_of_ballpark(
    client: datetime.datetime, server: datetime.datetime
) -> OutOfBallpark:
    """The `timestamp_out_of_ballpark` reply (same in every command that has it)."""
    return {
        "status": "timestamp_out_of_ballpark",
        "ballpark_client_early_offset": BALLPARK_CLIENT_EARLY_OFFSET,
        "ballpark_client_late_offset": BALLPARK_CLIENT_LATE_OFFSET,
        "server_timestamp": server,
        "client_timestamp": client,
    }


def check_ballpark(client: datetime.datetime, server: datetime.datetime) -> OutOfBallpark | None:
    """None if in the ballpark, else the reply to return."""
    if in_ballpark(client, server):
        return None
    return timestamp_out_of_ballpark(client, server)
