"""Helpers shared by the CLI commands."""

from __future__ import annotations

import logging
import sys

__all__ = ["die", "setup_logging"]


def setup_logging(verbose: int) -> None:
    level = logging.WARNING if verbose <= 0 else logging.INFO if verbose == 1 else logging.DEBUG
    logging.basicConfig(
        level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )


def die(command: str, message: str, status: int = 1) -> int:
    print(f"sipwire {command}: {message}", file=sys.stderr)
    return status
