"""SQLite stores: the embedded default of ``sipwire serve``.

One database file holds the location service (``bindings``) and the users (``users``), so
registrations and accounts survive a restart. The stdlib :mod:`sqlite3` connection lives
on one dedicated worker thread; every call is a short transaction run there, so the event
loop never blocks on disk I/O and the connection is never shared between threads.
The database runs in WAL mode, which lets ``sipwire user ...`` write while a server runs.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from sipwire.store._base import Binding, StoreError, UserRecord

__all__ = ["SQLiteDatabase", "SQLiteLocationStore", "SQLiteUserStore"]

T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS bindings (
    aor TEXT NOT NULL,
    contact TEXT NOT NULL,
    expires_at REAL NOT NULL,
    q REAL,
    call_id TEXT NOT NULL,
    cseq INTEGER NOT NULL,
    path TEXT NOT NULL,
    instance_id TEXT,
    reg_id INTEGER,
    source TEXT,
    user_agent TEXT,
    params TEXT NOT NULL,
    PRIMARY KEY (aor, contact)
);
CREATE INDEX IF NOT EXISTS bindings_expiry ON bindings (expires_at);
CREATE TABLE IF NOT EXISTS users (
    username TEXT NOT NULL,
    domain TEXT NOT NULL,
    ha1 TEXT NOT NULL,
    PRIMARY KEY (username, domain)
);
"""

_BINDING_COLUMNS = (
    "aor, contact, expires_at, q, call_id, cseq, path, instance_id, reg_id, source, "
    "user_agent, params"
)


def _binding_row(b: Binding) -> tuple[Any, ...]:
    return (
        b.aor,
        b.contact,
        b.expires_at,
        b.q,
        b.call_id,
        b.cseq,
        json.dumps(list(b.path)),
        b.instance_id,
        b.reg_id,
        b.source,
        b.user_agent,
        json.dumps([list(p) for p in b.params]),
    )


def _row_binding(row: tuple[Any, ...]) -> Binding:
    return Binding(
        aor=row[0],
        contact=row[1],
        expires_at=row[2],
        q=row[3],
        call_id=row[4],
        cseq=row[5],
        path=tuple(json.loads(row[6])),
        instance_id=row[7],
        reg_id=row[8],
        source=row[9],
        user_agent=row[10],
        params=tuple((str(k), None if v is None else str(v)) for k, v in json.loads(row[11])),
    )


class SQLiteDatabase:
    """One SQLite file, opened on a private worker thread.

    ``locations`` and ``users`` are the two stores backed by it. Use ``await db.close()``
    (or ``async with``) to flush and close.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sipwire-sqlite")
        self._conn: sqlite3.Connection | None = None
        self.locations = SQLiteLocationStore(self)
        self.users = SQLiteUserStore(self)

    def _open(self) -> sqlite3.Connection:
        if self._conn is None:
            if self.path != ":memory:":
                Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, isolation_level=None, timeout=10.0)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.executescript(_SCHEMA)
            self._conn = conn
        return self._conn

    async def run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn(connection)`` on the database thread; sqlite errors become StoreError."""

        def job() -> T:
            try:
                return fn(self._open())
            except sqlite3.Error as exc:
                raise StoreError(f"{self.path}: {exc}") from exc

        return await asyncio.get_running_loop().run_in_executor(self._executor, job)

    async def open(self) -> SQLiteDatabase:
        """Open (and create) the database now, so a bad path fails at start-up."""
        await self.run(lambda conn: None)
        return self

    async def close(self) -> None:
        def job() -> None:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

        try:
            await asyncio.get_running_loop().run_in_executor(self._executor, job)
        finally:
            self._executor.shutdown(wait=True)

    async def __aenter__(self) -> SQLiteDatabase:
        return await self.open()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


