"""Transaction matching keys (RFC 3261 §17.1.3, §17.2.3, §9.2, §8.2.2.2).

Each function reads only the headers matching needs (top Via, CSeq, Call-ID, From/To
tags, Request-URI); the message parses them lazily.  Headers that are missing or
malformed raise :class:`~sipwire.core._errors.RemoteProtocolError` (status 400) from
the message's own accessors, before the layer changes any state.
"""

from __future__ import annotations

from collections.abc import Hashable

from sipwire.core._errors import LocalProtocolError, RemoteProtocolError
from sipwire.core._txn_types import MAGIC_COOKIE, ClientKey, LegacyServerKey, ServerKey
from sipwire.core.headervalues import Via
from sipwire.core.message import Request, Response

__all__ = [
    "client_key_for_request",
    "client_key_for_response",
    "has_magic_cookie",
    "legacy_ack_key",
    "merge_key",
    "sent_by",
    "server_key",
]


def has_magic_cookie(branch: str | None) -> bool:
    """True when ``branch`` was made by an RFC 3261 client (§8.1.1.7)."""
    return branch is not None and branch.startswith(MAGIC_COOKIE) and len(branch) > 7


def sent_by(via: Via) -> tuple[str, int | None]:
    """The sent-by of ``via`` with the host case-folded (§20.42, §19.1.4)."""
    return (via.host.lower(), via.port)


def _via_key(via: Via) -> Hashable:
    """The top Via for RFC 2543 matching: protocol, sent-by and branch (if any)."""
    return (via.transport.upper(), via.host.lower(), via.port, via.branch)


def _seq_and_method(message: Request | Response) -> tuple[int, str]:
    cseq = message.cseq
    return cseq.seq, cseq.method


def client_key_for_request(request: Request) -> ClientKey:
    """The key of the client transaction ``request`` creates; the TU must have put a
    Via with a magic-cookie branch on top (§8.1.1.7, §17.1.3)."""
    try:
        via = request.top_via
    except RemoteProtocolError as exc:
        raise LocalProtocolError(
            f"the request needs a Via with new_branch(): {exc.reason}"
        ) from None
    branch = via.branch
    if branch is None or not has_magic_cookie(branch):
        raise LocalProtocolError(
            f"the top Via branch {branch!r} lacks the magic cookie {MAGIC_COOKIE!r}"
        )
    return ClientKey(branch, request.method)


def client_key_for_response(response: Response) -> ClientKey | None:
    """§17.1.3: top-Via branch + CSeq method; None if no client transaction can match."""
    branch = response.top_via.branch
    _, method = _seq_and_method(response)
    if branch is None or not has_magic_cookie(branch):
        return None
    return ClientKey(branch, method)


def _tags(request: Request) -> tuple[str | None, str | None]:
    return request.from_.tag, request.to.tag


def _call_id(request: Request) -> str:
    return request.call_id


def server_key(request: Request, method: str | None = None) -> ServerKey | LegacyServerKey:
    """§17.2.3: the key a server transaction for ``request`` has.

    ``method`` overrides the request's method: ``"INVITE"`` finds the INVITE server
    transaction an ACK or a CANCEL refers to (§17.2.3, §9.2).
    """
    via = request.top_via
    seq, _ = _seq_and_method(request)
    method = method or request.method
    branch = via.branch
    if branch is not None and has_magic_cookie(branch):
        return ServerKey(branch, (via.host.lower(), via.port), method)
    from_tag, to_tag = _tags(request)
    return LegacyServerKey(
        request_uri=request.uri,
        to_tag=to_tag,
        from_tag=from_tag,
        call_id=_call_id(request),
        cseq=seq,
        method=method,
        via=_via_key(via),
    )


def legacy_ack_key(request: Request) -> Hashable:
    """§17.2.3, RFC 2543 ACK: Request-URI, From tag, Call-ID, CSeq number, top Via.

    The To tag is compared separately with the tag of the response the INVITE server
    transaction sent.
    """
    via = request.top_via
    seq, _ = _seq_and_method(request)
    from_tag, _ = _tags(request)
    return ("2543-ack", request.uri, from_tag, _call_id(request), seq, _via_key(via))


def merge_key(request: Request) -> Hashable:
    """§8.2.2.2: From tag, Call-ID and CSeq (number and method)."""
    seq, method = _seq_and_method(request)
    from_tag, _ = _tags(request)
    return ("merge", from_tag, _call_id(request), seq, method)
