"""Static routes (REGEX=URI[,URI...], failover order, weights) and the routing hook."""

from __future__ import annotations

import collections
import itertools
import pathlib
import random

import pytest

from sipwire.aio._transport_common import Source
from sipwire.apps.routing import (
    Redirect,
    Reject,
    Relay,
    Route,
    RouteTable,
    RoutingContext,
    call_hook,
    load_hook,
)
from sipwire.core._errors import LocalProtocolError
from sipwire.core.message import Request
from sipwire.core.uri import SipURI
from sipwire.store import Binding


def test_parse_entries_in_order_first_match_wins() -> None:
    table = RouteTable.parse(
        [
            "# a comment",
            r"^sip:\+1[0-9]+@=sip:gw1.example.net;transport=tcp,<sip:gw2.example.net>",
            "",
            r"@partner\.example$=sip:10.0.0.5:5060",
        ]
    )
    assert len(table) == 2
    route = table.match("sip:+15551234@example.com")
    assert route is not None
    assert [str(h.uri) for h in route.hops] == [
        "sip:gw1.example.net;transport=tcp",
        "sip:gw2.example.net",
    ]
    assert table.next_hops("sip:+15551234@x") == [
        SipURI.parse("sip:gw1.example.net;transport=tcp"),
        SipURI.parse("sip:gw2.example.net"),
    ]
    assert table.next_hops("sip:bob@partner.example") == [SipURI.parse("sip:10.0.0.5:5060")]
    assert table.match("sip:bob@example.com") is None
    assert table.next_hops("sip:bob@example.com") is None


def test_regex_may_contain_equals_signs() -> None:
    route = Route.parse(r"^sip:[^;]*;user=phone=sips:gw.example.net")
    assert route.pattern.pattern == r"^sip:[^;]*;user=phone"
    assert route.matches("sip:+1555@x;user=phone")


@pytest.mark.parametrize(
    "entry",
    [
        "no-uri-here",
        "=sip:gw.example.net",
        "(unbalanced=sip:gw.example.net",
        "x=sip:gw.example.net;weight=abc",
        "x=sip:gw.example.net;weight=70000",
        "x=sip:",
        "x=sip:gw1,sip:bad host",
    ],
)
def test_bad_entries_are_configuration_errors(entry: str) -> None:
    with pytest.raises(LocalProtocolError):
        RouteTable.parse([entry])


def test_unweighted_hops_fail_over_in_order() -> None:
    route = Route.parse("x=sip:a,sip:b,sip:c")
    assert [u.host for u in route.order(lambda: 0.99)] == ["a", "b", "c"]
    assert not route.weighted


def test_weighted_order_follows_the_draw() -> None:
    route = Route.parse("x=sip:a;weight=3,sip:b;weight=1,sip:c;weight=0")
    assert route.weighted
    # The weight parameter is removed from the next hop.
    assert all(not h.uri.has_param("weight") for h in route.hops)
    # Draws in [0, 1): 3/4 of the range picks a first, the rest b; c (weight 0) is last.
    assert [u.host for u in route.order(lambda: 0.1)] == ["a", "b", "c"]
    assert [u.host for u in route.order(lambda: 0.8)] == ["b", "a", "c"]


def test_weights_spread_requests_proportionally() -> None:
    rng = random.Random(7)
    table = RouteTable.parse(["x=sip:a;weight=3,sip:b;weight=1"], rand=rng.random)
    firsts = collections.Counter(
        hops[0].host for hops in (table.next_hops("sip:x") or [] for _ in range(4000)) if hops
    )
    assert 2800 < firsts["a"] < 3200 and firsts["a"] + firsts["b"] == 4000


def test_hop_without_weight_in_a_weighted_route_counts_as_one() -> None:
    route = Route.parse("x=sip:a;weight=1,sip:b")
    draws = itertools.cycle([0.75, 0.0])
    assert [u.host for u in route.order(lambda: next(draws))] == ["b", "a"]


