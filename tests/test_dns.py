"""RFC 3263 location over real DNS: sipwire.aio.dns against dnsmasq on loopback.

dnsmasq serves a private ``.test`` zone on 127.0.0.1 at a free port (foreground, no
upstream, no hosts file); the asyncio resolver is pointed at it. Also: the TTL cache,
the bounded cache, a silent server (timeout bounded by the configured timeout) and
``localhost``. The dnsmasq tests are ``peer`` tests: they fail if dnsmasq is missing.
"""

from __future__ import annotations

import asyncio
import pathlib
import socket
from collections.abc import Callable, Iterator, Sequence

import dns.exception
import dns.message
import dns.query
import pytest

from peers.ports import free_port_both
from peers.procs import PeerProcess, Procs, require_binary, wait_until
from sipwire.aio.dns import Resolver, locate, locate_iter
from sipwire.core.locate import DnsStatus, LocationError, Target
from sipwire.core.uri import SipURI

ZONE = [
    # example.test: NAPTR for TLS, TCP, UDP; UDP has two priorities and weights.
    "--naptr-record=example.test,10,50,s,SIPS+D2T,,_sips._tcp.example.test",
    "--naptr-record=example.test,20,50,s,SIP+D2T,,_sip._tcp.example.test",
    "--naptr-record=example.test,30,50,s,SIP+D2U,,_sip._udp.example.test",
    "--srv-host=_sips._tcp.example.test,tls.example.test,5061,0,0",
    "--srv-host=_sip._tcp.example.test,tcp.example.test,5060,0,0",
    "--srv-host=_sip._udp.example.test,b.example.test,5070,10,60",
    "--srv-host=_sip._udp.example.test,c.example.test,5071,10,40",
    "--srv-host=_sip._udp.example.test,a.example.test,5080,20,0",
    "--host-record=tls.example.test,127.0.0.10",
    "--host-record=tcp.example.test,127.0.0.20,::20",
    "--host-record=a.example.test,127.0.0.30",
    "--host-record=b.example.test,127.0.0.31,::31",
    "--host-record=c.example.test,127.0.0.32",
    # srvonly.test: no NAPTR, SRV for TCP and UDP.
    "--srv-host=_sip._tcp.srvonly.test,s1.srvonly.test,5090,0,0",
    "--srv-host=_sip._udp.srvonly.test,s1.srvonly.test,5091,0,0",
    "--host-record=s1.srvonly.test,127.0.0.40",
    # aonly.test: only A and AAAA.
    "--host-record=aonly.test,127.0.0.50,::50",
    # off.test: SRV "." for every transport -- "decidedly not available".
    "--srv-host=_sips._tcp.off.test",
    "--srv-host=_sip._tcp.off.test",
    "--srv-host=_sip._udp.off.test",
    "--host-record=off.test,127.0.0.60",
    # Everything else under .test is NXDOMAIN.
    "--local=/test/",
]


def first(n: int) -> int:
    return 0


class Dnsmasq:
    """A dnsmasq serving ZONE on 127.0.0.1:<port>."""

    def __init__(self, procs: Procs, tmp_path: pathlib.Path, extra: Sequence[str] = ()) -> None:
        binary = require_binary("dnsmasq")
        self.port = free_port_both()
        self.proc: PeerProcess = procs.start(
            "dnsmasq",
            [
                binary,
                "--keep-in-foreground",
                "--no-resolv",
                "--no-hosts",
                "--no-poll",
                "--conf-file=/dev/null",
                f"--port={self.port}",
                "--listen-address=127.0.0.1",
                "--bind-interfaces",
                f"--pid-file={tmp_path / 'dnsmasq.pid'}",
                "--log-queries",
                "--log-facility=-",
                *ZONE,
                *extra,
            ],
        )
        wait_until(self._answers, 10.0, interval=0.05, message="dnsmasq answering")

    def _answers(self) -> bool:
        if not self.proc.alive:
            raise AssertionError(f"dnsmasq exited early:\n{self.proc.tail()}")
        query = dns.message.make_query("aonly.test", "A")
        try:
            dns.query.udp(query, "127.0.0.1", port=self.port, timeout=0.2)
        except (dns.exception.Timeout, OSError):
            return False
        return True

    def resolver(self, **kwargs: object) -> Resolver:
        return Resolver(nameservers=["127.0.0.1"], port=self.port, **kwargs)  # type: ignore[arg-type]


@pytest.fixture
def dnsmasq(procs: Procs, tmp_path: pathlib.Path) -> Iterator[Dnsmasq]:
    server = Dnsmasq(procs, tmp_path, ["--local-ttl=60"])
    try:
        yield server
    finally:
        server.proc.stop()


