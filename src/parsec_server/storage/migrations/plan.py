"""Planning a run: which files to apply or revert, and what forbids it (pure: no database access).

`make_plan` compares the migrations shipped with this release to the history read from the database:
applied, pending, unknown (a newer release applied them), drifted (file edited since), conflicting
(same number, another name), out of order. `Plan.check` turns what must stop a run into the right
error.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from parsec_server import __version__
from parsec_server.storage.migrations.errors import (
    BadTarget,
    ChecksumDrift,
    DatabaseAhead,
    DataLossRefused,
    InvalidMigrations,
    MigrationFailed,
)
from parsec_server.storage.migrations.history import Applied
from parsec_server.storage.migrations.source import Header, Migration, Script, checksum


@dataclass(frozen=True, slots=True)
class Options:
    lock_wait: float = 60.0  # seconds to wait for the migration lock held by another run
    lock_timeout: float = 2.0  # seconds a statement may wait for a table lock (header overrides)
    lock_retries: int = 10  # further attempts after a lock timeout (header overrides)
    heartbeat: float = 5.0  # seconds between progress reports of a long step
    target: int | None = None  # `--to`: None = latest
    allow_data_loss: bool = False


@dataclass(frozen=True, slots=True)
class Step:
    direction: Literal["up", "down"]
    number: int
    name: str
    script: Script | None  # None: a down step with no down script available
    migration: Migration | None  # None for a migration this release does not know
    data_loss: bool = False

    @property
    def filename(self) -> str:
        return self.script.filename if self.script else f"{self.name}.down.sql"


@dataclass(slots=True)
class Plan:
    migrations: list[Migration]
    history: list[Applied]
    applied: list[Applied] = field(default_factory=list)  # known, applied
    pending: list[Migration] = field(default_factory=list)  # known, not applied (any target)
    unknown: list[Applied] = field(default_factory=list)  # applied, not shipped with this release
    drift: list[tuple[Migration, Applied]] = field(default_factory=list)
    conflicts: list[tuple[Migration, Applied]] = field(
        default_factory=list
    )  # same number, other name
    out_of_order: list[Migration] = field(default_factory=list)
    steps: list[Step] = field(default_factory=list)
    direction: Literal["up", "down"] = "up"

    def check(self, *, allow_data_loss: bool) -> list[str]:
        """Raise what forbids running this plan; return warnings."""
        warnings: list[str] = []
        if self.conflicts:
            detail = "; ".join(
                f"the database applied {row.name} where this release ships {m.filename}"
                for m, row in self.conflicts
            )
            raise ChecksumDrift(
                f"migration history does not match this release: {detail}",
                names=[m.filename for m, _ in self.conflicts],
            )
        if self.drift:
            names = [m.filename for m, _ in self.drift]
            raise ChecksumDrift(
                f"applied migration(s) changed since they were applied: {', '.join(names)}; "
                "restore the "
                "original file(s), or if the database already matches the new content run "
                f"`parsec-server migrate repair {self.drift[0][0].name}`",
                names=names,
            )
        if self.direction == "up" and self.unknown:
            unknown = ", ".join(f"{r.name} ({r.compat})" for r in self.unknown)
            breaking = [r for r in self.unknown if r.compat != "expand"]
            if breaking:
                raise DatabaseAhead(
                    f"the database is newer than this parsec-server {__version__}: it holds "
                    "migration(s) "
                    f"this release does not know: {unknown}; upgrade parsec-server, or revert "
                    "them with "
                    f"`parsec-server migrate --to {self._last_known():04d}`",
                    names=[r.filename for r in breaking],
                )
            if self.steps:
                raise DatabaseAhead(
                    f"the database holds newer migration(s) ({unknown}) but this release would "
                    "still "
                    f"apply {', '.join(s.filename for s in self.steps)}: refusing to apply out of "
                    "order",
                    names=[r.filename for r in self.unknown],
                )
            warnings.append(
                f"the database schema is newer than this parsec-server {__version__} but declared "
                "compatible "
                f"with it: {unknown}"
            )
        ooo = [s for s in self.steps if s.direction == "up" and s.migration in self.out_of_order]
        if ooo:
            raise MigrationFailed(
                f"{', '.join(s.filename for s in ooo)} would be applied after later migrations "
                "already "
                "applied: out-of-order migrations are not supported (renumber the file after the "
                "last "
                "applied one)"
            )
        missing = [s for s in self.steps if s.direction == "down" and s.script is None]
        if missing:
            raise MigrationFailed(
                f"cannot revert {', '.join(s.name for s in missing)}: no down migration is "
                "available"
            )
        lossy = [s for s in self.steps if s.direction == "down" and s.data_loss]
        if lossy and not allow_data_loss:
            raise DataLossRefused(
                f"reverting {', '.join(s.filename for s in lossy)} would discard data: refused "
                "without "
                "--allow-data-loss (take a backup first)",
                names=[s.filename for s in lossy],
            )
        return warnings

    def _last_known(self) -> int:
        return self.migrations[-1].index if self.migrations else 0


def _stored_down(row: Applied) -> Script | None:
    if not row.down_sql:
        return None
    filename = f"{row.name}.down.sql"
    try:
        header = Header.parse(row.down_sql, filename)
    except InvalidMigrations:
        header = Header()
    return Script(
        index=row.number,
        name=row.name,
        filename=filename,
        sql=row.down_sql,
        checksum=checksum(row.down_sql),
        header=header,
    )


def make_plan(migrations: list[Migration], rows: list[Applied], target: int | None) -> Plan:
    plan = Plan(migrations=migrations, history=rows)
    by_number = {m.index: m for m in migrations}
    for row in rows:
        m = by_number.get(row.number)
        if m is None:
            plan.unknown.append(row)
        elif m.name != row.name:
            plan.conflicts.append((m, row))
        else:
            plan.applied.append(row)
            if m.checksum != row.checksum:
                plan.drift.append((m, row))
    done = {r.number for r in rows}
    plan.pending = [m for m in migrations if m.index not in done]
    top = max(done, default=0)
    plan.out_of_order = [m for m in plan.pending if m.index < top]
    latest = migrations[-1].index if migrations else 0
    if target is not None and target > max(latest, top):
        raise BadTarget(f"--to {target:04d}: no such migration (the latest is {latest:04d})")
    if target is None or target >= top:
        goal = latest if target is None else target
        plan.steps = [Step("up", m.index, m.name, m, m) for m in plan.pending if m.index <= goal]
    else:
        plan.direction = "down"
        for row in sorted(rows, key=lambda r: r.number, reverse=True):
            if row.number <= target:
                break
            m = by_number.get(row.number)
            if m is not None and m.name == row.name:
                script, loss = m.down, m.down_data_loss
            else:
                m, script, loss = None, _stored_down(row), row.down_data_loss
            plan.steps.append(Step("down", row.number, row.name, script, m, data_loss=loss))
    return plan
