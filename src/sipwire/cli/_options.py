"""``sipwire options URI``: send OPTIONS and print the answer (like ``sipsak -s``)."""

from __future__ import annotations

import argparse
import time

from sipwire.cli._common import die, setup_logging

HELP = "send OPTIONS to a SIP URI (RFC 3263 location), print the response and round-trip time"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("uri", help="sip:host[:port][;transport=udp|tcp|tls|ws]")
    parser.add_argument(
        "--timeout",
        type=float,
        default=5.0,
        metavar="SECONDS",
        help="give up after this long (default 5)",
    )
    parser.add_argument(
        "--from",
        dest="from_uri",
        default="sip:sipwire@invalid",
        help="From URI (default sip:sipwire@invalid)",
    )
    parser.add_argument("--nameserver", help="DNS server IP[:port] instead of the system's")
    parser.add_argument(
        "-v", "--verbose", action="count", default=0, help="-v: log; -vv: print every message"
    )


def run(args: argparse.Namespace) -> int:
    setup_logging(args.verbose - 1)
    from sipwire.aio.transport import run as aio_run
    from sipwire.core._errors import RemoteProtocolError
    from sipwire.core.uri import SipURI, parse_uri

    try:
        uri = parse_uri(args.uri)
    except RemoteProtocolError as exc:
        return die("options", f"bad URI {args.uri!r}: {exc.reason}", 2)
    if not isinstance(uri, SipURI):
        return die("options", f"need a sip: or sips: URI, not {args.uri!r}", 2)
    return aio_run(_main(args, uri))


async def _main(args: argparse.Namespace, uri: object) -> int:
    from sipwire.aio.dns import Resolver
    from sipwire.aio.endpoint import Endpoint
    from sipwire.core.message import Request
    from sipwire.core.uri import SipURI

    assert isinstance(uri, SipURI)
    resolver = None
    if args.nameserver:
        host, _, port = (
            args.nameserver.rpartition(":")
            if args.nameserver.count(":") == 1
            else (args.nameserver, "", "53")
        )
        resolver = Resolver(nameservers=[host], port=int(port or 53))
    family_host = (
        "::"
        if uri.host.startswith("[") and uri.host != "[::1]"
        else ("::1" if uri.host == "[::1]" else "0.0.0.0")
    )
    bind = "127.0.0.1" if uri.host in ("127.0.0.1", "localhost") else family_host
    bind_host = f"[{bind}]" if ":" in bind else bind
    ep = Endpoint(listen=[f"udp:{bind_host}:0"], resolver=resolver)
    if args.verbose >= 2:
        ep.trace = lambda rec: print(
            f"--- {rec.direction} {rec.transport} "
            f"{rec.remote[0]}:{rec.remote[1]}\n"
            f"{rec.message.to_bytes().decode('utf-8', 'replace')}"
        )
    async with ep:
        tag = ep.new_tag()
        request = Request(
            "OPTIONS",
            uri.without_headers(),
            [
                ("From", f"<{args.from_uri}>;tag={tag}"),
                ("To", f"<{uri.without_headers()}>"),
                ("Call-ID", ep.new_call_id()),
                ("CSeq", "1 OPTIONS"),
                ("Accept", "application/sdp"),
            ],
        )
        started = time.perf_counter()
        handle = ep.send_request(request)
        try:
            response = await handle.wait_final(args.timeout)
        except TimeoutError:
            where = handle.destination
            target = f"{where.transport.lower()}:{where.host}:{where.port}" if where else args.uri
            return die("options", f"no response from {target} within {args.timeout:g} s")
        elapsed = (time.perf_counter() - started) * 1000
        where = handle.destination
        via = f" from {where.transport.lower()}:{where.host}:{where.port}" if where else ""
        print(f"SIP/2.0 {response.status} {response.reason}{via} in {elapsed:.1f} ms")
        for name in ("Server", "User-Agent", "Allow", "Supported", "Accept", "Warning"):
            value = response.headers.get(name)
            if value:
                print(f"  {name}: {value}")
        return 0 if 200 <= response.status < 300 else 1
