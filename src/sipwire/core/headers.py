"""SIP header fields: an ordered, case-insensitive, raw-preserving multimap.

RFC 3261 §7.3 defines the generic header format (``name HCOLON value``), line
folding (§7.3.1: a line break followed by SP/HT continues the value and is read as
one SP) and the rule that several rows with the same name are allowed only when
the value grammar is a comma-separated list -- except WWW-Authenticate,
Authorization, Proxy-Authenticate and Proxy-Authorization, which repeat as rows but
are never comma-combined.  Compact forms are listed in §7.3.3 and §20 (plus the
IANA registry for the extensions).

:class:`Headers` keeps every row as ``(name as written, unfolded value)`` and, for
rows that came off the wire and were not changed since, the exact original text, so
an unchanged header re-serializes byte for byte (DESIGN rule 5).  Values are ``str``
decoded from UTF-8 with ``surrogateescape``: any octet round-trips.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from sipwire.core._errors import LocalProtocolError

__all__ = [
    "COMPACT_FORMS",
    "LIST_HEADERS",
    "Headers",
    "canonical_name",
    "header_key",
    "is_list_header",
    "split_header_list",
]

# Compact form -> long form (RFC 3261 §7.3.3 and §20; RFC 3265/6665 o, u; RFC 3515 r;
# RFC 3892 b; RFC 4028 x; RFC 4474 y, n; RFC 3841 a, j, d).
COMPACT_FORMS: dict[str, str] = {
    "i": "Call-ID",
    "m": "Contact",
    "e": "Content-Encoding",
    "l": "Content-Length",
    "c": "Content-Type",
    "f": "From",
    "s": "Subject",
    "k": "Supported",
    "t": "To",
    "v": "Via",
    "o": "Event",
    "r": "Refer-To",
    "b": "Referred-By",
    "u": "Allow-Events",
    "x": "Session-Expires",
    "y": "Identity",
    "a": "Accept-Contact",
    "j": "Reject-Contact",
    "d": "Request-Disposition",
    "n": "Identity-Info",
}

# The conventional spelling of well-known header names (lower-case key -> name).
_CANONICAL: dict[str, str] = {
    name.lower(): name
    for name in (
        "Accept",
        "Accept-Contact",
        "Accept-Encoding",
        "Accept-Language",
        "Alert-Info",
        "Allow",
        "Allow-Events",
        "Authentication-Info",
        "Authorization",
        "Call-ID",
        "Call-Info",
        "Contact",
        "Content-Disposition",
        "Content-Encoding",
        "Content-Language",
        "Content-Length",
        "Content-Type",
        "CSeq",
        "Date",
        "Error-Info",
        "Event",
        "Expires",
        "From",
        "History-Info",
        "Identity",
        "Identity-Info",
        "In-Reply-To",
        "Max-Forwards",
        "MIME-Version",
        "Min-Expires",
        "Min-SE",
        "Organization",
        "P-Asserted-Identity",
        "P-Preferred-Identity",
        "Path",
        "Priority",
        "Privacy",
        "Proxy-Authenticate",
        "Proxy-Authorization",
        "Proxy-Require",
        "RAck",
        "Reason",
        "Record-Route",
        "Refer-To",
        "Referred-By",
        "Reject-Contact",
        "Replaces",
        "Reply-To",
        "Request-Disposition",
        "Require",
        "Retry-After",
        "Route",
        "RSeq",
        "Security-Client",
        "Security-Server",
        "Security-Verify",
        "Server",
        "Service-Route",
        "Session-Expires",
        "SIP-ETag",
        "SIP-If-Match",
        "Subject",
        "Subscription-State",
        "Supported",
        "Timestamp",
        "To",
        "Unsupported",
        "User-Agent",
        "Via",
        "Warning",
        "WWW-Authenticate",
    )
}

# Lower-case name or compact form -> lookup key (the lower-case long name).
_KEYS: dict[str, str] = {c: long.lower() for c, long in COMPACT_FORMS.items()}

# Headers whose value grammar is a comma-separated list (RFC 3261 §7.3.1, §20 and the
# extensions' ABNF): only these are comma-split by ``get_all``.  Everything else --
# WWW-Authenticate, Authorization, Proxy-Authenticate, Proxy-Authorization,
# Authentication-Info, Date (it contains a comma), Retry-After, Subject, Call-ID,
# Organization, User-Agent, Server, Timestamp, From, To, CSeq, and every unknown
# header -- is returned one row at a time, unsplit.
LIST_HEADERS: frozenset[str] = frozenset(
    {
        "accept",
        "accept-contact",
        "accept-encoding",
        "accept-language",
        "alert-info",
        "allow",
        "allow-events",
        "call-info",
        "contact",
        "content-encoding",
        "content-language",
        "error-info",
        "history-info",
        "in-reply-to",
        "p-asserted-identity",
        "p-preferred-identity",
        "path",
        "proxy-require",
        "reason",
        "record-route",
        "reject-contact",
        "request-disposition",
        "require",
        "route",
        "security-client",
        "security-server",
        "security-verify",
        "service-route",
        "supported",
        "unsupported",
        "via",
        "warning",
    }
)

# RFC 3261 §25.1: token = 1*(alphanum / "-" / "." / "!" / "%" / "*" / "_" / "+" / "`" / "'" / "~")
_TOKEN_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.!%*_+`'~")


def is_token(text: str) -> bool:
    """True if ``text`` is an RFC 3261 ``token`` (non-empty, token characters only)."""
    return bool(text) and _TOKEN_CHARS.issuperset(text)


def header_key(name: str) -> str:
    """The case-insensitive lookup key of a header name: its lower-case long form.

    >>> header_key("v"), header_key("VIA"), header_key("X-Foo")
    ('via', 'via', 'x-foo')
    """
    lower = name.lower()
    return _KEYS.get(lower, lower)


def canonical_name(name: str) -> str:
    """The conventional spelling of a header name, expanding compact forms.

    ``canonical_name("v") == "Via"``, ``canonical_name("call-id") == "Call-ID"``;
    an unknown name is returned as given.
    """
    return _CANONICAL.get(header_key(name), name)


def is_list_header(name: str) -> bool:
    """True if the header's grammar is a comma-separated list (RFC 3261 §7.3.1)."""
    return header_key(name) in LIST_HEADERS


