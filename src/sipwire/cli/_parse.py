"""``sipwire parse FILE|-``: parse one SIP message and pretty-print it, decoded.

The file is read as one datagram (RFC 3261 §18.3: without Content-Length the body is
the rest); ``--stream`` frames it as a TCP stream instead (Content-Length required,
several messages and CRLF keep-alives allowed).  The output shows the start line, every
header row as written, and under the rows that have a typed meaning their decoded
value (Via transport/sent-by/branch, From/To URI and tag, CSeq, Contact URI/expires/q,
Route URIs, integers...), then a body summary.

Exit status: 0 parsed; 1 malformed -- one line on stderr,
``sipwire parse: malformed message: <reason> (would answer <status>)``; 2 the file
cannot be read.
"""

from __future__ import annotations

import argparse
import pathlib
import sys
from collections.abc import Callable

from sipwire.core._errors import RemoteProtocolError
from sipwire.core.address import Address, parse_contact
from sipwire.core.headers import header_key
from sipwire.core.headervalues import (
    ContentType,
    CSeq,
    Via,
    parse_content_length,
    parse_expires,
    parse_max_forwards,
)
from sipwire.core.message import (
    KeepAlive,
    Request,
    Response,
    StreamParser,
    parse_message,
)
from sipwire.core.uri import URI, SipURI, TelURI

__all__ = ["HELP", "configure", "render", "run"]

HELP = "parse a SIP message from a file (or - for stdin) and pretty-print it"

_BODY_PREVIEW_LINES = 12
_BODY_PREVIEW_OCTETS = 32


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", metavar="FILE", help="the message, or - to read stdin")
    parser.add_argument(
        "--no-validate",
        action="store_true",
        help="only frame the message and check its start line; show decoding errors inline",
    )
    parser.add_argument(
        "--stream",
        action="store_true",
        help="frame the input as a TCP/TLS stream (Content-Length required, several messages)",
    )


def _show(text: str) -> str:
    """Printable form: raw octets as \\xNN, control characters escaped."""
    if text.isascii() and text.isprintable():
        return text
    text = text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    return "".join(
        c if c.isprintable() or c == "\t" else f"\\x{ord(c):02x}" if ord(c) < 256 else repr(c)[1:-1]
        for c in text
    )


def _uri(uri: URI) -> str:
    if isinstance(uri, SipURI):
        parts = [f"{uri.scheme}", f"host={uri.host}"]
        if uri.user is not None:
            user = (
                uri.user
                if uri.user_unescaped == uri.user
                else f"{uri.user} ({uri.user_unescaped!r})"
            )
            parts.insert(1, f"user={user}")
        if uri.port is not None:
            parts.append(f"port={uri.port}")
        parts += [f"{k}={v}" if v is not None else k for k, v in uri.params]
        if uri.headers:
            parts.append("headers=" + "&".join(f"{k}={v}" for k, v in uri.headers))
        return " ".join(parts)
    if isinstance(uri, TelURI):
        return f"tel number={uri.number}" + "".join(
            f" {k}={v}" if v is not None else f" {k}" for k, v in uri.params
        )
    return f"{uri.scheme} (opaque)"


def _address(addr: Address, skip: tuple[str, ...] = ()) -> str:
    parts = [f"<{addr.uri}>"]
    uri = addr.uri
    if isinstance(uri, SipURI) and uri.user is not None and uri.user_unescaped != uri.user:
        parts.append(f"user={uri.user_unescaped!r}")
    if addr.display_name is not None:
        parts.insert(0, f"display={addr.display_name!r}")
    tag = addr.tag
    if tag is not None:
        parts.append(f"tag={tag}")
    for name, value in addr.params:
        if name.lower() == "tag" or name.lower() in skip:
            continue
        parts.append(f"{name}={value}" if value is not None else name)
    return " ".join(parts)


def _via(text: str) -> list[str]:
    out = []
    for via in Via.parse_list(text):
        parts = [f"{via.protocol}/{via.transport}", f"sent-by={via.sent_by}"]
        parts.append(f"branch={via.branch}" if via.branch is not None else "no branch")
        if via.received is not None:
            parts.append(f"received={via.received}")
        if via.has_rport:
            parts.append(f"rport={via.rport}" if via.rport is not None else "rport")
        parts += [
            f"{k}={v}" if v is not None else k
            for k, v in via.params
            if k.lower() not in ("branch", "received", "rport")
        ]
        out.append(" ".join(parts))
    return out


def _contact(text: str) -> list[str]:
    parsed = parse_contact(text)
    if parsed == "*":
        return ["* (all bindings)"]
    out = []
    for addr in parsed:
        line = _address(addr, skip=("expires", "q"))
        if addr.expires is not None:
            line += f" expires={addr.expires}s"
        if addr.q is not None:
            line += f" q={addr.q}"
        out.append(line)
    return out


def _cseq(text: str) -> list[str]:
    cseq = CSeq.parse(text)
    return [f"seq={cseq.seq} method={cseq.method}"]


