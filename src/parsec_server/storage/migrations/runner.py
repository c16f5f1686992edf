"""Running one step (an up or a down script) safely.

Transactional scripts run whole in one transaction with `lock_timeout` set; a lock timeout or
deadlock rolls back and retries with jittered exponential backoff, naming who blocked it.
Non-transactional scripts (`-- transaction: off`) run statement by statement with their progress
recorded, so that a rerun resumes after the statements that completed. An index that already exists
is skipped only if it is the one the statement specifies (verify.py): an INVALID one of the right
definition, left by an interrupted CREATE INDEX CONCURRENTLY, is dropped and rebuilt; anything else of
that name stops the step with SchemaConflict. Transactional files holding `CREATE INDEX IF NOT EXISTS`
run statement by statement in their transaction, for the same check. The history row
is written in the step's transaction (or right after its last statement), with the session restored
first (a script may change `search_path`).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import re
import time
from dataclasses import dataclass

import asyncpg

from parsec_server.storage.migrations import history, monitor, sqltext, verify
from parsec_server.storage.migrations.connection import connect_reason, session_defaults
from parsec_server.storage.migrations.errors import MigrationFailed, SchemaConflict
from parsec_server.storage.migrations.monitor import Emit, jsonable
from parsec_server.storage.migrations.plan import Options, Step
from parsec_server.storage.migrations.source import Script, pg_duration

_LOCK_RETRY_SQLSTATES = {"55P03", "40P01"}  # lock_not_available (lock_timeout), deadlock_detected
_CONCURRENTLY = re.compile(r"\bCONCURRENTLY\b", re.IGNORECASE)


def _verified_statements(script: Script) -> bool:
    return any(
        (ix := verify.parse_index(st)) is not None and ix.if_not_exists
        for st in script.statements()
    )


class _StatementError(Exception):
    """A statement of a transactional script run statement by statement failed."""

    def __init__(self, exc: asyncpg.PostgresError, statement: sqltext.Statement) -> None:
        super().__init__(str(exc))
        self.exc = exc
        self.statement = statement


@dataclass(slots=True)
class Runner:
    conn: asyncpg.Connection
    watch: monitor.Watch
    options: Options
    emit: Emit
    search_path: str

    def _timeouts(
        self, script: Script, statement: sqltext.Statement | None = None
    ) -> tuple[float | None, float | None]:
        lock = script.lock_timeout
        if lock is None and not (statement and _CONCURRENTLY.search(statement.code)):
            lock = self.options.lock_timeout
        # CONCURRENTLY statements take no lock that blocks reads or writes: they may wait (for old
        # transactions to finish) without a lock_timeout, unless the header asks for one.
        return lock, script.statement_timeout

    def _retries(self, script: Script) -> int:
        return script.lock_retries if script.lock_retries is not None else self.options.lock_retries

    async def _backoff(
        self, step: Step, attempt: int, retries: int, exc: asyncpg.PostgresError
    ) -> None:
        delay = min(10.0, 0.2 * 2 ** (attempt - 1)) * random.uniform(0.5, 1.0)
        blocked = self.watch.last_blockers
        reason = pg_reason(exc)
        self.emit(
            {
                "event": "retry",
                "name": step.filename,
                "attempt": attempt,
                "of": retries + 1,
                "delay_s": round(delay, 2),
                "reason": reason,
                "sqlstate": exc.sqlstate,
                "blocked_by": [jsonable(b) for b in blocked],
            }
        )
        await history.event(
            self.conn,
            "retry",
            step.script,
            attempt=attempt,
            reason=reason,
            blocked_by=[b.get("pid") for b in blocked],
        )
        await asyncio.sleep(delay)

    def _failure(self, step: Step, exc: BaseException, attempts: int) -> MigrationFailed:
        if isinstance(exc, asyncpg.PostgresError):
            reason = pg_reason(exc, step.script.sql if step.script else None)
            if exc.sqlstate in _LOCK_RETRY_SQLSTATES:
                who = ", ".join(monitor.describe_blocker(b) for b in self.watch.last_blockers)
                reason += f" (gave up after {attempts} attempt(s)" + (
                    f"; blocked by {who})" if who else ")"
                )
            return MigrationFailed(reason, migration=step.filename, sqlstate=exc.sqlstate)
        return MigrationFailed(
            f"lost the database connection ({connect_reason(exc)})", migration=step.filename
        )

    async def run(self, step: Step) -> tuple[int, int]:
        """Run one step; return (duration_ms, attempts). Raise MigrationFailed (already
        reported)."""
        assert step.script is not None
        self.watch.start(step.filename)
        started = time.monotonic()
        try:
            if step.script.transactional:
                attempts = await self._run_transactional(step, started)
            else:
                attempts = await self._run_statements(step, started)
        finally:
            self.watch.pause()
            with contextlib.suppress(Exception):
                await session_defaults(self.conn)
        return int((time.monotonic() - started) * 1000), attempts

    async def _run_transactional(self, step: Step, started: float) -> int:
        script = step.script
        assert script is not None
        retries = self._retries(script)
        attempt = 0
        while True:
            attempt += 1
            lock, stmt = self._timeouts(script)
            try:
                async with self.conn.transaction():
                    if lock is not None:
                        await self.conn.execute(f"SET LOCAL lock_timeout = '{pg_duration(lock)}'")
                    if stmt is not None:
                        await self.conn.execute(
                            f"SET LOCAL statement_timeout = '{pg_duration(stmt)}'"
                        )
                    if _verified_statements(script):
                        await self._execute_verified(step)
                    else:
                        await self.conn.execute(script.sql)
                    await self._restore_session()
                    await self._record(step, int((time.monotonic() - started) * 1000), attempt)
                return attempt
            except SchemaConflict as conflict:
                await self._conflict_event(step, conflict)
                raise
            except (asyncpg.PostgresError, _StatementError) as err:
                pg_exc, statement = (
                    (err.exc, err.statement) if isinstance(err, _StatementError) else (err, None)
                )
                if pg_exc.sqlstate in _LOCK_RETRY_SQLSTATES and attempt <= retries:
                    await self._backoff(step, attempt, retries, pg_exc)
                    continue
                raise await self._fail(step, pg_exc, attempt, statement=statement) from None
            except (OSError, asyncpg.InterfaceError) as exc:
                raise await self._fail(step, exc, attempt) from None

    async def _run_statements(self, step: Step, started: float) -> int:
        script = step.script
        assert script is not None
        statements = script.statements()
        done = await history.progress(self.conn, script)
        if done:
            self.emit(
                {
                    "event": "resume",
                    "name": step.filename,
                    "statements_done": done,
                    "of": len(statements),
                }
            )
            await history.event(self.conn, "resume", script, statements_done=done)
        retries = self._retries(script)
        attempts_total = 1
        try:
            for k in range(done, len(statements)):
                st = statements[k]
                attempt = 0
                while True:
                    attempt += 1
                    lock, stmt = self._timeouts(script, st)
                    try:
                        done_already = await self._check_index(step, st, in_transaction=False)
                        await self.conn.execute(
                            f"SET lock_timeout = '{pg_duration(lock) if lock is not None else 0}';"
                            " SET statement_timeout = "
                            f"'{pg_duration(stmt) if stmt is not None else 0}'"
                        )
                        if not done_already:
                            await self.conn.execute(st.text)
                        break
                    except asyncpg.PostgresError as exc:
                        if exc.sqlstate in _LOCK_RETRY_SQLSTATES and attempt <= retries:
                            await self._backoff(step, attempt, retries, exc)
                            continue
                        raise await self._fail(step, exc, attempt, statement=st) from None
                    except (OSError, asyncpg.InterfaceError) as exc:
                        raise await self._fail(step, exc, attempt, statement=st) from None
                attempts_total = max(attempts_total, attempt)
                own_path = await self.conn.fetchval("SELECT current_setting('search_path')")
                await self._restore_session(local=False)
                await history.save_progress(self.conn, script, k + 1)
                await self.conn.execute("SELECT set_config('search_path', $1, false)", own_path)
            async with self.conn.transaction():
                await self._restore_session()
                await self._record(step, int((time.monotonic() - started) * 1000), attempts_total)
                await history.clear_progress(self.conn, script.index)
        finally:
            with contextlib.suppress(Exception):
                await self.conn.execute("SET lock_timeout = 0; SET statement_timeout = 0")
        return attempts_total

    async def _restore_session(self, *, local: bool = True) -> None:
        """Undo what the migration's SQL set (search_path, timeouts) before writing the history."""
        await self.conn.execute(
            "SELECT set_config('search_path', $1, $2), set_config('lock_timeout', '0', $2),"
            " set_config('statement_timeout', '0', $2)",
            self.search_path,
            local,
        )

    async def _execute_verified(self, step: Step) -> None:
        """A transactional script holding `CREATE INDEX IF NOT EXISTS`: statement by statement (in
        the step's transaction), so that each such index is verified before it is skipped."""
        assert step.script is not None
        for st in step.script.statements():
            try:
                if not await self._check_index(step, st, in_transaction=True):
                    await self.conn.execute(st.text)
            except asyncpg.PostgresError as exc:
                raise _StatementError(exc, st) from exc

    async def _check_index(
        self, step: Step, st: sqltext.Statement, *, in_transaction: bool
    ) -> bool:
        """For a named CREATE INDEX: True when the index it specifies already exists (skip the
        statement). An INVALID one (interrupted CREATE INDEX CONCURRENTLY) is dropped to be built
        again; anything else of that name raises SchemaConflict (see verify.py)."""
        ix = verify.parse_index(st)
        if ix is None or not (ix.if_not_exists or not in_transaction):
            return False
        try:
            state, qualified = await verify.index_state(self.conn, ix, step.filename)
        except SchemaConflict as exc:
            if not in_transaction:  # else recorded once the step's transaction is rolled back
                await self._conflict_event(step, exc)
            raise
        if state != "invalid":
            return state == "valid"
        name = ix.name
        if not in_transaction:
            await self.conn.execute("SET lock_timeout = 0")
            await self.conn.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {qualified}")
        else:
            await self.conn.execute(f"DROP INDEX {qualified}")
        message = f"dropped invalid index {name} left by an interrupted run; building it again"
        self.emit({"event": "cleanup", "name": step.filename, "index": name, "message": message})
        await history.event(self.conn, "cleanup", step.script, index=name)
        return False

    async def _conflict_event(self, step: Step, exc: SchemaConflict) -> None:
        with contextlib.suppress(Exception):
            await history.event(
                self.conn, "fail", step.script, error=exc.message, direction=step.direction
            )

    async def _record(self, step: Step, duration_ms: int, attempts: int) -> None:
        if step.direction == "up":
            assert step.migration is not None
            await history.record_applied(
                self.conn, step.migration, duration_ms=duration_ms, attempts=attempts
            )
            await history.event(
                self.conn, "apply", step.migration, duration_ms=duration_ms, attempts=attempts
            )
        else:
            await history.record_reverted(self.conn, step.number)
            await history.event(
                self.conn, "revert", step.script, duration_ms=duration_ms, attempts=attempts
            )

    async def _fail(
        self,
        step: Step,
        exc: BaseException,
        attempts: int,
        statement: sqltext.Statement | None = None,
    ) -> MigrationFailed:
        failure = self._failure(step, exc, attempts)
        if statement is not None and isinstance(exc, asyncpg.PostgresError):
            failure = MigrationFailed(
                f"{pg_reason(exc)} (statement at line {statement.line})",
                migration=step.filename,
                sqlstate=exc.sqlstate,
            )
        with contextlib.suppress(Exception):
            await history.event(
                self.conn,
                "fail",
                step.script,
                error=failure.message,
                sqlstate=failure.sqlstate,
                attempts=attempts,
                direction=step.direction,
            )
        return failure


def pg_reason(exc: asyncpg.PostgresError, sql: str | None = None) -> str:
    text = " ".join(str(exc).split())
    position = getattr(exc, "position", None)
    if sql and position:
        with contextlib.suppress(ValueError, TypeError):
            text += f" (line {sqltext.line_of_offset(sql, int(position))})"
    if exc.sqlstate:
        text += f" [SQLSTATE {exc.sqlstate}]"
    return text
