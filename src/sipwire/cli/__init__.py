"""The ``sipwire`` command line.

Each sub-command lives in its own module ``sipwire.cli._<name>`` which defines::

    HELP: str                                     # one line for ``sipwire --help``
    def configure(parser: argparse.ArgumentParser) -> None: ...
    def run(args: argparse.Namespace) -> int: ...  # the exit status

Heavy imports (asyncio, the servers) belong inside ``run`` so ``sipwire --help`` and
``sipwire parse`` stay fast. Errors the user can fix are reported as one clear line on
stderr with a non-zero exit status, never as a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from types import ModuleType

__all__ = ["COMMANDS", "main"]

# Sub-command name -> module. Order is the order of ``sipwire --help``.
COMMANDS: dict[str, str] = {
    "serve": "sipwire.cli._serve",
    "user": "sipwire.cli._user",
    "options": "sipwire.cli._options",
    "uas": "sipwire.cli._uas",
    "call": "sipwire.cli._call",
    "phone": "sipwire.cli._phone",
    "parse": "sipwire.cli._parse",
}


def _load(module_name: str) -> ModuleType | None:
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:  # a command not built yet
        if exc.name == module_name:
            return None
        raise


def build_parser() -> argparse.ArgumentParser:
    from sipwire import __version__

    parser = argparse.ArgumentParser(
        prog="sipwire", description="sipwire: SIP stack, servers and user agents."
    )
    parser.add_argument("--version", action="version", version=f"sipwire {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module_name in COMMANDS.items():
        module = _load(module_name)
        if module is None:
            continue
        cmd = sub.add_parser(name, help=module.HELP, description=module.HELP)
        module.configure(cmd)
        cmd.set_defaults(_run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    raw = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(raw)
    args._argv = raw  # e.g. for `sipwire serve --workers N` to start its workers
    run = getattr(args, "_run", None)
    if run is None:
        parser.print_help()
        return 2
    try:
        status: int = run(args)
    except KeyboardInterrupt:
        return 130
    return status


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
