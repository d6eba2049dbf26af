"""Parse throughput: sipwire side by side with Sippy's and pyVoIP's parsers.

Run: ``python bench/parse.py`` (``pip install sippy pyVoIP`` for the peers; a peer
that is missing is reported and skipped).  Options: ``--seconds`` per measurement
(CPU seconds per case, default 2), ``--repeat`` (batches, best of, default 20).

Three messages: a typical INVITE with SDP, a 200 OK to it, a REGISTER.  Rows:

* sipwire lazy        -- ``parse_message(data, validate=False)``: framing + start line
* sipwire validated   -- ``parse_message(data)``: also Via/From/To/Call-ID/CSeq/Contact...
* sipwire typed       -- lazy parse, then typed access to Via, From, To, CSeq, Contact
* sipwire serialize   -- ``to_bytes()`` of an unchanged parsed message
* sipwire reserialize -- ``to_bytes()`` after one header changed (Max-Forwards)
* sippy parse         -- ``SipRequest(buf)`` / ``SipResponse(buf)`` (its own laziness)
* sippy typed         -- the same plus ``getHFBody`` of via, from, to, cseq, contact
* pyVoIP parse        -- ``SIPMessage(data)`` (eager)

Sippy takes ``str``: the message is decoded once, outside the timed loop, which
flatters Sippy slightly.  Ratios are sipwire / Sippy.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable

from sipwire.core.message import Request, Response, parse_message

INVITE = (
    b"INVITE sip:bob@biloxi.example.com SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP pc33.atlanta.example.com:5060;branch=z9hG4bK776asdhds;rport\r\n"
    b"Max-Forwards: 70\r\n"
    b'To: "Bob" <sip:bob@biloxi.example.com>\r\n'
    b'From: "Alice" <sip:alice@atlanta.example.com>;tag=1928301774\r\n'
    b"Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n"
    b"CSeq: 314159 INVITE\r\n"
    b"Contact: <sip:alice@pc33.atlanta.example.com:5060;transport=udp>\r\n"
    b"Allow: INVITE, ACK, CANCEL, BYE, OPTIONS, UPDATE, INFO, REFER, NOTIFY\r\n"
    b"Supported: replaces, timer, 100rel\r\n"
    b"User-Agent: ExamplePhone/1.2.3\r\n"
    b"Content-Type: application/sdp\r\n"
    b"Content-Length: 234\r\n"
    b"\r\n"
    b"v=0\r\n"
    b"o=alice 2890844526 2890844526 IN IP4 pc33.atlanta.example.com\r\n"
    b"s=Session SDP\r\n"
    b"c=IN IP4 192.0.2.101\r\n"
    b"t=0 0\r\n"
    b"m=audio 49172 RTP/AVP 0 8 101\r\n"
    b"a=rtpmap:0 PCMU/8000\r\n"
    b"a=rtpmap:8 PCMA/8000\r\n"
    b"a=rtpmap:101 telephone-event/8000\r\n"
    b"a=sendrecv\r\n"
)

OK_200 = (
    b"SIP/2.0 200 OK\r\n"
    b"Via: SIP/2.0/UDP pc33.atlanta.example.com:5060;branch=z9hG4bK776asdhds;"
    b"rport=5060;received=192.0.2.101\r\n"
    b"Record-Route: <sip:proxy.biloxi.example.com;lr>\r\n"
    b'To: "Bob" <sip:bob@biloxi.example.com>;tag=a6c85cf\r\n'
    b'From: "Alice" <sip:alice@atlanta.example.com>;tag=1928301774\r\n'
    b"Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n"
    b"CSeq: 314159 INVITE\r\n"
    b"Contact: <sip:bob@192.0.2.4:5060>\r\n"
    b"Allow: INVITE, ACK, CANCEL, BYE, OPTIONS, UPDATE\r\n"
    b"Server: ExampleServer/4.5\r\n"
    b"Content-Length: 0\r\n"
    b"\r\n"
)

REGISTER = (
    b"REGISTER sip:registrar.biloxi.example.com SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP bobspc.biloxi.example.com:5060;branch=z9hG4bKnashds7\r\n"
    b"Max-Forwards: 70\r\n"
    b"To: Bob <sip:bob@biloxi.example.com>\r\n"
    b"From: Bob <sip:bob@biloxi.example.com>;tag=456248\r\n"
    b"Call-ID: 843817637684230@998sdasdh09\r\n"
    b"CSeq: 1826 REGISTER\r\n"
    b"Contact: <sip:bob@192.0.2.4>;expires=7200;q=0.8\r\n"
    b"Expires: 7200\r\n"
    b"User-Agent: ExamplePhone/1.2.3\r\n"
    b"Content-Length: 0\r\n"
    b"\r\n"
)

MESSAGES = {"INVITE+SDP": INVITE, "200 OK": OK_200, "REGISTER": REGISTER}


def calibrate(fn: Callable[[], object], seconds: float) -> int:
    """How many calls of ``fn`` take about ``seconds`` of CPU time."""
    n = 1
    while True:
        t0 = time.process_time()
        for _ in range(n):
            fn()
        dt = time.process_time() - t0
        if dt > seconds / 4:
            return max(1, int(n * seconds / dt))
        n *= 2


def rates(cases: dict[str, Callable[[], object]], seconds: float, repeat: int) -> dict[str, float]:
    """Calls per second of every case: best of ``repeat`` batches, cases interleaved.

    CPU time of this process (``time.process_time``) is measured, so other processes
    on a shared machine disturb the figures less; interleaving spreads what remains
    over every case alike.
    """
    batches = {name: calibrate(fn, seconds / repeat) for name, fn in cases.items()}
    best = dict.fromkeys(cases, 0.0)
    for _ in range(repeat):
        for name, fn in cases.items():
            n = batches[name]
            t0 = time.process_time()
            for _ in range(n):
                fn()
            dt = time.process_time() - t0
            if dt > 0:
                best[name] = max(best[name], n / dt)
    return best


def sipwire_cases(data: bytes) -> dict[str, Callable[[], object]]:
    def lazy() -> object:
        return parse_message(data, validate=False)

    def validated() -> object:
        return parse_message(data)

    def typed() -> object:
        msg = parse_message(data, validate=False)
        return (
            msg.top_via.branch,
            msg.via,
            msg.from_.tag,
            msg.to.tag,
            msg.cseq.method,
            [c.uri for c in msg.contact],
        )

    parsed = parse_message(data)
    changed = parse_message(data)

    def serialize() -> object:
        return parsed.to_bytes()

    def reserialize() -> object:
        changed.headers.set("Max-Forwards", "69")
        changed.headers.set("Max-Forwards", "70")
        return changed.to_bytes()

    return {
        "sipwire lazy": lazy,
        "sipwire validated": validated,
        "sipwire typed": typed,
        "sipwire serialize": serialize,
        "sipwire reserialize": reserialize,
    }


def sippy_cases(data: bytes) -> dict[str, Callable[[], object]]:
    try:
        from sippy.SipRequest import SipRequest  # type: ignore[import-untyped]
        from sippy.SipResponse import SipResponse  # type: ignore[import-untyped]
    except ImportError:
        return {}
    text = data.decode()
    cls = SipResponse if text.startswith("SIP/") else SipRequest

    def parse() -> object:
        return cls(text)

    def typed() -> object:
        msg = cls(text)
        via = msg.getHFBody("via")
        return (
            via.getBranch(),
            [h.getBody() for h in msg.getHFs("via")],
            msg.getHFBody("from").getTag(),
            msg.getHFBody("to").getTag(),
            msg.getHFBody("cseq").getCSeq(),
            [h.getBody().getUrl() for h in msg.getHFs("contact")],
        )

    return {"sippy parse": parse, "sippy typed": typed}


def pyvoip_cases(data: bytes) -> dict[str, Callable[[], object]]:
    try:
        import pyVoIP.VoIP  # noqa: F401  (pyVoIP.SIP has an import cycle through VoIP)
        from pyVoIP.SIP import SIPMessage
    except ImportError:
        return {}

    def parse() -> object:
        return SIPMessage(data)

    try:
        parse()
    except Exception as exc:  # pyVoIP rejects what it does not implement
        print(f"  (pyVoIP cannot parse this message: {exc!r})", file=sys.stderr)
        return {}
    return {"pyVoIP parse": parse}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="CPU seconds per case")
    parser.add_argument("--repeat", type=int, default=20, help="batches per case (best of)")
    args = parser.parse_args(argv)

    for data in MESSAGES.values():  # sanity: every message parses and round-trips
        msg = parse_message(data)
        assert isinstance(msg, Request | Response) and msg.to_bytes() == data

    print(
        f"Python {sys.version.split()[0]}; best of {args.repeat} batches,"
        f" ~{args.seconds}s CPU per case"
    )
    header = f"{'message':<12} {'parser':<20} {'msgs/s':>10} {'us/msg':>8} {'vs sippy':>9}"
    print(header)
    print("-" * len(header))
    for label, data in MESSAGES.items():
        cases = {**sipwire_cases(data), **sippy_cases(data), **pyvoip_cases(data)}
        measured = rates(cases, args.seconds, args.repeat)
        sippy_parse = measured.get("sippy parse")
        sippy_typed = measured.get("sippy typed")
        for name, value in measured.items():
            base = sippy_typed if name in ("sipwire typed", "sippy typed") else sippy_parse
            ratio = f"{value / base:8.2f}x" if base else f"{'-':>9}"
            print(f"{label:<12} {name:<20} {value:>10,.0f} {1e6 / value:>8.2f} {ratio}")
        print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
