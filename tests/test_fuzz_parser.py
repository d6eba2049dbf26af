"""Fuzzing the parser (DESIGN rule 7): bad input raises RemoteProtocolError, nothing else.

Byte mutations of the torture corpus (flip, insert, delete, truncate, splice, repeat)
and random bytes go through ``parse_message`` (validated and lazy), every typed
accessor, serialization, the response builder, and ``StreamParser`` fed in pieces.
Any other exception fails the test.  Runtime is bounded by ``max_examples`` and a
generous per-example deadline (it only catches pathological slowness).
"""

from __future__ import annotations

import contextlib
import pathlib
from datetime import timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sipwire.core._errors import RemoteProtocolError
from sipwire.core.message import (
    InvalidMessage,
    Limits,
    Request,
    Response,
    StreamParser,
    make_response,
    parse_message,
)

TORTURE = pathlib.Path(__file__).parent / "torture"
CORPUS = sorted(p.read_bytes() for p in TORTURE.rglob("*.dat"))
NASTY = [b"\r\n", b"\r\n\r\n", b"\n", b"\r", b" ", b"\t", b":", b";", b",", b"<", b">", b'"',
         b"\\", b"%", b"\x00", b"\xff", b"\xc3", b"l: 5\r\n", b"Content-Length: 99999\r\n",
         b"\r\n ", b"SIP/2.0 ", b"v: SIP/2.0/UDP h\r\n", b"*"]  # fmt: skip

FUZZ = settings(
    max_examples=1000,
    deadline=timedelta(seconds=2),
    suppress_health_check=[HealthCheck.too_slow],
)


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(CORPUS)))
    for _ in range(draw(st.integers(1, 6))):
        op = draw(st.sampled_from(["flip", "insert", "delete", "truncate", "splice", "repeat"]))
        pos = draw(st.integers(0, len(data)))
        if op == "flip" and pos < len(data):
            data[pos] ^= 1 << draw(st.integers(0, 7))
        elif op == "insert":
            data[pos:pos] = draw(st.sampled_from(NASTY) | st.binary(min_size=1, max_size=8))
        elif op == "delete":
            del data[pos : pos + draw(st.integers(1, 16))]
        elif op == "truncate":
            del data[pos:]
        elif op == "splice":
            other = draw(st.sampled_from(CORPUS))
            start = draw(st.integers(0, len(other)))
            data[pos:] = other[start:]
        elif op == "repeat":
            end = draw(st.integers(pos, min(len(data), pos + 64)))
            data[end:end] = data[pos:end] * draw(st.integers(1, 20))
    return bytes(data)


TYPED = ["via", "top_via", "from_", "to", "call_id", "cseq", "contact", "contact_is_star",
         "route", "record_route", "path", "service_route", "max_forwards", "content_length",
         "content_type", "expires", "min_expires", "require", "proxy_require", "supported",
         "unsupported", "allow", "event", "subscription_state", "rseq", "rack",
         "session_expires", "replaces", "refer_to"]  # fmt: skip


def exercise(msg: Request | Response, validated: bool) -> None:
    """Touch everything a user could; only RemoteProtocolError may come out."""
    try:
        msg.headers.items()
        msg.headers.get_all("Contact")
    except RemoteProtocolError:
        assert not validated
        return
    for name in TYPED:
        try:
            getattr(msg, name)
        except RemoteProtocolError:
            assert name not in ("via", "top_via", "from_", "to", "call_id", "cseq") or (
                not validated
            )
    if isinstance(msg, Request):
        try:
            msg.uri  # noqa: B018
        except RemoteProtocolError:
            assert not validated
    data = msg.to_bytes()
    assert parse_message(data, validate=False) == msg
    if validated:
        if isinstance(msg, Request):
            response = make_response(msg, 400, to_tag="fuzz")
            assert parse_message(response.to_bytes()).status == 400  # type: ignore[union-attr]
        msg.headers.add("X-Fuzz", "1")
        again = parse_message(msg.to_bytes())
        if "Content-Length" not in msg.headers:  # serializing adds it
            again.headers.remove("Content-Length")
        assert again == msg


def run_datagram(data: bytes) -> None:
    for validate in (True, False):
        try:
            msg = parse_message(data, validate=validate)
        except InvalidMessage as err:
            assert err.message.to_bytes()  # what a transport logs
            assert isinstance(err.message.body, bytes)
            if isinstance(err.message, Request):
                with contextlib.suppress(RemoteProtocolError):  # a stateless answer
                    make_response(err.message, err.status_hint)
            continue
        except RemoteProtocolError:
            continue
        exercise(msg, validate)


def run_stream(data: bytes, cuts: list[int]) -> None:
    parser = StreamParser(Limits(max_message_size=4096))
    prev = 0
    for cut in [*sorted(cuts), len(data)]:
        chunk = data[prev:cut]
        prev = cut
        while True:
            try:
                for item in parser.feed(chunk):
                    if not isinstance(item, Request | Response):
                        continue
                    assert item.to_bytes() == item.to_bytes()
                    exercise(item, True)
                break
            except InvalidMessage:
                chunk = b""  # the parser stays usable: drain what is buffered
            except RemoteProtocolError:
                return  # framing error: the connection would be closed


@FUZZ
@given(mutated())
def test_mutated_corpus_datagrams(data: bytes) -> None:
    run_datagram(data)


@FUZZ
@given(mutated(), st.lists(st.integers(0, 5000), max_size=5))
def test_mutated_corpus_streams(data: bytes, cuts: list[int]) -> None:
    run_stream(data + b"\r\n\r\n" + data, [c for c in cuts if c <= 2 * len(data)])


@FUZZ
@given(st.binary(max_size=1500))
def test_random_bytes(data: bytes) -> None:
    run_datagram(data)
    run_stream(data, [len(data) // 2])


@FUZZ
@given(st.lists(st.sampled_from(NASTY) | st.binary(max_size=6), max_size=60).map(b"".join))
def test_random_sip_like_fragments(data: bytes) -> None:
    run_datagram(b"INVITE sip:a@b SIP/2.0\r\n" + data)
    run_datagram(b"SIP/2.0 200 OK\r\n" + data)
    run_stream(b"OPTIONS sip:a@b SIP/2.0\r\n" + data, [7, 30])


def test_every_corpus_file_survives_every_truncation() -> None:
    """Deterministic: every prefix of every corpus file, as a datagram and a stream."""
    for data in CORPUS:
        step = max(1, len(data) // 97)
        for cut in range(0, len(data), step):
            run_datagram(data[:cut])
        run_stream(data, list(range(0, len(data), 7)))


def test_pathological_sizes_stay_bounded() -> None:
    many_lines = b"OPTIONS sip:a@b SIP/2.0\r\n" + b"X: y\r\n" * 20000 + b"\r\n"
    for data in (
        many_lines,
        b"OPTIONS sip:a@b SIP/2.0\r\nX: " + b"a" * 70000 + b"\r\n\r\n",
        b"SIP/2.0 200 OK\r\nContent-Length: " + b"9" * 5000 + b"\r\n\r\n",
        b"SIP/2.0 200 OK\r\nl: 0" + b"0" * 5000 + b"1\r\n\r\nx",
        b"\r\n" * 40000,
    ):
        run_datagram(data)
        run_stream(data, [])
