"""``sipwire user add|list|remove``: HA1s only (never the password), stdin passwords, the
defaults shared with ``sipwire serve``, clear errors; and an added user really
authenticates through :class:`sipwire.apps.auth.Authenticator` on the same database."""

from __future__ import annotations

import asyncio
import io
import pathlib
import sqlite3
import subprocess
import sys

import pytest

from sipwire.aio.transport import Source
from sipwire.apps.auth import Authenticator
from sipwire.cli import main
from sipwire.core.digest import Algorithm, Challenge, Credentials, compute_response, ha1
from sipwire.core.message import Request
from sipwire.store import UserRecord
from sipwire.store.sqlite import SQLiteDatabase


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    status = main(["user", *argv])
    out, err = capsys.readouterr()
    return status, out, err


def rows(db: pathlib.Path) -> list[tuple[str, str, str]]:
    with sqlite3.connect(db) as conn:
        return [tuple(r) for r in conn.execute("SELECT username, domain, ha1 FROM users")]


def test_add_stores_three_ha1s_and_never_the_password(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "s.db"
    status, out, _ = run(["add", "alice", "--password", "pw-Xq93", "--db", str(db)], capsys)
    assert status == 0
    assert out == "added sip:alice@localhost (MD5, SHA-256, SHA-512-256)\n"
    records = asyncio.run(_users(db))
    assert len(records) == 1
    record = records[0]
    assert (record.username, record.domain) == ("alice", "localhost")
    assert record.ha1 == {
        a.value: ha1("alice", "localhost", "pw-Xq93", a)
        for a in (Algorithm.MD5, Algorithm.SHA_256, Algorithm.SHA_512_256)
    }
    for path in tmp_path.iterdir():  # the database and its WAL files
        assert b"pw-Xq93" not in path.read_bytes(), path


async def _users(db: pathlib.Path) -> list[UserRecord]:
    async with SQLiteDatabase(db) as database:
        return list(await database.users.list_users())


def test_add_again_updates_the_password(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = str(tmp_path / "s.db")
    run(["add", "bob", "--password", "one", "--db", db, "--domain", "Example.COM"], capsys)
    status, out, _ = run(
        ["add", "bob", "--password", "two", "--db", db, "--domain", "example.com"], capsys
    )
    assert status == 0 and out.startswith("updated sip:bob@example.com")
    ((user, domain, _),) = rows(pathlib.Path(db))
    assert (user, domain) == ("bob", "example.com")


def test_password_from_stdin(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "s.db"
    monkeypatch.setattr(sys, "stdin", io.StringIO("from stdin pw\nignored second line\n"))
    status, out, _ = run(["add", "carol", "--password", "-", "--db", str(db)], capsys)
    assert status == 0, out
    (record,) = asyncio.run(_users(db))
    assert record.ha1["MD5"] == ha1("carol", "localhost", "from stdin pw")


def test_password_from_stdin_in_a_real_process(tmp_path: pathlib.Path) -> None:
    db = tmp_path / "s.db"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "sipwire",
            "user",
            "add",
            "dave",
            "--password",
            "-",
            "--db",
            str(db),
        ],
        input="s3cret\r\n",
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    (record,) = asyncio.run(_users(db))
    assert record.ha1["SHA-256"] == ha1("dave", "localhost", "s3cret", Algorithm.SHA_256)


def test_list_shows_names_and_algorithms_not_hashes(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = str(tmp_path / "s.db")
    run(["add", "alice", "--password", "a", "--db", db], capsys)
    run(["add", "bob", "--password", "b", "--db", db, "--domain", "example.com"], capsys)
    status, out, _ = run(["list", "--db", db], capsys)
    assert status == 0
    assert out.splitlines() == [
        "sip:bob@example.com  MD5,SHA-256,SHA-512-256",
        "sip:alice@localhost  MD5,SHA-256,SHA-512-256",
    ]
    assert ha1("alice", "localhost", "a") not in out
    status, out, _ = run(["list", "--db", db, "--domain", "localhost", "--show-hashes"], capsys)
    assert status == 0
    assert out.splitlines()[0] == "sip:alice@localhost  MD5,SHA-256,SHA-512-256"
    assert f"    MD5: {ha1('alice', 'localhost', 'a')}" in out.splitlines()
    assert "bob" not in out


def test_list_without_a_database_creates_nothing(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "none.db"
    status, out, err = run(["list", "--db", str(db)], capsys)
    assert (status, out) == (0, "")
    assert "no database" in err and not db.exists()


def test_remove(tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = str(tmp_path / "s.db")
    run(["add", "alice", "--password", "a", "--db", db], capsys)
    status, out, err = run(["remove", "bob", "--db", db], capsys)
    assert status == 1 and out == ""
    assert err == f"sipwire user: no user sip:bob@localhost in {db}\n"
    status, out, _ = run(["remove", "alice", "--db", db], capsys)
    assert (status, out) == (0, "removed sip:alice@localhost\n")
    assert rows(pathlib.Path(db)) == []


def test_defaults_are_localhost_and_sipwire_db_in_the_current_directory(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    status, out, _ = run(["add", "alice", "--password", "a"], capsys)
    assert status == 0 and "sip:alice@localhost" in out
    assert (tmp_path / "sipwire.db").exists()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["add", "a b", "--password", "x"], "bad user name"),
        (["add", "al:ice", "--password", "x"], "bad user name"),
        (["add", "alice", "--password", ""], "the password is empty"),
        (["add", "alice", "--password", "x", "--domain", "a b"], "bad domain"),
    ],
)
def test_bad_input_is_refused_with_status_2(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    status, _, err = run([*argv, "--db", str(tmp_path / "s.db")], capsys)
    assert status == 2 and message in err
    assert not (tmp_path / "s.db").exists()


def test_no_password_and_no_terminal_is_an_error(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    status, _, err = run(["add", "alice", "--db", str(tmp_path / "s.db")], capsys)
    assert status == 2 and "--password -" in err


def test_unusable_database_paths_give_one_clear_line(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    status, out, err = run(
        ["add", "alice", "--password", "x", "--db", str(blocker / "x.db")], capsys
    )
    assert status == 1 and out == ""
    assert err.startswith("sipwire user: cannot open ") and "Traceback" not in err
    assert len(err.splitlines()) == 1
    status, _, err = run(["add", "alice", "--password", "x", "--db", str(tmp_path)], capsys)
    assert status == 1 and err.startswith("sipwire user: cannot use the database ")
    assert "unable to open database file" in err
    notdb = tmp_path / "garbage.db"
    notdb.write_bytes(b"this is not an SQLite database at all" * 100)
    status, _, err = run(["list", "--db", str(notdb)], capsys)
    assert status == 1 and "not a database" in err


def test_added_user_authenticates_against_the_same_database(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "s.db"
    run(["add", "alice", "--password", "wonder", "--db", str(db), "--domain", "sip.test"], capsys)
    assert asyncio.run(_register(db, "wonder")) is True
    assert asyncio.run(_register(db, "wrong")) is False


async def _register(db: pathlib.Path, password: str) -> bool:
    source = Source(transport="UDP", remote=("192.0.2.1", 5060), local=("127.0.0.1", 5060))
    async with SQLiteDatabase(db) as database:
        auth = Authenticator(database.users, domains=["sip.test"])
        request = Request(
            "REGISTER",
            "sip:sip.test",
            [
                ("Via", "SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK-1"),
                ("From", "<sip:alice@sip.test>;tag=1"),
                ("To", "<sip:alice@sip.test>"),
                ("Call-ID", "c1"),
                ("CSeq", "1 REGISTER"),
            ],
        )
        first = await auth.check(request, source, proxy=False)
        ch = Challenge.parse(first.headers[0][1])
        assert ch.algorithm == "SHA-256" and ch.nonce is not None
        stored = ha1("alice", "sip.test", password, Algorithm.SHA_256)
        response = compute_response(
            ha1=stored,
            algorithm=Algorithm.SHA_256,
            nonce=ch.nonce,
            method="REGISTER",
            uri="sip:sip.test",
            qop="auth",
            nc="00000001",
            cnonce="abc",
        )
        creds = Credentials.digest(
            username="alice",
            realm="sip.test",
            nonce=ch.nonce,
            uri="sip:sip.test",
            response=response,
            algorithm="SHA-256",
            cnonce="abc",
            qop="auth",
            nc="00000001",
        )
        request.headers.add("Authorization", str(creds))
        outcome = await auth.check(request, source, proxy=False)
        return outcome.accepted
