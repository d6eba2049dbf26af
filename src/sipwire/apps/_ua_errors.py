"""The exceptions of :class:`sipwire.UserAgent` and :class:`sipwire.Call`.

Every one is a :class:`UserAgentError`; the message reads as a sentence a user can act
on ("wrong password for alice@example.test", "no response from 127.0.0.1:5060 (udp)
within 32 s"), and the attributes carry the details for programs.
"""

from __future__ import annotations

__all__ = [
    "AuthenticationError",
    "CallFailed",
    "NoResponseError",
    "RegistrationError",
    "UserAgentError",
]


class UserAgentError(Exception):
    """Base class of the user agent's errors."""


class RegistrationError(UserAgentError):
    """The registrar refused our REGISTER with ``status`` (not an authentication
    problem: see :class:`AuthenticationError`)."""

    def __init__(self, message: str, *, status: int | None = None, reason: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason


class AuthenticationError(RegistrationError):
    """Our credentials were refused (401/407 again after answering a challenge, or 403),
    or a server asked for credentials we do not have."""


class NoResponseError(UserAgentError, TimeoutError):
    """A request got no response at all (RFC 3261 Timer B/F: 64*T1), or could not be
    sent (no route, connection refused).  ``server`` is ``host:port (transport)``."""

    def __init__(self, message: str, *, server: str = "", method: str = "") -> None:
        super().__init__(message)
        self.server = server
        self.method = method


class CallFailed(UserAgentError):
    """A call ended before it was answered: ``status`` is the final response (486 Busy
    Here, 603 Decline, 404 Not Found, 480, 487 after a CANCEL...) or None when it never
    got one.  Raised by :meth:`Call.wait_answered`."""

    def __init__(
        self, status: int | None, reason: str, *, uri: str = "", incoming: bool = False
    ) -> None:
        where = f" {'from' if incoming else 'to'} {uri}" if uri else ""
        text = f"{status} {reason}" if status is not None else reason
        super().__init__(f"call{where} failed: {text}")
        self.status = status
        self.reason = reason
        self.uri = uri