def run(coro_factory: Callable[[], object], limit: float = 20.0) -> object:
    async def bounded() -> object:
        return await asyncio.wait_for(coro_factory(), limit)  # type: ignore[arg-type]

    return asyncio.run(bounded())


def located(uri: str, resolver: Resolver, **kwargs: object) -> list[Target]:
    result = run(lambda: locate(SipURI.parse(uri), resolver=resolver, **kwargs))  # type: ignore[arg-type]
    assert isinstance(result, list)
    return result


def addrs(targets: list[Target]) -> list[tuple[str, str, int]]:
    return [(t.transport, t.address, t.port) for t in targets]


@pytest.mark.peer
def test_naptr_srv_a_aaaa_in_rfc3263_order(dnsmasq: Dnsmasq) -> None:
    resolver = dnsmasq.resolver()
    targets = located("sip:alice@example.test", resolver, rand_below=first)
    assert addrs(targets) == [
        ("TLS", "127.0.0.10", 5061),
        ("TCP", "127.0.0.20", 5060),
        ("TCP", "::20", 5060),
        ("UDP", "127.0.0.31", 5070),  # priority 10, weight 60 (first with rand 0)
        ("UDP", "::31", 5070),
        ("UDP", "127.0.0.32", 5071),  # priority 10, weight 40
        ("UDP", "127.0.0.30", 5080),  # priority 20
    ]
    assert {t.host for t in targets} == {"example.test"}


@pytest.mark.peer
def test_client_transports_and_ip_preference_shape_the_list(dnsmasq: Dnsmasq) -> None:
    resolver = dnsmasq.resolver()
    targets = located(
        "sip:alice@example.test",
        resolver,
        supported_transports=("UDP",),
        ip_versions=(6, 4),
        rand_below=first,
    )
    assert addrs(targets) == [
        ("UDP", "::31", 5070),
        ("UDP", "127.0.0.31", 5070),
        ("UDP", "127.0.0.32", 5071),
        ("UDP", "127.0.0.30", 5080),
    ]
    sips = located("sips:bob@example.test", resolver)
    assert addrs(sips) == [("TLS", "127.0.0.10", 5061)]


@pytest.mark.peer
def test_same_priority_order_varies_with_the_default_random_source(dnsmasq: Dnsmasq) -> None:
    resolver = dnsmasq.resolver()
    seen: set[tuple[str, ...]] = set()
    for _ in range(200):
        targets = located("sip:example.test;transport=udp", resolver, ip_versions=(4,))
        assert targets[-1].address == "127.0.0.30"  # priority 20 always last
        seen.add(tuple(t.address for t in targets))
        if len(seen) == 2:
            break
    assert seen == {
        ("127.0.0.31", "127.0.0.32", "127.0.0.30"),
        ("127.0.0.32", "127.0.0.31", "127.0.0.30"),
    }


@pytest.mark.peer
def test_domain_with_srv_only(dnsmasq: Dnsmasq) -> None:
    targets = located("sip:srvonly.test", dnsmasq.resolver())
    assert addrs(targets) == [("TCP", "127.0.0.40", 5090), ("UDP", "127.0.0.40", 5091)]
    assert addrs(located("sip:srvonly.test;transport=udp", dnsmasq.resolver())) == [
        ("UDP", "127.0.0.40", 5091)
    ]


@pytest.mark.peer
def test_domain_with_a_and_aaaa_only(dnsmasq: Dnsmasq) -> None:
    resolver = dnsmasq.resolver()
    assert addrs(located("sip:aonly.test", resolver)) == [
        ("UDP", "127.0.0.50", 5060),
        ("UDP", "::50", 5060),
    ]
    assert addrs(located("sips:aonly.test", resolver, ip_versions=(4,))) == [
        ("TLS", "127.0.0.50", 5061)
    ]
    assert addrs(located("sip:aonly.test:5099;transport=tcp", resolver, ip_versions=(4,))) == [
        ("TCP", "127.0.0.50", 5099)
    ]


@pytest.mark.peer
def test_nxdomain_is_a_location_error(dnsmasq: Dnsmasq) -> None:
    with pytest.raises(LocationError) as info:
        located("sip:bob@nothing-here.test", dnsmasq.resolver())
    assert "nothing-here.test" in info.value.reason
    assert "nxdomain" in info.value.reason
    assert not info.value.timed_out


@pytest.mark.peer
def test_srv_dot_means_not_available(dnsmasq: Dnsmasq) -> None:
    with pytest.raises(LocationError) as info:
        located("sip:off.test", dnsmasq.resolver())
    assert "not available" in info.value.reason


@pytest.mark.peer
def test_locate_iter_is_lazy(dnsmasq: Dnsmasq) -> None:
    resolver = dnsmasq.resolver()

    async def first_only() -> Target:
        iterator = locate_iter(SipURI.parse("sip:example.test"), resolver=resolver)
        try:
            return await anext(iterator)
        finally:
            await iterator.aclose()

    target = run(first_only)
    assert isinstance(target, Target)
    assert (target.transport, target.address) == ("TLS", "127.0.0.10")
    # Only what the first target needed was asked: NAPTR, one SRV, its A and AAAA.
    assert resolver.cached == 4


