"""Location and user stores: the same behaviour from every backend."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from sipwire.store import Binding, LocationStore, StoreError, UserRecord, UserStore
from sipwire.store.memory import MemoryLocationStore, MemoryUserStore
from sipwire.store.sqlite import SQLiteDatabase


def binding(aor: str, contact: str, expires_at: float, **kw: object) -> Binding:
    return Binding(aor=aor, contact=contact, expires_at=expires_at, **kw)  # type: ignore[arg-type]


@pytest.fixture(params=["memory", "sqlite"])
async def stores(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[tuple[LocationStore, UserStore]]:
    if request.param == "memory":
        yield MemoryLocationStore(), MemoryUserStore()
    else:
        db = await SQLiteDatabase(tmp_path / "sipwire.db").open()
        try:
            yield db.locations, db.users
        finally:
            await db.close()


async def test_replace_get_and_expiry(stores: tuple[LocationStore, UserStore]) -> None:
    loc, _ = stores
    aor = "sip:alice@example.test"
    b1 = binding(
        aor,
        "sip:alice@192.0.2.1:5060",
        100.0,
        q=0.5,
        call_id="c1",
        cseq=3,
        path=("<sip:edge.example.test;lr>",),
        instance_id='"<urn:uuid:1>"',
        reg_id=1,
        params=(("+sip.instance", '"<urn:uuid:1>"'), ("x", None)),
    )
    b2 = binding(aor, "sip:alice@192.0.2.2:5062;transport=tcp", 200.0)
    await loc.replace(aor, [b1, b2])
    assert await loc.get(aor, now=50.0) == [b1, b2]
    assert await loc.next_expiry() == 100.0
    assert await loc.aors(now=50.0) == [aor]
    # At t=150 only the second binding is current; expire() removes and returns the first.
    assert await loc.get(aor, now=150.0) == [b2]
    assert await loc.expire(150.0) == [b1]
    assert await loc.next_expiry() == 200.0
    assert await loc.expire(250.0) == [b2]
    assert await loc.get(aor, now=0.0) == []
    assert await loc.next_expiry() is None
    assert await loc.aors(now=0.0) == []


async def test_replace_with_empty_list_removes_aor(stores: tuple[LocationStore, UserStore]) -> None:
    loc, _ = stores
    await loc.replace("sip:a@x", [binding("sip:a@x", "sip:a@1.2.3.4", 10.0)])
    await loc.replace("sip:b@x", [binding("sip:b@x", "sip:b@1.2.3.4", 20.0)])
    await loc.replace("sip:a@x", [])
    assert await loc.get("sip:a@x", now=0.0) == []
    assert await loc.aors(now=0.0) == ["sip:b@x"]


async def test_users(stores: tuple[LocationStore, UserStore]) -> None:
    _, users = stores
    alice = UserRecord(username="alice", domain="example.test", ha1={"MD5": "ab", "SHA-256": "cd"})
    await users.put_user(alice)
    await users.put_user(UserRecord(username="bob", domain="other.test", ha1={"MD5": "ef"}))
    assert await users.get_user("alice", "EXAMPLE.test") == alice
    assert await users.get_user("Alice", "example.test") is None  # user part is case-sensitive
    assert [u.username for u in await users.list_users()] == ["alice", "bob"]
    assert [u.username for u in await users.list_users("other.test")] == ["bob"]
    assert await users.remove_user("alice", "example.test") is True
    assert await users.remove_user("alice", "example.test") is False
    assert await users.get_user("alice", "example.test") is None


async def test_sqlite_survives_restart(tmp_path: Path) -> None:
    path = tmp_path / "db" / "sipwire.db"
    async with SQLiteDatabase(path) as db:
        await db.locations.replace("sip:a@x", [binding("sip:a@x", "sip:a@1.2.3.4", 1e12)])
        await db.users.put_user(UserRecord(username="a", domain="x", ha1={"MD5": "00"}))
    async with SQLiteDatabase(path) as db:
        assert [b.contact for b in await db.locations.get("sip:a@x", now=0.0)] == ["sip:a@1.2.3.4"]
        assert (await db.users.get_user("a", "x")) is not None


async def test_sqlite_bad_path_is_a_store_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    db = SQLiteDatabase(blocker / "sub" / "sipwire.db")
    with pytest.raises((StoreError, OSError)):
        await db.open()
    await db.close()


async def test_sqlite_corrupt_file_is_a_store_error(tmp_path: Path) -> None:
    path = tmp_path / "sipwire.db"
    path.write_bytes(b"this is not a database" * 100)
    db = SQLiteDatabase(path)
    with pytest.raises(StoreError):
        await db.open()
    await db.close()