def split_header_list(value: str) -> list[str]:
    """Split a list header value at top-level commas.

    Commas inside a quoted string (with backslash escapes) or inside ``<...>`` do not
    split.  Elements are stripped of SP/HT; empty elements are dropped, so an empty
    value gives ``[]``.
    """
    if '"' not in value and "<" not in value:
        parts = value.split(",")
    else:
        parts = []
        start = 0
        in_quotes = False
        in_angle = False
        i = 0
        n = len(value)
        while i < n:
            ch = value[i]
            if in_quotes:
                if ch == "\\":
                    i += 1
                elif ch == '"':
                    in_quotes = False
            elif ch == '"':
                in_quotes = True
            elif in_angle:
                if ch == ">":
                    in_angle = False
            elif ch == "<":
                in_angle = True
            elif ch == ",":
                parts.append(value[start:i])
                start = i + 1
            i += 1
        parts.append(value[start:])
    out = []
    for part in parts:
        part = part.strip(" \t")
        if part:
            out.append(part)
    return out


def _check_name(name: str) -> str:
    if not isinstance(name, str) or not is_token(name):
        raise LocalProtocolError(f"invalid header name {name!r}")
    return header_key(name)


def _check_encodable(text: str) -> None:
    """Text must encode back to octets: UTF-8, raw octets as surrogate escapes."""
    try:
        text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        raise LocalProtocolError(f"text cannot be encoded as UTF-8: {text!r}") from None


def _check_value(value: str) -> str:
    if not isinstance(value, str):
        raise LocalProtocolError(f"header value must be str, not {type(value).__name__}")
    if "\r" in value or "\n" in value:  # header injection; a NUL may be quoted (intmeth)
        raise LocalProtocolError(f"header value contains CR or LF: {value!r}")
    if not value.isascii():
        _check_encodable(value)
    return value.strip(" \t")


_NO_VALUES: list[str] = []

# One row: (key, name as written, unfolded value, original text or None).
_Entry = tuple[str, str, str, "str | None"]