@pytest.mark.peer
def test_cache_honours_ttl_and_survives_the_server_going_away(
    procs: Procs, tmp_path: pathlib.Path
) -> None:
    server = Dnsmasq(procs, tmp_path, ["--local-ttl=20"])
    now = [1000.0]
    resolver = server.resolver(clock=lambda: now[0], timeout=0.5)

    async def scenario() -> None:
        answer = await resolver.resolve("aonly.test", "A")
        assert answer.addresses == ("127.0.0.50",)
        assert answer.ttl == 20
        missing = await resolver.resolve("gone.test", "A")
        assert missing.status is DnsStatus.NXDOMAIN
        server.proc.stop()
        now[0] += 19  # within the TTL: answered from the cache, no server needed
        assert (await resolver.resolve("aonly.test", "A")).addresses == ("127.0.0.50",)
        assert (await resolver.resolve("gone.test", "A")).status is DnsStatus.NXDOMAIN
        now[0] += 2  # TTL over: asks the (dead) server again
        stale = await resolver.resolve("aonly.test", "A")
        assert stale.status in (DnsStatus.ERROR, DnsStatus.TIMEOUT)
        assert stale.addresses == ()

    run(scenario)


@pytest.mark.peer
def test_cache_is_bounded_and_max_ttl_caps(dnsmasq: Dnsmasq) -> None:
    now = [0.0]
    resolver = dnsmasq.resolver(cache_size=2, max_ttl=5.0, clock=lambda: now[0])

    async def scenario() -> None:
        for name in ("aonly.test", "tls.example.test", "tcp.example.test"):
            assert not (await resolver.resolve(name, "A")).empty
        assert resolver.cached == 2
        # dnsmasq logs queries in order: once a later query shows in the log, every
        # earlier one has too. Sentinels fence the part of the log under test.
        await resolver.resolve("fence-1.example.test", "A")
        dnsmasq.proc.wait_for(r"query\[A\] fence-1\.example\.test", 5.0)
        mark = dnsmasq.proc.mark()
        await resolver.resolve("tcp.example.test", "A")  # cached: dnsmasq not asked
        now[0] = 6.0  # past max_ttl (5 s) although the record says 60 s
        await resolver.resolve("tcp.example.test", "A")
        await resolver.resolve("fence-2.example.test", "A")
        dnsmasq.proc.wait_for(r"query\[A\] fence-2\.example\.test", 5.0, start=mark)
        assert dnsmasq.proc.output[mark:].count("query[A] tcp.example.test ") == 1

    run(scenario)


def test_silent_server_times_out_within_the_configured_bounds() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind(("127.0.0.1", 0))
        port = silent.getsockname()[1]
        resolver = Resolver(nameservers=["127.0.0.1"], port=port, timeout=0.3, lifetime=1.0)

        async def one_query() -> object:
            return await resolver.resolve("example.test", "A")

        answer = run(one_query, limit=10.0)
        assert getattr(answer, "status", None) is DnsStatus.TIMEOUT
        with pytest.raises(LocationError) as info:
            located("sip:example.test", resolver)
        assert info.value.timed_out
        assert "timed out" in info.value.reason


def test_lifetime_bounds_a_whole_location() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind(("127.0.0.1", 0))
        port = silent.getsockname()[1]
        # Each query may wait 5 s, but the location as a whole only 0.5 s: the outer
        # 4 s bound would fail the test if the lifetime were not enforced.
        resolver = Resolver(nameservers=["127.0.0.1"], port=port, timeout=5.0, lifetime=0.5)

        async def attempt() -> None:
            with pytest.raises(LocationError) as info:
                await locate(SipURI.parse("sip:example.test"), resolver=resolver)
            assert info.value.timed_out

        run(attempt, limit=4.0)


def test_localhost_and_static_hosts_need_no_server() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind(("127.0.0.1", 0))
        port = silent.getsockname()[1]
        resolver = Resolver(
            nameservers=["127.0.0.1"],
            port=port,
            timeout=0.3,
            static_hosts={"pbx.lan": ["10.1.2.3", "fd00::3"]},
        )
        assert addrs(located("sip:alice@localhost:5070", resolver)) == [
            ("UDP", "127.0.0.1", 5070),
            ("UDP", "::1", 5070),
        ]
        assert addrs(located("sip:pbx.lan:5060;transport=tcp", resolver, ip_versions=(6, 4))) == [
            ("TCP", "fd00::3", 5060),
            ("TCP", "10.1.2.3", 5060),
        ]
