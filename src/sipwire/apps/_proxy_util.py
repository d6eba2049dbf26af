"""Pure helpers of the proxy (RFC 3261 §16): branch and loop hashes, best-response
selection, challenge aggregation, Record-Route values, Via and binding destinations.

Nothing here does I/O; :mod:`sipwire.apps.proxy` and :mod:`sipwire.apps._proxy_context`
use these functions.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence

from sipwire.aio._transport_common import (
    DEFAULT_PORTS,
    TRANSPORTS,
    Destination,
    format_host,
    parse_hostport,
)
from sipwire.core._errors import LocalProtocolError, RemoteProtocolError
from sipwire.core.headervalues import Via
from sipwire.core.message import Request, Response, reason_phrase

__all__ = [
    "BRANCH_PREFIX",
    "MAGIC_COOKIE",
    "aggregate_challenges",
    "best_response",
    "branch_loop_part",
    "loop_hash",
    "make_branch",
    "parse_source",
    "record_route_value",
    "response_destination",
    "stateless_key",
    "without_503",
]

MAGIC_COOKIE = "z9hG4bK"
#: Every branch this proxy writes starts with this: ``z9hG4bKsw<loop hash>.<unique>``.
BRANCH_PREFIX = MAGIC_COOKIE + "sw"

#: Within the 4xx class, responses that tell the caller how to retry come first
#: (§16.7 step 6: 401, 407, 415, 420, 484), then the most informative for a person:
#: busy, then temporarily unavailable; the rest in arrival order.
_PREFERRED_4XX: tuple[int, ...] = (401, 407, 415, 420, 484, 486, 480)


def _digest(*parts: str, size: int = 16) -> str:
    data = "\x00".join(parts).encode("utf-8", "surrogateescape")
    return hashlib.sha256(data).hexdigest()[:size]


def loop_hash(request: Request) -> str:
    """The loop-detection part of our branch (§16.6 step 8, §16.3 item 4).

    A hash of what decides how this proxy routes the request: the Request-URI (after
    §16.4), the From tag, the Call-ID, the CSeq number and the Route values. The method,
    the To tag and Proxy-Authorization are left out so that a CANCEL and the ACK of a
    non-2xx response get the same value as their INVITE (§16.6 step 8 last paragraph;
    the ACK carries the response's To tag, a CANCEL no credentials); the topmost Via is
    left out because it changes at every hop, which would hide a loop.
    """
    from_tag = request.from_.tag or ""
    return _digest(
        request.uri_text,
        from_tag,
        request.call_id,
        str(request.cseq.seq),
        *request.headers.get_all("Route"),
    )


def stateless_key(request: Request) -> str:
    """The unique part of a branch that is the same for every retransmission of a
    request, for its CANCEL and for the ACK of its non-2xx response (§16.11): a hash of
    the received topmost Via's branch and sent-by (RFC 2543 clients without a magic
    cookie: plus Call-ID, From tag and CSeq number)."""
    via = request.top_via
    branch = via.branch or ""
    sent_by = f"{via.host.lower()}:{via.port or ''}"
    if branch.startswith(MAGIC_COOKIE):
        return _digest(branch, sent_by)
    return _digest(branch, sent_by, request.call_id, request.from_.tag or "", str(request.cseq.seq))


def make_branch(loop: str, unique: str) -> str:
    return f"{BRANCH_PREFIX}{loop}.{unique}"


def branch_loop_part(branch: str | None) -> str | None:
    """The loop hash inside one of our branches, or None if it is not ours."""
    if branch is None or not branch.startswith(BRANCH_PREFIX):
        return None
    loop, sep, rest = branch[len(BRANCH_PREFIX) :].partition(".")
    return loop if sep and loop and rest else None


def _rank(response: Response, arrival: int) -> tuple[int, int, int]:
    status = response.status
    klass = status // 100
    class_rank = 0 if klass == 6 else klass  # 6xx beats everything (§16.7 step 6)
    within = len(_PREFERRED_4XX)
    if klass == 4 and status in _PREFERRED_4XX:
        within = _PREFERRED_4XX.index(status)
    elif klass == 5 and status == 503:
        within = len(_PREFERRED_4XX) + 1  # any other 5xx says more than a 503
    return (class_rank, within, arrival)


def best_response(responses: Sequence[Response]) -> Response | None:
    """§16.7 step 6: a 6xx if there is one, else the lowest response class, preferring
    within 4xx the responses listed in ``_PREFERRED_4XX``; ties go to the first one."""
    finals = [(r, i) for i, r in enumerate(responses) if r.status >= 300]
    if not finals:
        return None
    return min(finals, key=lambda pair: _rank(*pair))[0]


def aggregate_challenges(chosen: Response, responses: Iterable[Response]) -> Response:
    """§16.7 step 7: a 401/407 carries every WWW-Authenticate and Proxy-Authenticate
    value of the other 401/407 responses of the context, unmodified."""
    if chosen.status not in (401, 407):
        return chosen
    out = chosen.copy()
    for other in responses:
        if other is chosen or other.status not in (401, 407):
            continue
        for name in ("WWW-Authenticate", "Proxy-Authenticate"):
            for value in other.headers.values(name):
                if value not in out.headers.values(name):
                    out.headers.add(name, value)
    return out


def without_503(response: Response) -> Response:
    """§16.7 step 6: a 503 chosen as best becomes a 500 (the caller must not think this
    proxy is overloaded), without Retry-After."""
    if response.status != 503:
        return response
    out = response.copy()
    out.status = 500
    out.reason = reason_phrase(500)
    out.headers.remove("Retry-After")
    return out


def record_route_value(host: str, port: int, transport: str) -> str:
    """``<sip:HOST:PORT;transport=X;lr>`` for one of our listeners (§16.6 step 4)."""
    return f"<sip:{format_host(host)}:{port};transport={transport.lower()};lr>"


def parse_source(text: str | None) -> Destination | None:
    """``"UDP 192.0.2.1:5060"`` (a Binding's source) as a Destination; None if unusable."""
    if not text:
        return None
    transport, _, hostport = text.strip().partition(" ")
    transport = transport.upper()
    if transport not in TRANSPORTS or not hostport:
        return None
    try:
        host, port = parse_hostport(hostport.strip())
        return Destination(transport=transport, host=host, port=port or DEFAULT_PORTS[transport])
    except LocalProtocolError:
        return None


def response_destination(via: Via) -> Destination:
    """Where a response goes by this Via (§18.2.2, RFC 3581 §4) when no server
    transaction knows the flow: ``maddr``; else ``received`` at ``rport`` or the sent-by
    port; else the sent-by. Raises RemoteProtocolError for a transport we lack."""
    transport = via.transport.upper()
    if transport not in TRANSPORTS:
        raise RemoteProtocolError(f"cannot send a response over {via.transport}")
    default = DEFAULT_PORTS[transport]
    if via.maddr:
        host, port = via.maddr, via.port or default
    elif via.received:
        host, port = via.received, via.rport or via.port or default
    else:
        host, port = via.host, via.rport or via.port or default
    try:
        return Destination(transport=transport, host=host, port=port)
    except LocalProtocolError as exc:
        raise RemoteProtocolError(f"unusable Via for a response: {exc}") from None
