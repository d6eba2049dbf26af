"""sipwire.core: the pure, sans-IO protocol logic.

Nothing in this package performs I/O, reads the clock, sleeps, or draws random
numbers from a global source: time is an argument (``now``), randomness is
injected. ``tests/test_layering.py`` enforces that no module here imports
asyncio, socket, ssl, threading, time or random.
"""

from sipwire.core._errors import LocalProtocolError, ProtocolError, RemoteProtocolError

__all__ = ["LocalProtocolError", "ProtocolError", "RemoteProtocolError"]