class Headers:
    """Ordered, case-insensitive multimap of raw SIP header rows.

    Iteration yields ``(name, value)`` pairs in message order, names as written
    (``"v"`` stays ``"v"``), values unfolded and stripped.  Lookups accept any
    spelling and the compact form (``h.get("Via") == h.get("v")``).

    Every mutation bumps :attr:`version`, which is how :class:`~sipwire.core.message.Message`
    knows to drop its cached typed values and its cached wire bytes.  Rows that were
    not changed keep their original text and are re-serialized byte for byte.
    """

    __slots__ = ("_entries", "_index", "_version")

    def __init__(self, items: Iterable[tuple[str, str]] | Headers | None = None) -> None:
        self._entries: list[_Entry] = []
        self._version = 0
        self._index: dict[str, list[str]] | None = None
        if items is None:
            return
        if isinstance(items, Headers):
            self._entries = list(items._entries)
            return
        for name, value in items:
            self._entries.append((_check_name(name), name, _check_value(value), None))

    @classmethod
    def _from_entries(
        cls, entries: list[_Entry], index: dict[str, list[str]] | None = None
    ) -> Headers:
        """Wrap already-checked rows (the parser's fast path), with their lookup index
        if the parser built it (exactly what :meth:`_build_index` gives)."""
        self = cls.__new__(cls)
        self._entries = entries
        self._version = 0
        self._index = index
        return self

    def _touch(self) -> None:
        self._version += 1
        self._index = None

    # -- reading ---------------------------------------------------------------------

    @property
    def version(self) -> int:
        """A counter bumped by every mutation."""
        return self._version

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self) -> Iterator[tuple[str, str]]:
        for entry in self._entries:
            yield entry[1], entry[2]

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        key = header_key(name)
        return any(entry[0] == key for entry in self._entries)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Headers):
            return NotImplemented
        if len(self._entries) != len(other._entries):
            return False
        return all(
            a[1] == b[1] and a[2] == b[2]
            for a, b in zip(self._entries, other._entries, strict=True)
        )

    __hash__ = None  # type: ignore[assignment]  # mutable

    def __repr__(self) -> str:
        return f"Headers({self.items()!r})"

    def items(self) -> list[tuple[str, str]]:
        """Every row as ``(name as written, value)``, in order."""
        return [(entry[1], entry[2]) for entry in self._entries]

    def get(self, name: str, default: str | None = None) -> str | None:
        """The value of the first row called ``name`` (unsplit), or ``default``."""
        values = self._values(header_key(name))
        return values[0] if values else default

    def values(self, name: str) -> list[str]:
        """The value of every row called ``name``, in order, not comma-split."""
        return list(self._values(header_key(name)))

    def _values(self, key: str) -> list[str]:
        """Like :meth:`values` for a lookup key; the list is shared, do not change it."""
        index = self._index
        if index is None:
            index = self._build_index()
        return index.get(key, _NO_VALUES)

    def _build_index(self) -> dict[str, list[str]]:
        """key -> values of the rows with that key, in order (dropped by every change)."""
        index: dict[str, list[str]] = {}
        for key, _, value, _ in self._entries:
            if key in index:
                index[key].append(value)
            else:
                index[key] = [value]
        self._index = index
        return index

    def count(self, name: str) -> int:
        """How many rows are called ``name``."""
        key = header_key(name)
        return sum(1 for entry in self._entries if entry[0] == key)

    def get_all(self, name: str) -> list[str]:
        """Every value of ``name``, comma-split where the grammar is a list.

        List headers (:data:`LIST_HEADERS`: Via, Contact, Route, Supported...) are
        split at commas outside quotes and ``<>``; any other header (including
        WWW-Authenticate/Authorization and unknown headers) gives one value per row.
        """
        key = header_key(name)
        rows = self._values(key)
        if key not in LIST_HEADERS:
            return list(rows)
        out: list[str] = []
        for row in rows:
            if "," in row:
                out.extend(split_header_list(row))
            elif row:
                out.append(row)
        return out

    def names(self) -> list[str]:
        """Header names as written, in order (duplicates included)."""
        return [entry[1] for entry in self._entries]

    def raw_rows(self) -> list[tuple[str, str | None]]:
        """``(name, original text or None)`` per row; for debugging and tests."""
        return [(entry[1], entry[3]) for entry in self._entries]

    # -- writing ---------------------------------------------------------------------

    def add(self, name: str, value: str) -> None:
        """Append a row at the end."""
        self._entries.append((_check_name(name), name, _check_value(value), None))
        self._touch()

    def set(self, name: str, value: str) -> None:
        """Replace every ``name`` row by one row (at the first one's position).

        If the header already has exactly this one value the row (and its original
        text) is kept unchanged.
        """
        key = _check_name(name)
        value = _check_value(value)
        entries = self._entries
        first = -1
        for i, entry in enumerate(entries):
            if entry[0] == key:
                first = i
                break
        if first < 0:
            entries.append((key, name, value, None))
            self._touch()
            return
        old = entries[first]
        rest_has = any(entry[0] == key for entry in entries[first + 1 :])
        if not rest_has and old[2] == value:
            return
        entries[first] = (key, name, value, None)
        if rest_has:
            self._entries = entries[: first + 1] + [e for e in entries[first + 1 :] if e[0] != key]
        self._touch()

    def remove(self, name: str) -> int:
        """Remove every ``name`` row; return how many were removed."""
        key = header_key(name)
        kept = [entry for entry in self._entries if entry[0] != key]
        removed = len(self._entries) - len(kept)
        if removed:
            self._entries = kept
            self._touch()
        return removed

    def insert_first(self, name: str, value: str) -> None:
        """Insert a row before the first ``name`` row (or at the top if none).

        This is how a proxy adds its Via (§16.6 step 8) or a Record-Route (§16.6 step 4).
        """
        key = _check_name(name)
        value = _check_value(value)
        entries = self._entries
        index = 0
        for i, entry in enumerate(entries):
            if entry[0] == key:
                index = i
                break
        entries.insert(index, (key, name, value, None))
        self._touch()

    def pop_first(self, name: str) -> str | None:
        """Remove and return the first *value* of ``name`` (None if absent).

        For a list header whose first row holds several comma-separated values, only
        the first value is removed and the row keeps the others (a proxy removing its
        own Via, §16.7 step 3, or a loose-routing proxy popping the top Route,
        §16.4).  For other headers the first row is removed.
        """
        key = header_key(name)
        entries = self._entries
        for i, entry in enumerate(entries):
            if entry[0] != key:
                continue
            if key in LIST_HEADERS and "," in entry[2]:
                parts = split_header_list(entry[2])
                if len(parts) > 1:
                    entries[i] = (key, entry[1], ", ".join(parts[1:]), None)
                    self._touch()
                    return parts[0]
                if not parts:  # an empty row: drop it and keep looking
                    del entries[i]
                    self._touch()
                    return self.pop_first(name)
                del entries[i]
                self._touch()
                return parts[0]
            del entries[i]
            self._touch()
            return entry[2]
        return None

    def replace_first(self, name: str, value: str) -> None:
        """Replace the first *value* of ``name`` (e.g. the top Via gaining ``received``).

        Other values in the same comma-separated row and every other row are kept.
        Raises :class:`LocalProtocolError` if there is no such header.
        """
        key = _check_name(name)
        value = _check_value(value)
        entries = self._entries
        for i, entry in enumerate(entries):
            if entry[0] != key:
                continue
            if key in LIST_HEADERS and "," in entry[2]:
                parts = split_header_list(entry[2])
                if len(parts) > 1:
                    # Split the row: the replaced first value, then the untouched rest.
                    entries[i] = (key, entry[1], value, None)
                    entries.insert(i + 1, (key, entry[1], ", ".join(parts[1:]), None))
                    self._touch()
                    return
            entries[i] = (key, entry[1], value, None)
            self._touch()
            return
        raise LocalProtocolError(f"no {name} header to replace")

    def clear(self) -> None:
        """Remove every row."""
        if self._entries:
            self._entries = []
            self._touch()

    def copy(self) -> Headers:
        """An independent copy (original row text kept)."""
        return Headers._from_entries(list(self._entries))

    # -- serialization -----------------------------------------------------------------

    def _lines(self) -> list[str]:
        """One text line per row, without line terminators."""
        return [
            entry[3] if entry[3] is not None else f"{entry[1]}: {entry[2]}"
            for entry in self._entries
        ]

    def to_text(self) -> str:
        """The header section as text: every row followed by CRLF (no final blank line)."""
        return "".join(line + "\r\n" for line in self._lines())
