"""Registrar logic (RFC 3261 §10.3) on parsed REGISTER requests, with a fake clock."""

from __future__ import annotations

import pytest

from sipwire.apps.registrar import Registrar, RegistrarPolicy, process_register
from sipwire.core._errors import RemoteProtocolError
from sipwire.core.message import Request, parse_message
from sipwire.store.memory import MemoryLocationStore

AOR = "sip:alice@example.test"


def register(
    *contacts: str, expires: int | None = None, call_id: str = "c1", cseq: int = 1, extra: str = ""
) -> Request:
    lines = [
        "REGISTER sip:example.test SIP/2.0",
        "Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK1",
        "Max-Forwards: 70",
        "From: <sip:alice@example.test>;tag=1",
        "To: <sip:alice@example.test>",
        f"Call-ID: {call_id}",
        f"CSeq: {cseq} REGISTER",
        *[f"Contact: {c}" for c in contacts],
    ]
    if expires is not None:
        lines.append(f"Expires: {expires}")
    if extra:
        lines.append(extra)
    lines += ["Content-Length: 0", "", ""]
    msg = parse_message("\r\n".join(lines).encode())
    assert isinstance(msg, Request)
    return msg


def contacts_of(headers: list[tuple[str, str]]) -> list[str]:
    return [v for n, v in headers if n == "Contact"]


def test_add_refresh_query_and_remove() -> None:
    out = process_register(register("<sip:alice@192.0.2.1:5060>"), [], aor=AOR, now=1000.0)
    assert out.status == 200 and out.bindings is not None
    assert contacts_of(out.headers) == ["<sip:alice@192.0.2.1:5060>;expires=3600"]
    assert any(n == "Date" for n, _ in out.headers)
    bindings = out.bindings
    # A query (no Contact) lists bindings with the remaining time and changes nothing.
    q = process_register(register(), bindings, aor=AOR, now=1600.0)
    assert q.bindings is None and contacts_of(q.headers) == [
        "<sip:alice@192.0.2.1:5060>;expires=3000"
    ]
    # A refresh with a higher CSeq and the contact's own expires param.
    r = process_register(
        register("<sip:alice@192.0.2.1:5060>;expires=120", cseq=2), bindings, aor=AOR, now=1700.0
    )
    assert r.bindings is not None and contacts_of(r.headers) == [
        "<sip:alice@192.0.2.1:5060>;expires=120"
    ]
    # Removal with Expires: 0.
    d = process_register(
        register("<sip:alice@192.0.2.1:5060>", expires=0, cseq=3), r.bindings, aor=AOR, now=1701.0
    )
    assert d.status == 200 and d.bindings == [] and contacts_of(d.headers) == []


def test_star_removes_all_only_with_expires_zero() -> None:
    out = process_register(
        register("<sip:a@192.0.2.1>", "<sip:a@192.0.2.2>;q=0.5"), [], aor=AOR, now=0.0
    )
    assert out.bindings is not None and len(out.bindings) == 2
    bad = process_register(register("*", cseq=2), out.bindings, aor=AOR, now=1.0)
    assert bad.status == 400
    gone = process_register(register("*", expires=0, cseq=2), out.bindings, aor=AOR, now=1.0)
    assert gone.status == 200 and gone.bindings == []


def test_interval_too_brief_and_max_expires() -> None:
    policy = RegistrarPolicy(min_expires=60, max_expires=600)
    brief = process_register(
        register("<sip:a@192.0.2.1>", expires=30), [], aor=AOR, now=0.0, policy=policy
    )
    assert brief.status == 423 and ("Min-Expires", "60") in brief.headers and brief.bindings is None
    long = process_register(
        register("<sip:a@192.0.2.1>", expires=99999), [], aor=AOR, now=0.0, policy=policy
    )
    assert contacts_of(long.headers) == ["<sip:a@192.0.2.1>;expires=600"]


