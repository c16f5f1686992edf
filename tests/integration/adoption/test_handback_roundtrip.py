"""The full round trip of issue 13: official -> ours -> official, with writes on ours in between.

Reuses the adoption's fixtures (test_adoption_roundtrip: `filled_official`, a database the
official 3.9.3 server migrated and that the official client library filled through it, blocks on
a RAID0 of the PostgreSQL blockstore and an S3 bucket on loopback, `blockstore`). Our `migrate`
adopts it, our server serves every device and takes new writes (a vlob version, a vlob, a block,
a user, a realm), the driver records what every device sees on ours; then
`migrate --to official-3.9` hands it back, the official server starts on it and every device finds
exactly what it saw on ours (writes made on parsec-server included), and the official server takes
new writes. The adoption's old official copy is kept aside, renamed. Skipped without .venv-compat.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from adoption_support import migrate, query, run_driver
from test_adoption_roundtrip import (  # the adoption's fixtures and servers (stage 2)
    TOKEN,
    _official_server,
    _our_server,
    blockstore,
    filled_official,
)

DRIVER = Path(__file__).with_name("handback_driver.py")

__all__ = ["blockstore", "filled_official"]  # fixtures: imported for pytest


def _driver(action: str, server: str, state: Path) -> None:
    res = run_driver(DRIVER, action, server, TOKEN, state)
    assert res.returncode == 0, f"driver {action}:\n{res.stdout}\n{res.stderr[-3000:]}"


def test_round_trip_official_ours_official(
    filled_official: tuple[str, Path], tmp_path: Path, blockstore: tuple[list[str], Any]
) -> None:
    url, state = filled_official
    args = blockstore[0]  # RAID0 over PostgreSQL and S3 on loopback, for both servers
    res = migrate(url, "--backup-dir", str(tmp_path / "backups"))
    assert res.returncode == 0, res.stdout + res.stderr

    with _our_server(url, tmp_path / "ours.log", args) as server:
        _driver("check", server, state)  # every device as on the official server, then writes
        _driver("record", server, state)  # what every device sees on ours now
    vlobs_on_ours = query(url, "SELECT count(*) FROM vlob_atom")[0][0]
    users_on_ours = query(url, "SELECT count(*) FROM user_")[0][0]

    res = migrate(url, "--to", "official-3.9", "--backup-dir", str(tmp_path / "backups"))
    assert res.returncode == 0, res.stdout + res.stderr
    assert "schema `parsec_official_superseded`" in res.stdout
    assert query(url, "SELECT count(*) FROM public.vlob_atom")[0][0] == vlobs_on_ours
    assert query(url, "SELECT count(*) FROM public.user_")[0][0] == users_on_ours
    assert query(url, "SELECT count(*) FROM migration")[0][0] == 24

    with _official_server(url, tmp_path / "official-back.log", args) as server:
        _driver("check", server, state)
