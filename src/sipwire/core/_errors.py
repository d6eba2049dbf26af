"""The two error kinds of sipwire (DESIGN rule 7).

* :class:`RemoteProtocolError` -- the peer sent something malformed. It carries
  ``status_hint``, the SIP status a server should answer with (400, 416, 420, 483,
  505, 513, ...), and a human-readable ``reason`` that goes into the reason phrase
  or a Warning header.  Bad input from the network never raises anything else.
* :class:`LocalProtocolError` -- the caller misused the API (e.g. building a CANCEL
  for a non-INVITE, sending a second final response).
"""

from __future__ import annotations

__all__ = ["LocalProtocolError", "ProtocolError", "RemoteProtocolError"]


class ProtocolError(Exception):
    """Base class of both sipwire error kinds."""

    def __init__(self, reason: str, status_hint: int = 400) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status_hint = status_hint

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.reason!r}, status_hint={self.status_hint})"


class RemoteProtocolError(ProtocolError):
    """The remote peer sent malformed or unacceptable input.

    ``status_hint`` is the response code RFC 3261 asks a server to answer with:
    400 Bad Request by default, 505 for an unknown SIP version (§8.2.1 / RFC 4475
    3.1.2.16), 513 for an oversized message (§18.1.1/§21.5.11), 416 for an
    unsupported URI scheme (§8.2.2.1), 420 for an unsupported extension.
    """


class LocalProtocolError(ProtocolError):
    """The caller used the API in a way the protocol does not allow."""

    def __init__(self, reason: str, status_hint: int = 500) -> None:
        super().__init__(reason, status_hint)
