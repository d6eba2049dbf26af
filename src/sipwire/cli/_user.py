"""``sipwire user add|list|remove``: manage the accounts ``sipwire serve`` authenticates.

Users live in the server's database (SQLite, ``--db``, default ``./sipwire.db``), one
realm per domain (``--domain``, default ``localhost``; the defaults of ``sipwire serve``).
``add`` stores ``H(user:realm:password)`` for MD5, SHA-256 and SHA-512-256 (RFC 7616
§3.4.2, §5.2), never the password; ``--password -`` reads it from stdin (the first line),
so it stays out of the shell history and ``ps``. The database runs in WAL mode, so this
works while a server is running; the server sees the change on the next request.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from sipwire.cli._common import die

if TYPE_CHECKING:
    from sipwire.store.sqlite import SQLiteDatabase

HELP = "manage the users sipwire serve authenticates: add, list, remove"

DEFAULT_DB = "./sipwire.db"
DEFAULT_DOMAIN = "localhost"

# Characters that cannot appear in a Digest username we store: they break the HA1 input
# (``:``), the AOR (``@``) or header syntax.
_BAD_USER_CHARS = frozenset(':@;?<>",\\ \t\r\n')


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--domain",
        default=DEFAULT_DOMAIN,
        help=f"the domain, which is also the Digest realm (default {DEFAULT_DOMAIN})",
    )
    parser.add_argument(
        "--db", default=DEFAULT_DB, metavar="PATH", help=f"database file (default {DEFAULT_DB})"
    )


def configure(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    add = sub.add_parser("add", help="add a user or change its password")
    add.add_argument("name", help="user name (the user part of sip:NAME@DOMAIN)")
    add.add_argument(
        "--password",
        metavar="PW",
        help="the password; '-' reads it from stdin; prompted for when omitted on a terminal",
    )
    _common(add)
    lst = sub.add_parser("list", help="list users and their stored algorithms")
    lst.add_argument("--domain", help="only this domain (default: every domain in the database)")
    lst.add_argument(
        "--db", default=DEFAULT_DB, metavar="PATH", help=f"database file (default {DEFAULT_DB})"
    )
    lst.add_argument("--show-hashes", action="store_true", help="print the HA1 hashes too")
    rm = sub.add_parser("remove", help="remove a user")
    rm.add_argument("name")
    _common(rm)


def _check_name(name: str) -> str | None:
    if not name:
        return "the user name is empty"
    if any(c in _BAD_USER_CHARS or ord(c) < 0x20 or ord(c) == 0x7F for c in name):
        return f'bad user name {name!r}: no spaces, control characters or :@;?<>",\\'
    return None


def _read_password(args: argparse.Namespace) -> str | int:
    """The password, or an exit status after printing why not."""
    if args.password == "-":
        line = sys.stdin.readline()
        password = line[:-1] if line.endswith("\n") else line
        password = password.removesuffix("\r")
    elif args.password is not None:
        password = args.password
    elif sys.stdin.isatty():
        import getpass

        password = getpass.getpass(f"Password for {args.name}@{args.domain}: ")
        if getpass.getpass("Again: ") != password:
            return die("user", "the passwords differ")
    else:
        return die("user", "give --password PW, or --password - to read it from stdin", 2)
    if not password:
        return die("user", "the password is empty", 2)
    if any(c in "\r\n\x00" for c in password):
        return die("user", "the password contains a line break or NUL", 2)
    return password


def run(args: argparse.Namespace) -> int:
    from sipwire.apps.auth import normalize_domain
    from sipwire.core._errors import LocalProtocolError

    if args.domain is not None:
        try:
            args.domain = normalize_domain(args.domain)
        except LocalProtocolError as exc:
            return die("user", str(exc), 2)
    if args.action in ("add", "remove"):
        problem = _check_name(args.name)
        if problem:
            return die("user", problem, 2)
    password: str | None = None
    if args.action == "add":
        got = _read_password(args)
        if isinstance(got, int):
            return got
        password = got
    elif args.action == "list":
        from pathlib import Path

        if args.db != ":memory:" and not Path(args.db).exists():
            print(f"sipwire user: no database at {args.db} (no users yet)", file=sys.stderr)
            return 0
    import asyncio

    try:
        return asyncio.run(_main(args, password))
    except KeyboardInterrupt:
        return 130


async def _main(args: argparse.Namespace, password: str | None) -> int:
    from sipwire.store import StoreError
    from sipwire.store.sqlite import SQLiteDatabase

    db = SQLiteDatabase(args.db)
    try:
        try:
            await db.open()
            if args.action == "add":
                assert password is not None
                return await _add(db, args.name, args.domain, password)
            if args.action == "list":
                return await _list(db, args.domain, show_hashes=args.show_hashes)
            return await _remove(db, args.name, args.domain)
        finally:
            await db.close()
    except StoreError as exc:
        # StoreError reads "PATH: sqlite message".
        return die("user", f"cannot use the database {exc}")
    except OSError as exc:
        return die("user", f"cannot open {args.db}: {exc.strerror or exc}")


async def _add(db: SQLiteDatabase, name: str, domain: str, password: str) -> int:
    from sipwire.core.digest import ha1_table
    from sipwire.store import UserRecord

    existed = await db.users.get_user(name, domain) is not None
    record = UserRecord(username=name, domain=domain, ha1=ha1_table(name, domain, password))
    await db.users.put_user(record)
    verb = "updated" if existed else "added"
    print(f"{verb} sip:{name}@{domain} ({', '.join(sorted(record.ha1))})")
    return 0


async def _list(db: SQLiteDatabase, domain: str | None, *, show_hashes: bool) -> int:
    records = await db.users.list_users(domain)
    for r in records:
        line = f"sip:{r.username}@{r.domain}  {','.join(sorted(r.ha1))}"
        print(line)
        if show_hashes:
            for algorithm, value in sorted(r.ha1.items()):
                print(f"    {algorithm}: {value}")
    if not records:
        where = f" in {domain}" if domain else ""
        print(f"sipwire user: no users{where}", file=sys.stderr)
    return 0


async def _remove(db: SQLiteDatabase, name: str, domain: str) -> int:
    if not await db.users.remove_user(name, domain):
        return die("user", f"no user sip:{name}@{domain} in {db.path}")
    print(f"removed sip:{name}@{domain}")
    return 0
