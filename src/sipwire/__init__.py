"""sipwire: a complete SIP system for Python.

The public names are re-exported here lazily so ``import sipwire`` stays cheap and the
pure core (:mod:`sipwire.core`) never pulls in the asyncio shell.
"""

from __future__ import annotations

import importlib
from typing import Any

from sipwire.core._errors import LocalProtocolError, ProtocolError, RemoteProtocolError

__version__ = "0.1.0.dev0"

# name -> module that defines it (imported on first access).
_LAZY: dict[str, str] = {
    "parse_message": "sipwire.core.message",
    "Request": "sipwire.core.message",
    "Response": "sipwire.core.message",
    "Message": "sipwire.core.message",
    "Headers": "sipwire.core.headers",
    "StreamParser": "sipwire.core.message",
    "Limits": "sipwire.core.message",
    "InvalidMessage": "sipwire.core.message",
    "KeepAlive": "sipwire.core.message",
    "SipURI": "sipwire.core.uri",
    "TelURI": "sipwire.core.uri",
    "AbsoluteURI": "sipwire.core.uri",
    "parse_uri": "sipwire.core.uri",
    "Address": "sipwire.core.address",
    "SessionDescription": "sipwire.core.sdp",
    "UserAgent": "sipwire.apps.useragent",
    "Call": "sipwire.apps.useragent",
    "CallFailed": "sipwire.apps.useragent",
    "AuthenticationError": "sipwire.apps.useragent",
    "NoResponseError": "sipwire.apps.useragent",
    "Endpoint": "sipwire.aio.endpoint",
}

__all__ = [
    "AbsoluteURI",
    "Address",
    "AuthenticationError",
    "Call",
    "CallFailed",
    "Endpoint",
    "Headers",
    "InvalidMessage",
    "KeepAlive",
    "Limits",
    "LocalProtocolError",
    "Message",
    "NoResponseError",
    "ProtocolError",
    "RemoteProtocolError",
    "Request",
    "Response",
    "SessionDescription",
    "SipURI",
    "StreamParser",
    "TelURI",
    "UserAgent",
    "__version__",
    "parse_message",
    "parse_uri",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'sipwire' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