def test_out_of_order_cseq_fails_and_new_call_id_replaces() -> None:
    first = process_register(register("<sip:a@192.0.2.1>", cseq=5), [], aor=AOR, now=0.0)
    assert first.bindings is not None
    stale = process_register(
        register("<sip:a@192.0.2.1>", cseq=4), first.bindings, aor=AOR, now=1.0
    )
    assert stale.status == 500 and stale.bindings is None
    # A different Call-ID (the phone rebooted) updates regardless of CSeq.
    other = process_register(
        register("<sip:a@192.0.2.1>", cseq=1, call_id="c2"), first.bindings, aor=AOR, now=1.0
    )
    assert other.status == 200 and other.bindings is not None and other.bindings[0].call_id == "c2"


def test_contact_params_vs_uri_params_rfc4475_cparam() -> None:
    # cparam01: an unbracketed contact's params are header params, never URI params.
    out = process_register(register("sip:a@192.0.2.1;unknownparam"), [], aor=AOR, now=0.0)
    assert out.bindings is not None and out.bindings[0].contact == "sip:a@192.0.2.1"
    # cparam02: inside <> the param belongs to the URI and comes back in later fetches.
    out = process_register(register("<sip:a@192.0.2.1;unknownparam>"), [], aor=AOR, now=0.0)
    assert out.bindings is not None and out.bindings[0].contact == "sip:a@192.0.2.1;unknownparam"
    assert contacts_of(out.headers)[0].startswith("<sip:a@192.0.2.1;unknownparam>")


def test_uri_comparison_and_instance_replacement() -> None:
    first = process_register(
        register('<sip:a@192.0.2.1:5060>;+sip.instance="<urn:uuid:1>";reg-id=1'),
        [],
        aor=AOR,
        now=0.0,
    )
    assert first.bindings is not None
    # Same device (instance + reg-id) from a new address replaces the old binding.
    moved = process_register(
        register('<sip:a@198.51.100.7:5060>;+sip.instance="<urn:uuid:1>";reg-id=1', cseq=2),
        first.bindings,
        aor=AOR,
        now=1.0,
    )
    assert moved.bindings is not None and [b.contact for b in moved.bindings] == [
        "sip:a@198.51.100.7:5060"
    ]
    # §19.1.4: host case differs -> the same binding, refreshed rather than duplicated.
    same = process_register(register("<sip:a@EXAMPLE.org>", cseq=3), [], aor=AOR, now=0.0)
    assert same.bindings is not None
    again = process_register(
        register("<sip:a@example.org>", cseq=4), same.bindings, aor=AOR, now=1.0
    )
    assert again.bindings is not None and len(again.bindings) == 1


def test_binding_bound_per_aor() -> None:
    policy = RegistrarPolicy(max_bindings=2)
    out = process_register(
        register("<sip:a@192.0.2.1>", "<sip:a@192.0.2.2>", "<sip:a@192.0.2.3>"),
        [],
        aor=AOR,
        now=0.0,
        policy=policy,
    )
    assert out.status == 403 and out.bindings is None


def test_path_is_stored_and_echoed() -> None:
    out = process_register(
        register("<sip:a@192.0.2.1>", extra="Path: <sip:edge.example.test;lr>"),
        [],
        aor=AOR,
        now=0.0,
    )
    assert out.bindings is not None and out.bindings[0].path == ("<sip:edge.example.test;lr>",)
    assert ("Path", "<sip:edge.example.test;lr>") in out.headers


async def test_registrar_with_store_and_expiry() -> None:
    clock = [1000.0]
    reg = Registrar(MemoryLocationStore(), wall_clock=lambda: clock[0])
    out = await reg.register(
        register("<sip:a@192.0.2.1>;q=0.2", "<sip:a@192.0.2.2>;q=0.9", expires=60)
    )
    assert out.status == 200
    assert [b.contact for b in await reg.lookup(AOR)] == ["sip:a@192.0.2.2", "sip:a@192.0.2.1"]
    clock[0] += 61
    assert await reg.lookup(AOR) == []


def test_non_sip_to_is_rejected() -> None:
    msg = register("<sip:a@192.0.2.1>")
    msg.headers.set("To", "<tel:+15551234>")
    from sipwire.apps.registrar import aor_of

    with pytest.raises(RemoteProtocolError) as info:
        aor_of(msg)
    assert info.value.status_hint == 400