def _content_type(text: str) -> list[str]:
    ct = ContentType.parse(text)
    params = "".join(f" {k}={v}" if v is not None else f" {k}" for k, v in ct.params)
    return [f"{ct.mime_type}{params}"]


def _int(parse: Callable[[str], int]) -> Callable[[str], list[str]]:
    return lambda text: [str(parse(text))]


# header key -> decoder of one row (a row may hold several comma-separated values).
_DECODERS: dict[str, Callable[[str], list[str]]] = {
    "via": _via,
    "from": lambda text: [_address(Address.parse(text))],
    "to": lambda text: [_address(Address.parse(text))],
    "contact": _contact,
    "route": lambda text: [_address(a) for a in Address.parse_list(text)],
    "record-route": lambda text: [_address(a) for a in Address.parse_list(text)],
    "path": lambda text: [_address(a) for a in Address.parse_list(text)],
    "refer-to": lambda text: [_address(Address.parse(text))],
    "cseq": _cseq,
    "content-type": _content_type,
    "max-forwards": _int(parse_max_forwards),
    "content-length": _int(parse_content_length),
    "expires": _int(parse_expires),
    "min-expires": _int(parse_expires),
}


def _body_summary(msg: Request | Response) -> list[str]:
    body = msg.body
    if not body:
        return ["(no body)"]
    try:
        ct = msg.content_type
        kind = ct.mime_type if ct is not None else "no Content-Type"
    except RemoteProtocolError:
        kind = "unreadable Content-Type"
    lines = [f"body: {len(body)} octets, {kind}"]
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    if text is not None and all(c.isprintable() or c in "\r\n\t" for c in text):
        rows = text.splitlines()
        lines += ["  | " + row for row in rows[:_BODY_PREVIEW_LINES]]
        if len(rows) > _BODY_PREVIEW_LINES:
            lines.append(f"  | ... {len(rows) - _BODY_PREVIEW_LINES} more lines")
    else:
        head = body[:_BODY_PREVIEW_OCTETS].hex(" ")
        more = " ..." if len(body) > _BODY_PREVIEW_OCTETS else ""
        lines.append(f"  binary: {head}{more}")
    return lines


def render(msg: Request | Response) -> str:
    """The pretty-printed message (the text ``sipwire parse`` prints)."""
    out: list[str] = []
    if isinstance(msg, Request):
        out.append(f"{_show(msg.method)} {_show(msg.uri_text)} {msg.version}")
        out.append(f"  request: method {_show(msg.method)}")
        try:
            out.append(f"  Request-URI: {_show(_uri(msg.uri))}")
        except RemoteProtocolError as exc:
            out.append(f"  Request-URI: !! {_show(exc.reason)}")
    else:
        out.append(f"{msg.version} {msg.status} {_show(msg.reason)}")
        out.append(f"  response: status {msg.status}, reason {_show(msg.reason)!r}")
    rows = msg.headers.items()
    out.append(f"headers ({len(rows)}):")
    for name, value in rows:
        out.append(f"  {_show(name)}: {_show(value)}")
        decode = _DECODERS.get(header_key(name))
        if decode is None:
            continue
        try:
            decoded = decode(value)
        except RemoteProtocolError as exc:
            out.append(f"      !! {_show(exc.reason)}")
            continue
        out += [f"      -> {_show(line)}" for line in decoded]
    out += _body_summary(msg)
    return "\n".join(out) + "\n"


def _malformed(exc: RemoteProtocolError) -> int:
    reason = _show(exc.reason)
    print(
        f"sipwire parse: malformed message: {reason} (would answer {exc.status_hint})",
        file=sys.stderr,
    )
    return 1


def run(args: argparse.Namespace) -> int:
    name: str = args.file
    try:
        data = sys.stdin.buffer.read() if name == "-" else pathlib.Path(name).read_bytes()
    except OSError as exc:
        print(f"sipwire parse: cannot read {name}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    validate = not args.no_validate
    if not args.stream:
        try:
            msg = parse_message(data, validate=validate)
            text = render(msg)
        except RemoteProtocolError as exc:
            return _malformed(exc)
        sys.stdout.write(text)
        return 0
    parser = StreamParser(validate=validate)
    try:
        items = parser.feed(data)
    except RemoteProtocolError as exc:
        return _malformed(exc)
    count = 0
    for item in items:
        if isinstance(item, KeepAlive):
            sys.stdout.write(f"keep-alive {item.name}\n")
            continue
        if count:
            sys.stdout.write("\n")
        try:
            sys.stdout.write(render(item))
        except RemoteProtocolError as exc:
            return _malformed(exc)
        count += 1
    if parser.buffered:
        print(
            f"sipwire parse: malformed message: {parser.buffered} octets left after the last"
            " complete message (would answer 400)",
            file=sys.stderr,
        )
        return 1
    if not count:
        print("sipwire parse: malformed message: no message in the stream (would answer 400)",
              file=sys.stderr)  # fmt: skip
        return 1
    return 0