class SQLiteLocationStore:
    """The :class:`~sipwire.store.LocationStore` of a :class:`SQLiteDatabase`."""

    def __init__(self, db: SQLiteDatabase) -> None:
        self._db = db

    async def get(self, aor: str, *, now: float) -> list[Binding]:
        def job(conn: sqlite3.Connection) -> list[Binding]:
            rows = conn.execute(
                f"SELECT {_BINDING_COLUMNS} FROM bindings WHERE aor = ? AND expires_at > ? "
                "ORDER BY rowid",
                (aor, now),
            ).fetchall()
            return [_row_binding(r) for r in rows]

        return await self._db.run(job)

    async def replace(self, aor: str, bindings: list[Binding]) -> None:
        rows = [_binding_row(b) for b in bindings]

        def job(conn: sqlite3.Connection) -> None:
            with conn:
                conn.execute("BEGIN IMMEDIATE")
                conn.execute("DELETE FROM bindings WHERE aor = ?", (aor,))
                conn.executemany(
                    f"INSERT INTO bindings ({_BINDING_COLUMNS}) VALUES "
                    "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    rows,
                )

        await self._db.run(job)

    async def expire(self, now: float) -> list[Binding]:
        def job(conn: sqlite3.Connection) -> list[Binding]:
            with conn:
                conn.execute("BEGIN IMMEDIATE")
                rows = conn.execute(
                    f"SELECT {_BINDING_COLUMNS} FROM bindings WHERE expires_at <= ?", (now,)
                ).fetchall()
                conn.execute("DELETE FROM bindings WHERE expires_at <= ?", (now,))
            return [_row_binding(r) for r in rows]

        return await self._db.run(job)

    async def next_expiry(self) -> float | None:
        def job(conn: sqlite3.Connection) -> float | None:
            row = conn.execute("SELECT MIN(expires_at) FROM bindings").fetchone()
            return None if row is None or row[0] is None else float(row[0])

        return await self._db.run(job)

    async def aors(self, *, now: float, limit: int = 1000) -> list[str]:
        def job(conn: sqlite3.Connection) -> list[str]:
            rows = conn.execute(
                "SELECT DISTINCT aor FROM bindings WHERE expires_at > ? ORDER BY aor LIMIT ?",
                (now, limit),
            ).fetchall()
            return [str(r[0]) for r in rows]

        return await self._db.run(job)

    async def close(self) -> None:
        return None  # the database owns the connection


class SQLiteUserStore:
    """The :class:`~sipwire.store.UserStore` of a :class:`SQLiteDatabase`."""

    def __init__(self, db: SQLiteDatabase) -> None:
        self._db = db

    @staticmethod
    def _record(row: tuple[Any, ...]) -> UserRecord:
        ha1 = json.loads(row[2])
        return UserRecord(
            username=row[0], domain=row[1], ha1={str(k): str(v) for k, v in ha1.items()}
        )

    async def get_user(self, username: str, domain: str) -> UserRecord | None:
        def job(conn: sqlite3.Connection) -> UserRecord | None:
            row = conn.execute(
                "SELECT username, domain, ha1 FROM users WHERE username = ? AND domain = ?",
                (username, domain.lower()),
            ).fetchone()
            return None if row is None else self._record(row)

        return await self._db.run(job)

    async def put_user(self, user: UserRecord) -> None:
        def job(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT OR REPLACE INTO users (username, domain, ha1) VALUES (?, ?, ?)",
                (user.username, user.domain.lower(), json.dumps(user.ha1, sort_keys=True)),
            )

        await self._db.run(job)

    async def remove_user(self, username: str, domain: str) -> bool:
        def job(conn: sqlite3.Connection) -> bool:
            cur = conn.execute(
                "DELETE FROM users WHERE username = ? AND domain = ?", (username, domain.lower())
            )
            return cur.rowcount > 0

        return await self._db.run(job)

    async def list_users(self, domain: str | None = None) -> list[UserRecord]:
        def job(conn: sqlite3.Connection) -> list[UserRecord]:
            if domain is None:
                rows = conn.execute(
                    "SELECT username, domain, ha1 FROM users ORDER BY domain, username"
                ).fetchall()
            else:
                rows = conn.execute(
                    "SELECT username, domain, ha1 FROM users WHERE domain = ? ORDER BY username",
                    (domain.lower(),),
                ).fetchall()
            return [self._record(r) for r in rows]

        return await self._db.run(job)

    async def close(self) -> None:
        return None
