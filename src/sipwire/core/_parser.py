"""Framing: bytes -> :class:`Request` / :class:`Response` (RFC 3261 §7, §18.3; RFC 5626 §3.5.1).

The hot path decodes the header section once, splits it into lines and rows and
builds :class:`~sipwire.core.headers.Headers` rows without parsing any value; typed
values are parsed later, on demand (``msg.top_via``, ``msg.cseq``...).  Only what is
needed to *frame* the message is checked here: the start line, the header-line
syntax (``name: value``, folding) and Content-Length.

Public names are re-exported by :mod:`sipwire.core.message`.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

from sipwire.core._errors import RemoteProtocolError
from sipwire.core.headers import Headers, header_key, is_token

__all__ = [
    "InvalidMessage",
    "KeepAlive",
    "Limits",
    "StreamParser",
    "parse_message",
]


@dataclass(frozen=True, slots=True)
class Limits:
    """Bounds applied to every incoming message (DESIGN rule 8).

    * ``max_message_size`` (65535): start line + headers + body, in octets; the
      largest UDP payload.  Larger -> 513 Message Too Large (RFC 3261 §18.1.1, §21.5.11).
    * ``max_headers`` (256): header lines (folded continuation lines count).
    * ``max_line_length`` (8192): octets in one physical line (RFC 4475's longreq
      has a 3515-octet message and lines under 1000).
    * ``max_body`` (65535): Content-Length accepted; larger -> 513.

    On a stream the buffer never holds more than ``max_message_size`` octets of an
    unfinished message.
    """

    max_message_size: int = 65535
    max_headers: int = 256
    max_line_length: int = 8192
    max_body: int = 65535


DEFAULT_LIMITS = Limits()


class KeepAlive(enum.Enum):
    """RFC 5626 §3.5.1 keep-alives on a stream: a client sends PING (CRLFCRLF) and
    the server answers PONG (CRLF).  RFC 3261 §7.5: CRLFs before a start line are
    otherwise ignored."""

    PING = "ping"
    PONG = "pong"


class InvalidMessage(RemoteProtocolError):
    """A message that was framed correctly but is not acceptable.

    ``message`` is the framed :class:`Request` or :class:`Response` (headers present,
    typed values may be broken), so a server can still answer a request
    statelessly: ``make_response(err.message, err.status_hint)``.  Bad responses are
    simply dropped (RFC 3261 §18.1.2).
    """

    def __init__(self, reason: str, status_hint: int, message: Request | Response) -> None:
        super().__init__(reason, status_hint)
        self.message = message


def _bad(reason: str, status: int = 400) -> RemoteProtocolError:
    return RemoteProtocolError(reason, status)


# -- the start line -----------------------------------------------------------------

_VERSION_RE = re.compile(r"SIP/[0-9]+\.[0-9]+", re.IGNORECASE)
_SCHEME_RE = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*:")
_KNOWN_METHODS = frozenset(
    {
        "INVITE",
        "ACK",
        "BYE",
        "CANCEL",
        "OPTIONS",
        "REGISTER",
        "PRACK",
        "SUBSCRIBE",
        "NOTIFY",
        "PUBLISH",
        "INFO",
        "REFER",
        "MESSAGE",
        "UPDATE",
    }
)


def _version_error(version: str) -> tuple[str, int] | None:
    """None for SIP/2.0; else (reason, status): 505 for another SIP version (§8.2.2... /
    RFC 4475 3.1.2.16 badvers), 400 for something that is not a SIP-Version at all."""
    if version == "SIP/2.0" or version.upper() == "SIP/2.0":
        return None
    if _VERSION_RE.fullmatch(version):
        return f"unsupported SIP version {version!r}", 505
    return f"malformed SIP-Version {version[:40]!r}", 400


def _start_line(line: str) -> tuple[Request | Response, tuple[str, int] | None]:
    """Parse a Request-Line or Status-Line (RFC 3261 §7.1, §7.2, §25.1).

    Returns the message shell and a deferred version error (the message is framed
    before a 505 is raised, so the caller can answer it).
    """
    if line.startswith("SIP/") or line[:4].upper() == "SIP/":
        version, _, rest = line.partition(" ")
        code, _, reason = rest.partition(" ")
        if len(code) != 3 or not code.isdigit() or not code.isascii():
            raise _bad(f"malformed Status-Code {code[:20]!r}")
        status = int(code)
        if status < 100 or status > 699:
            raise _bad(f"Status-Code {status} out of range 100..699")
        response = _new(Response)
        response._status = status
        response._reason = reason
        response._version = version
        response._raw_version = 0
        response._cache_version = -1
        return response, None if version == "SIP/2.0" else _version_error(version)
    parts = line.split(" ")
    if len(parts) != 3:
        raise _bad("Request-Line must be Method SP Request-URI SP SIP-Version, single spaces")
    method, uri, version = parts
    if method not in _KNOWN_METHODS and not is_token(method):
        raise _bad(f"malformed Method {method[:40]!r}")
    if (
        (not uri.startswith(("sip:", "sips:")) and not _SCHEME_RE.match(uri))
        or "<" in uri
        or ">" in uri
        or "\t" in uri
    ):
        raise _bad(f"malformed Request-URI {uri[:60]!r}")
    if not version:
        raise _bad("missing SIP-Version")
    request = _new(Request)
    request._method = method
    request._uri = None
    request._uri_text = uri
    request._version = version
    request._raw_version = 0
    request._cache_version = -1
    return request, None if version == "SIP/2.0" else _version_error(version)


# -- the header section ------------------------------------------------------------

# name as written before the colon (maybe with trailing SP/HT) ->
# (key, name without the trailing SP/HT, is it Content-Length).
# Bounded: names beyond the cap are simply not memoised.
_NAME_CACHE: dict[str, tuple[str, str, bool]] = {}
_NAME_CACHE_MAX = 2048
_LF_SPLIT = re.compile(r"\r?\n")
_new = object.__new__


def _name_info(name: str) -> tuple[str, str, bool]:
    written = name.rstrip(" \t")
    if not is_token(written):
        if not written:
            raise _bad("header line with an empty name")
        raise _bad(f"malformed header name {written[:40]!r}")
    key = header_key(written)
    info = (key, written, key == "content-length")
    if len(_NAME_CACHE) < _NAME_CACHE_MAX:
        _NAME_CACHE[name] = info
    return info


_Entry = tuple[str, str, str, "str | None"]


def _rows(lines: list[str], lengths: list[str], index: dict[str, list[str]]) -> list[_Entry] | None:
    """Header rows from physical lines (``lines[0]`` is the start line).

    Content-Length values are appended to ``lengths``; ``index`` (empty) is filled as
    :meth:`Headers._build_index` would (every typed lookup needs it: one pass instead of
    two).  Returns None if a line is folded (starts with SP/HT): the caller then uses
    :func:`_folded_rows` (and drops ``index``).
    """
    cache = _NAME_CACHE
    entries: list[_Entry] = []
    append = entries.append
    lines_after_start = iter(lines)
    next(lines_after_start)
    for line in lines_after_start:
        name, colon, value = line.partition(":")
        info = cache.get(name)
        if info is None or not colon:
            if line[:1] in (" ", "\t"):
                return None
            if not colon:
                raise _bad(f"header line without a colon: {line[:40]!r}")
            info = _name_info(name)
        key, written, is_length = info
        value = value.strip(" \t")
        if is_length:
            lengths.append(value)
        append((key, written, value, line))
        if key in index:
            index[key].append(value)
        else:
            index[key] = [value]
    return entries


def _folded_rows(lines: list[str], sep: str, lengths: list[str]) -> list[_Entry]:
    """Header rows when some lines continue the previous one (§7.3.1 folding)."""
    groups: list[list[str]] = []
    for line in lines[1:]:
        if line[:1] in (" ", "\t"):
            if not groups:
                raise _bad("continuation line right after the start line")
            groups[-1].append(line)
        else:
            groups.append([line])
    entries: list[_Entry] = []
    for group in groups:
        first = group[0]
        name, colon, value = first.partition(":")
        if not colon:
            raise _bad(f"header line without a colon: {first[:40]!r}")
        key, written, is_length = _NAME_CACHE.get(name) or _name_info(name)
        if len(group) == 1:
            value = value.strip(" \t")
            raw = first
        else:
            pieces = [value.strip(" \t")]
            pieces.extend(line.strip(" \t") for line in group[1:])
            value = " ".join(piece for piece in pieces if piece)
            raw = sep.join(group)
        if is_length:
            lengths.append(value)
        entries.append((key, written, value, raw))
    return entries


_Head = tuple["Request | Response", "int | None", "tuple[str, int] | None"]

# A Content-Length row (long or compact name), found without splitting the rows.
_LENGTH_RE = re.compile(r"\n(?:content-length|l)[ \t]*:([^\r\n]*)", re.IGNORECASE)


def _split_lines(text: str) -> tuple[list[str], str]:
    """Physical lines of a header section and the line end used (CRLF, or bare LF
    tolerated).  A bare CR is an error (RFC 3261 §7: lines end in CRLF)."""
    lines = text.split("\r\n")
    if text.count("\n") == len(lines) - 1 and text.count("\r") == len(lines) - 1:
        return lines, "\r\n"
    lines = _LF_SPLIT.split(text)
    if "\r" in text and any("\r" in line for line in lines):
        raise _bad("bare CR in the header section")
    return lines, "\n"


def _split_rows(text: str) -> Headers:
    """The header rows of a decoded header section (``text`` starts with the start line).

    Used when a lazily parsed message's headers are first needed: ``text`` has as many
    CRs as LFs (:func:`_parse_head` checked), so if every LF ends a CRLF the lines are
    the CRLF-separated pieces without counting the CRs again."""
    lines = text.split("\r\n")
    if text.count("\n") == len(lines) - 1:
        sep = "\r\n"
    else:
        lines, sep = _split_lines(text)
    lengths: list[str] = []
    index: dict[str, list[str]] = {}
    entries = _rows(lines, lengths, index)
    if entries is None:
        return Headers._from_entries(_folded_rows(lines, sep, lengths))
    return Headers._from_entries(entries, index)


def _parse_head(
    head: bytes | bytearray, limits: Limits, crlf_only: bool, lazy: bool
) -> _Head | None:
    """Start line and header rows of one message: (shell, Content-Length, deferred error).

    With ``crlf_only`` (``head`` was cut at the first CRLFCRLF) returns None if the
    text has bare-LF line ends, because the header section may then end earlier.
    With ``lazy`` the rows are not split yet (only Content-Length is looked up);
    ``msg.headers`` splits them on first use.
    """
    text = head.decode("utf-8", "surrogateescape")
    newlines = text.count("\n")
    # Every line end is CRLF iff as many CRs as LFs (a stray CR is caught when the
    # rows are split: it stays inside a value or name and fails there or round-trips).
    crlf = newlines == text.count("\r")
    if not crlf and crlf_only:
        return None
    if newlines > limits.max_headers:
        raise _bad(f"more than {limits.max_headers} header lines", 513)
    if len(text) > limits.max_line_length and (
        max(map(len, _LF_SPLIT.split(text))) > limits.max_line_length
    ):
        raise _bad(f"header line longer than {limits.max_line_length} octets", 513)
    if crlf:
        eol = text.find("\r\n")
        first = text if eol < 0 else text[:eol]
    else:
        first = _LF_SPLIT.split(text, 1)[0]
    if "\r" in first:
        raise _bad("bare CR in the start line")
    msg, deferred = _start_line(first)
    value: str | None = None
    if lazy and crlf:
        found = _LENGTH_RE.findall(text)
        if not found:
            msg._headers = None
            msg._head_text = text
            return msg, None, deferred
        if len(found) == 1:
            value = found[0].strip(" \t")
            if value:  # else the value may be folded onto the next line: split now
                msg._headers = None
                msg._head_text = text
            else:
                value = None
    if value is None:
        lines, sep = _split_lines(text)
        lengths: list[str] = []
        index: dict[str, list[str]] = {}
        entries = _rows(lines, lengths, index)
        if entries is None:
            lengths = []
            msg._headers = Headers._from_entries(_folded_rows(lines, sep, lengths))
        else:
            msg._headers = Headers._from_entries(entries, index)
        msg._head_text = None
        if not lengths:
            return msg, None, deferred
        if len(lengths) > 1:
            raise _bad("more than one Content-Length")
        value = lengths[0]
    if not value.isdigit() or not value.isascii():
        raise _bad(f"malformed Content-Length {value[:20]!r}")
    if len(value) > 20:  # never int() a huge string
        value = value.lstrip("0") or "0"
        if len(value) > 20:
            raise _bad(f"Content-Length {value[:20]}... exceeds {limits.max_body}", 513)
    length = int(value)
    if length > limits.max_body:
        raise _bad(f"Content-Length {length} exceeds {limits.max_body}", 513)
    return msg, length, deferred


def _find_head_end(buf: bytes | bytearray, start: int) -> tuple[int, int]:
    """(end of the header text, start of the body), or (-1, -1) if no empty line yet.

    The empty line is CRLF CRLF; bare LF line ends are tolerated.
    """
    i = buf.find(b"\n\r\n", start)
    j = buf.find(b"\n\n", start, i + 2 if i >= 0 else len(buf))
    if j >= 0:
        return (j - 1 if j > start and buf[j - 1] == 13 else j), j + 2
    if i >= 0:
        return (i - 1 if i > start and buf[i - 1] == 13 else i), i + 3
    return -1, -1


def parse_message(
    data: bytes | bytearray | memoryview,
    *,
    limits: Limits = DEFAULT_LIMITS,
    validate: bool = True,
) -> Request | Response:
    """Parse one datagram into a :class:`Request` or :class:`Response`.

    RFC 3261 §18.3: without Content-Length the body is the rest of the datagram;
    octets after Content-Length are ignored (RFC 4475 dblreq); a Content-Length
    larger than the datagram is an error (clerr -> 400).  CRLFs before the start
    line are skipped (§7.5); a datagram whose header section ends without the empty
    line is accepted when its last line is complete.

    ``validate=True`` also runs :meth:`Message.validate` (Via, From, To, Call-ID,
    CSeq, Max-Forwards, Contact, the Request-URI).  ``validate=False`` only frames
    the message and checks its start line: the proxy/benchmark hot path; typed
    access may still raise :class:`RemoteProtocolError` later.

    Raises only :class:`RemoteProtocolError` -- :class:`InvalidMessage` (which carries
    the framed message) for a message that is framed but unacceptable.
    """
    if type(data) is not bytes:
        data = bytes(data)
    n = len(data)
    if n > limits.max_message_size:
        raise _bad(f"message of {n} octets exceeds {limits.max_message_size}", 513)
    start = 0
    if data.startswith(b"\r\n"):
        while data.startswith(b"\r\n", start):
            start += 2
    if start >= n:
        raise _bad("empty message")
    parsed = None
    i = data.find(b"\r\n\r\n", start)
    if i >= 0:
        body_start = i + 4
        parsed = _parse_head(data[start:i], limits, True, not validate)
    if parsed is None:
        head_end, body_start = _find_head_end(data, start)
        if head_end < 0:
            if not data.endswith(b"\n"):
                raise _bad("header section not terminated by an empty line")
            head_end = n - 2 if data.endswith(b"\r\n") else n - 1
            body_start = n
        parsed = _parse_head(data[start:head_end], limits, False, not validate)
        assert parsed is not None
    msg, length, deferred = parsed
    if length is None:
        end = n
    else:
        end = body_start + length
        if end > n:
            msg._body = data[body_start:]
            msg._raw = data[start:]
            raise InvalidMessage(
                f"Content-Length {length} larger than the {n - body_start} octets received",
                400,
                msg,
            )
    msg._body = data[body_start:end]
    msg._raw = data if start == 0 and end == n else data[start:end]
    if deferred is not None:
        raise InvalidMessage(deferred[0], deferred[1], msg)
    if validate:
        msg.validate()
    return msg


class StreamParser:
    """Frames a TCP/TLS/WebSocket byte stream into messages (RFC 3261 §18.3).

    ``feed(data)`` returns every complete message (and :class:`KeepAlive`) so far;
    input may be split anywhere.  Content-Length is mandatory on a stream.  The
    buffer holds at most ``limits.max_message_size`` octets of an unfinished message.

    Errors:

    * A framing error (no Content-Length, a bad or duplicate one, an unparseable
      start line or header line, a message over the limits) raises
      :class:`RemoteProtocolError`; the stream cannot be resynchronised, so the
      parser is unusable afterwards (every call raises) and the transport closes the
      connection.
    * A framed message that fails validation (or has another SIP version, 505)
      raises :class:`InvalidMessage` carrying it.  The parser stays usable: messages
      framed before it in the same call and anything still buffered come out of the
      next ``feed`` call (``feed(b"")`` is fine).

    Keep-alives (RFC 5626 §3.5.1): CRLFCRLF is ``KeepAlive.PING``, a lone CRLF is
    ``KeepAlive.PONG``.  A lone CRLF at the end of the input is reported as PONG at
    once; if the next input starts with another CRLF, that one is reported as PING
    (the PING was split between two reads), so a server still answers it.
    """

    __slots__ = (
        "_buf",
        "_error",
        "_limits",
        "_lone_crlf",
        "_pending",
        "_ready",
        "_scan",
        "_validate",
    )

    def __init__(self, limits: Limits = DEFAULT_LIMITS, *, validate: bool = True) -> None:
        self._limits = limits
        self._validate = validate
        self._buf = bytearray()
        self._error: RemoteProtocolError | None = None
        self._scan = 0
        self._pending: tuple[Request | Response, int, int, tuple[str, int] | None] | None = None
        self._ready: list[Request | Response | KeepAlive] = []
        self._lone_crlf = False

    @property
    def buffered(self) -> int:
        """Octets received but not yet returned as a message."""
        return len(self._buf)

    def _fail(self, error: RemoteProtocolError) -> RemoteProtocolError:
        self._error = error
        self._buf = bytearray()
        self._pending = None
        return error

    def feed(self, data: bytes | bytearray | memoryview) -> list[Request | Response | KeepAlive]:
        """Add received octets; return the messages and keep-alives now complete."""
        if self._error is not None:
            raise RemoteProtocolError(
                f"stream already failed: {self._error.reason}", self._error.status_hint
            )
        buf = self._buf
        if data:
            buf += data
        out = self._ready
        self._ready = []
        limits = self._limits
        while buf:
            pending = self._pending
            if pending is None:
                first = buf[0]
                if first in (13, 10):
                    if buf.startswith(b"\r\n\r\n"):
                        del buf[:4]
                        out.append(KeepAlive.PING)
                        self._lone_crlf = False
                        continue
                    if buf.startswith(b"\r\n"):
                        if len(buf) == 3 and buf[2] == 13:
                            break  # maybe the start of a PING
                        del buf[:2]
                        if self._lone_crlf:
                            out.append(KeepAlive.PING)
                            self._lone_crlf = False
                        else:
                            out.append(KeepAlive.PONG)
                            self._lone_crlf = not buf
                        continue
                    if first == 13 and len(buf) == 1:
                        break  # half a CRLF
                    if first == 10:
                        del buf[:1]  # a stray LF between messages: ignored
                        continue
                self._lone_crlf = False
                parsed = None
                i = buf.find(b"\r\n\r\n", self._scan)
                try:
                    if i >= 0:
                        body_start = i + 4
                        parsed = _parse_head(buf[:i], limits, True, not self._validate)
                    if parsed is None:
                        head_end, body_start = _find_head_end(buf, 0 if i >= 0 else self._scan)
                        if head_end < 0:
                            if len(buf) > limits.max_message_size:
                                raise _bad(
                                    f"header section exceeds {limits.max_message_size} octets",
                                    513,
                                )
                            self._scan = max(0, len(buf) - 3)
                            break
                        parsed = _parse_head(buf[:head_end], limits, False, not self._validate)
                        assert parsed is not None
                except RemoteProtocolError as exc:
                    raise self._fail(exc) from None
                self._scan = 0
                msg, length, deferred = parsed
                if length is None:
                    raise self._fail(_bad("Content-Length is mandatory on a stream (§18.3)"))
                total = body_start + length
                if total > limits.max_message_size:
                    raise self._fail(
                        _bad(f"message of {total} octets exceeds {limits.max_message_size}", 513)
                    )
                pending = self._pending = (msg, body_start, total, deferred)
            msg, body_start, total, deferred = pending
            if len(buf) < total:
                break
            msg._body = bytes(buf[body_start:total])
            msg._raw = bytes(buf[:total])
            del buf[:total]
            self._pending = None
            try:
                if deferred is not None:
                    raise InvalidMessage(deferred[0], deferred[1], msg)
                if self._validate:
                    msg.validate()
            except RemoteProtocolError:
                self._ready = out
                raise
            out.append(msg)
        return out


# Circular on purpose: message.py re-exports this module's names at its end, and
# everything above only needs these classes at call time.
from sipwire.core.message import Request, Response  # noqa: E402