def test_from_config_and_add() -> None:
    table = RouteTable.from_config(None)
    assert not table and len(table) == 0
    table.add("x=sip:a")
    table.add(Route.parse("y=sip:b"))
    assert [str(r) for r in table] == ["x=sip:a", "y=sip:b"]


# --------------------------------------------------------------------------- decisions


def test_decisions_validate_their_arguments() -> None:
    relay = Relay(targets=["sip:bob@192.0.2.1", SipURI.parse("sip:c@d")], next_hops=["<sip:gw>"])
    assert [str(u) for u in relay.target_uris] == ["sip:bob@192.0.2.1", "sip:c@d"]
    assert [u.host for u in relay.hop_uris] == ["gw"]
    with pytest.raises(LocalProtocolError):
        Relay(targets="sip:bob@x")  # a string, not a list
    with pytest.raises(LocalProtocolError):
        Relay(targets=["tel:+1555"])  # targets are SIP URIs
    with pytest.raises(LocalProtocolError):
        Relay(targets=["sip:x"], fork="both")  # type: ignore[arg-type]
    redirect = Redirect(contacts=["<sip:a@b>;q=0.7", SipURI.parse("sip:c@d")])
    assert [str(a) for a in redirect.addresses] == ["<sip:a@b>;q=0.7", "<sip:c@d>"]
    with pytest.raises(LocalProtocolError):
        Redirect(contacts=["sip:a@b"], status=200)
    with pytest.raises(LocalProtocolError):
        Reject(200)
    assert Reject(486, "Busy").reason == "Busy"


# --------------------------------------------------------------------------- the hook


def _context() -> RoutingContext:
    async def lookup(aor: str) -> list[Binding]:
        return []

    return RoutingContext(
        source=Source(transport="UDP", remote=("127.0.0.1", 5070), local=("127.0.0.1", 5060)),
        local=True,
        aor="sip:bob@example.test",
        in_dialog=False,
        domains=frozenset({"example.test"}),
        lookup=lookup,
        routes=RouteTable(),
    )


def _request() -> Request:
    return Request(
        "INVITE",
        "sip:bob@example.test",
        [
            ("From", "<sip:a@example.test>;tag=1"),
            ("To", "<sip:bob@example.test>"),
            ("Call-ID", "h1"),
            ("CSeq", "1 INVITE"),
        ],
    )


HOOK_SOURCE = """
from sipwire.apps.routing import Relay, Reject

def route(request, context):
    if request.uri.user == "bob":
        return Relay(targets=["sip:bob@192.0.2.9"])
    return Reject(404)

async def aroute(request, context):
    return None

not_callable = 3
"""


async def test_load_hook_from_a_file_and_from_a_module(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "policy_hook_file.py"
    path.write_text(HOOK_SOURCE)
    hook = load_hook(f"{path}:route")
    decision = await call_hook(hook, _request(), _context())
    assert isinstance(decision, Relay) and str(decision.target_uris[0]) == "sip:bob@192.0.2.9"
    monkeypatch.syspath_prepend(str(tmp_path))
    ahook = load_hook("policy_hook_file:aroute")
    assert await call_hook(ahook, _request(), _context()) is None
    with pytest.raises(LocalProtocolError, match="no function"):
        load_hook("policy_hook_file:not_callable")
    with pytest.raises(LocalProtocolError, match="no function"):
        load_hook("policy_hook_file:missing")
    with pytest.raises(LocalProtocolError, match="cannot import"):
        load_hook("no_such_module_xyz:route")
    with pytest.raises(LocalProtocolError):
        load_hook(f"{tmp_path / 'absent.py'}:route")


async def test_call_hook_rejects_a_wrong_return_type() -> None:
    with pytest.raises(LocalProtocolError, match="expected Relay"):
        await call_hook(lambda r, c: 42, _request(), _context())  # type: ignore[arg-type,return-value]
