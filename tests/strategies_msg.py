"""Hypothesis strategies for whole SIP messages (built on tests/strategies.py).

``requests()`` and ``responses()`` draw messages that pass ``Message.validate``:
Via, From, To, Call-ID and CSeq (method matching the request), optionally
Max-Forwards, Contact, Route, plus arbitrary extension headers whose values may hold
any character but CR/LF (non-ASCII text, raw octets as surrogate escapes) and a binary
body.  ``messages()`` is either.
"""

from __future__ import annotations

from hypothesis import strategies as st

from sipwire.core.headers import Headers, header_key
from sipwire.core.message import Request, Response
from strategies import (
    absolute_uris,
    addresses,
    cseqs,
    hosts,
    sip_uris,
    tel_uris,
    tokens,
    uris,
    vias,
)

__all__ = ["header_values", "messages", "requests", "responses"]

_MANAGED = frozenset(
    {"via", "from", "to", "call-id", "cseq", "max-forwards", "contact", "content-length"}
)
_METHODS = ["INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "REGISTER", "SUBSCRIBE", "NOTIFY"]

# Text of header values and reason phrases: anything but CR and LF, plus lone UTF-8
# continuation octets as surrogate escapes (they cannot merge with a neighbour when
# re-decoded, so they round-trip).
_chars = st.characters(exclude_characters="\r\n", exclude_categories=["Cs"]) | st.sampled_from(
    [chr(0xDC80 + i) for i in range(0x40)]
)


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return False
    return True


# strategies.addresses() may draw lone surrogates in display names: not wire text.
_addresses = addresses().map(str).filter(_encodable)


def header_values(max_size: int = 30) -> st.SearchStrategy[str]:
    """A header value as ``Headers`` stores it: no CR/LF, no SP/HT at either end."""
    return st.text(_chars, max_size=max_size).map(lambda v: v.strip(" \t"))


def _extension_headers() -> st.SearchStrategy[list[tuple[str, str]]]:
    name = tokens(16).filter(lambda n: header_key(n) not in _MANAGED)
    return st.lists(st.tuples(name, header_values()), max_size=4)


def _call_ids() -> st.SearchStrategy[str]:
    return st.builds(
        lambda word, host: word if host is None else f"{word}@{host}",
        tokens(20),
        st.none() | hosts(),
    )


def _request_uris() -> st.SearchStrategy[str]:
    # No URI headers in a Request-URI (RFC 3261 §19.1.1 Table 1).
    return st.one_of(
        sip_uris().map(lambda u: str(u.without_headers())),
        tel_uris().map(str),
        absolute_uris().map(str),
    )


@st.composite
def _common(draw: st.DrawFn, method: str | None) -> list[tuple[str, str]]:
    rows: list[tuple[str, str]] = []
    via_rows = draw(st.lists(st.lists(vias(), min_size=1, max_size=2), min_size=1, max_size=2))
    for group in via_rows:
        rows.append((draw(st.sampled_from(["Via", "v", "VIA"])), ", ".join(map(str, group))))
    rows.append((draw(st.sampled_from(["From", "f"])), draw(_addresses)))
    rows.append((draw(st.sampled_from(["To", "t"])), draw(_addresses)))
    rows.append((draw(st.sampled_from(["Call-ID", "i"])), draw(_call_ids())))
    cseq = draw(cseqs())
    rows.append(("CSeq", f"{cseq.seq} {method or cseq.method}"))
    if draw(st.booleans()):
        rows.append(("Max-Forwards", str(draw(st.integers(0, 255)))))
    if draw(st.booleans()):
        contacts = draw(st.lists(_addresses, min_size=1, max_size=2))
        rows.append(("Contact", ", ".join(contacts)))
    if draw(st.booleans()):
        rows.append(
            ("Route", ", ".join(f"<{u}>" for u in draw(st.lists(uris(), min_size=1, max_size=2))))
        )
    rows.extend(draw(_extension_headers()))
    return draw(st.permutations(rows))


@st.composite
def requests(draw: st.DrawFn) -> Request:
    method = draw(st.sampled_from(_METHODS) | tokens())
    rows = draw(_common(method))
    body = draw(st.binary(max_size=200))
    return Request(method, draw(_request_uris()), Headers(rows), body)


@st.composite
def responses(draw: st.DrawFn) -> Response:
    rows = draw(_common(None))
    reason = draw(st.none() | st.text(_chars, max_size=20))
    body = draw(st.binary(max_size=200))
    return Response(draw(st.integers(100, 699)), reason, Headers(rows), body)


def messages() -> st.SearchStrategy[Request | Response]:
    return st.one_of(requests(), responses())
