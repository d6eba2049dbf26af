"""The REGISTER client (RFC 3261 §10.2): refresh, challenges, 423, backoff, unregister.

Single-sided scripts feed responses built from the REGISTER the client queued; the last
tests run a phone against ``process_register`` of the registrar app over ``ua_pair``.
"""

from __future__ import annotations

from typing import Any

import pytest

from sipwire.apps.registrar import RegistrarPolicy
from sipwire.core._errors import LocalProtocolError
from sipwire.core.digest import DigestClient, DigestServer
from sipwire.core.message import Request, Response, make_response
from sipwire.core.registration import (
    TABLE,
    Misuse,
    RegInput,
    Registered,
    Registration,
    RegistrationConfig,
    RegistrationFailed,
    RegState,
    Unregistered,
    refresh_delay,
    render_markdown,
)
from ua_pair import Network, Phone, RegistrarNode


def client(**kw: Any) -> Registration:
    kw.setdefault("random_below", lambda n: n - 1)  # jitter factor 1.0
    return Registration(
        registrar="sip:example.com",
        aor="<sip:alice@example.com>",
        contact="<sip:alice@192.0.2.10:5060>",
        random_token=iter(f"t{i}" for i in range(1000)).__next__,
        **kw,
    )


def sent(reg: Registration) -> Request:
    (out,) = reg.outgoing()
    return out.request


def reply(request: Request, status: int, *headers: tuple[str, str]) -> Response:
    response = make_response(request, status, to_tag="reg")
    for name, value in headers:
        response.headers.add(name, value)
    return response


def ok(request: Request, expires: int = 3600, contact: str | None = None) -> Response:
    contact = contact or f"<sip:alice@192.0.2.10:5060>;expires={expires}"
    return reply(request, 200, ("Contact", contact))


def test_table_never_calls_network_input_misuse() -> None:
    for (_, inp), entry in TABLE.items():
        if isinstance(entry, Misuse):
            assert inp.name.startswith("APP_")
    assert "| Registered | refresh timer |" in render_markdown()


def test_docs_show_the_current_table() -> None:
    import pathlib

    doc = pathlib.Path(__file__).resolve().parents[1] / "docs" / "dialogs.md"
    assert render_markdown() in doc.read_text(encoding="utf-8")


@pytest.mark.parametrize(
    ("granted", "delay"), [(3600, 3570), (600, 570), (60, 30), (40, 20), (10, 5)]
)
def test_refresh_delay_is_30s_before_expiry_but_not_before_half(granted: int, delay: float) -> None:
    assert refresh_delay(granted) == delay


def test_register_then_refresh_keeps_call_id_and_raises_cseq() -> None:
    reg = client()
    first = reg.register(0.0)
    assert sent(reg) is first
    assert str(first.uri) == "sip:example.com"
    assert str(first.to.uri) == str(first.from_.uri) == "sip:alice@example.com"
    assert first.to.tag is None and first.from_.tag is not None
    assert str(first.contact[0].uri) == "sip:alice@192.0.2.10:5060"
    assert first.expires == 3600 and first.cseq.seq == 1
    reg.receive_response(ok(first), 0.5)
    (event,) = reg.events()
    assert isinstance(event, Registered)
    assert (event.expires, event.binding_found) == (3600, True)
    assert reg.registered and reg.state is RegState.REGISTERED
    assert reg.next_deadline() == 0.5 + 3570
    reg.handle_timer(3570.0)
    assert reg.outgoing() == []  # not due yet
    reg.handle_timer(3570.5)
    refresh = sent(reg)
    assert refresh.call_id == first.call_id and refresh.from_.tag == first.from_.tag
    assert refresh.cseq.seq == 2
    reg.receive_response(ok(refresh, 600), 3571.0)
    (event,) = reg.events()
    assert isinstance(event, Registered) and event.expires == 600
    assert reg.next_deadline() == 3571.0 + 570


def test_binding_not_listed_falls_back_to_the_expires_header() -> None:
    reg = client()
    request = reg.register(0.0)
    reg.outgoing()
    response = reply(
        request, 200, ("Contact", "<sip:alice@203.0.113.7:40000>;expires=120"), ("Expires", "300")
    )
    reg.receive_response(response, 1.0)
    (event,) = reg.events()
    assert isinstance(event, Registered)
    assert (event.expires, event.binding_found) == (300, False)
    assert [str(c.uri) for c in event.contacts] == ["sip:alice@203.0.113.7:40000"]


def test_binding_found_by_instance_id() -> None:
    reg = Registration(
        registrar="sip:example.com",
        aor="<sip:alice@example.com>",
        contact='<sip:alice@192.0.2.10>;+sip.instance="<urn:uuid:1>"',
    )
    request = reg.register(0.0)
    listed = '<sip:alice@198.51.100.1:9999>;+sip.instance="<urn:uuid:1>";expires=90'
    reg.receive_response(reply(request, 200, ("Contact", listed)), 0.0)
    (event,) = reg.events()
    assert isinstance(event, Registered) and event.binding_found and event.expires == 90


def test_a_200_that_drops_our_binding_is_a_failure() -> None:
    reg = client()
    request = reg.register(0.0)
    reg.receive_response(ok(request, expires=0), 0.0)
    (event,) = reg.events()
    assert isinstance(event, RegistrationFailed)
    assert reg.state is RegState.WAITING and not reg.registered


def test_401_retried_once_with_credentials() -> None:
    server = DigestServer("example.com", secret=b"s" * 32, random=lambda n: b"x" * n)
    reg = client(auth=DigestClient("alice", "pw", random=lambda n: b"c" * n))
    first = reg.register(0.0)
    reg.outgoing()
    challenge = reply(first, 401, ("WWW-Authenticate", str(server.challenges(0.0)[0])))
    reg.receive_response(challenge, 0.1)
    second = sent(reg)
    assert second.cseq.seq == 2 and second.call_id == first.call_id
    assert "Authorization" in second.headers
    assert reg.events() == []
    reg.receive_response(ok(second), 0.2)
    assert isinstance(reg.events()[0], Registered)
    # The refresh carries credentials pre-emptively (RFC 7616 §3.6).
    reg.handle_timer(3600.0)
    assert "Authorization" in sent(reg).headers


def test_rejected_credentials_are_not_resent_and_back_off() -> None:
    server = DigestServer("example.com", secret=b"s" * 32, random=lambda n: b"x" * n)
    reg = client(auth=DigestClient("alice", "wrong", random=lambda n: b"c" * n))
    first = reg.register(0.0)
    reg.outgoing()
    reg.receive_response(reply(first, 401, ("WWW-Authenticate", str(server.challenges(0.0)[0]))), 0)
    second = sent(reg)
    reg.receive_response(
        reply(second, 401, ("WWW-Authenticate", str(server.challenges(0.0)[0]))), 0.1
    )
    assert reg.outgoing() == []
    (event,) = reg.events()
    assert isinstance(event, RegistrationFailed) and event.status == 401
    assert event.retry_in == 30.0


def test_423_retries_at_once_with_min_expires() -> None:
    reg = client(expires=60)
    first = reg.register(0.0)
    reg.outgoing()
    reg.receive_response(reply(first, 423, ("Min-Expires", "1800")), 0.1)
    second = sent(reg)
    assert second.expires == 1800 and second.cseq.seq == 2
    reg.receive_response(ok(second, 1800), 0.2)
    assert isinstance(reg.events()[0], Registered)
    reg.handle_timer(0.2 + 1770)
    assert sent(reg).expires == 1800  # refreshes keep the larger value


def test_423_without_a_larger_min_expires_is_a_failure() -> None:
    reg = client(expires=600)
    first = reg.register(0.0)
    reg.outgoing()
    reg.receive_response(reply(first, 423, ("Min-Expires", "300")), 0.1)
    assert reg.outgoing() == []
    assert isinstance(reg.events()[0], RegistrationFailed)


def test_backoff_doubles_up_to_the_cap_and_success_resets_it() -> None:
    reg = client(config=RegistrationConfig(base_backoff=30, max_backoff=200))
    now = 0.0
    waits = []
    for _ in range(5):
        request = reg.register(now) if reg.state is RegState.IDLE else sent(reg)
        if reg.state is RegState.IDLE:
            reg.outgoing()
        reg.outgoing()
        reg.receive_response(reply(request, 503), now)
        (event,) = reg.events()
        assert isinstance(event, RegistrationFailed)
        waits.append(event.retry_in)
        now = reg.next_deadline() or 0.0
        reg.handle_timer(now)
    assert waits == [30, 60, 120, 200, 200]
    reg.receive_response(ok(sent(reg)), now)
    assert reg.failures == 0


def test_backoff_jitter_and_retry_after() -> None:
    reg = client(random_below=lambda n: 0)  # jitter factor 0.5
    request = reg.register(0.0)
    reg.outgoing()
    reg.receive_response(reply(request, 500), 0.0)
    (event,) = reg.events()
    assert isinstance(event, RegistrationFailed) and event.retry_in == 15.0
    reg.handle_timer(15.0)
    request = sent(reg)
    reg.receive_response(reply(request, 503, ("Retry-After", "120 (maintenance)")), 15.0)
    (event,) = reg.events()
    assert isinstance(event, RegistrationFailed) and event.retry_in == 120.0
    assert reg.next_deadline() == 135.0


def test_timeout_synthesized_by_the_shell_is_a_failure() -> None:
    reg = client()
    request = reg.register(0.0)
    reg.outgoing()
    reg.receive_response(make_response(request, 408), 32.0)
    assert isinstance(reg.events()[0], RegistrationFailed)
    assert reg.state is RegState.WAITING


def test_stale_responses_are_ignored() -> None:
    reg = client()
    first = reg.register(0.0)
    reg.outgoing()
    reg.receive_response(reply(first, 503), 0.0)
    reg.events()
    reg.handle_timer(100.0)
    second = sent(reg)
    reg.receive_response(ok(first), 100.1)  # a late answer to the old CSeq
    assert reg.events() == [] and reg.state is RegState.REGISTERING
    reg.receive_response(ok(second), 100.2)
    assert isinstance(reg.events()[0], Registered)


def test_unregister_sends_expires_zero_for_our_contact_only() -> None:
    reg = client()
    request = reg.register(0.0)
    reg.outgoing()
    reg.receive_response(ok(request), 0.0)
    reg.events()
    reg.unregister(10.0)
    bye = sent(reg)
    assert bye.expires == 0 and bye.contact[0].expires == 0
    assert not bye.contact_is_star and bye.cseq.seq == 2
    assert reg.next_deadline() is None
    reg.receive_response(reply(bye, 200), 10.1)
    (event,) = reg.events()
    assert isinstance(event, Unregistered) and event.status == 200
    assert reg.state is RegState.UNREGISTERED and not reg.registered
    reg.unregister(11.0)  # nothing left: a no-op
    assert reg.outgoing() == []
    reg.register(12.0)  # and it can start again
    assert sent(reg).cseq.seq == 3


def test_unregister_while_registering_waits_for_the_response() -> None:
    reg = client()
    request = reg.register(0.0)
    reg.outgoing()
    reg.unregister(0.1)
    assert reg.outgoing() == []
    with pytest.raises(LocalProtocolError):
        reg.register(0.2)
    reg.receive_response(ok(request), 0.3)
    assert sent(reg).expires == 0
    assert reg.state is RegState.UNREGISTERING


def test_misuse_is_rejected() -> None:
    with pytest.raises(LocalProtocolError):
        client(expires=0)
    assert isinstance(TABLE[(RegState.UNREGISTERING, RegInput.APP_REGISTER)], Misuse)


# ------------------------------------------------------------------- against a registrar


def test_against_the_registrar_app_with_challenge_423_refresh_and_unregister() -> None:
    net = Network()
    server = DigestServer("test", secret=b"k" * 32, random=lambda n: b"r" * n)
    registrar = RegistrarNode(
        net,
        "example.com",
        policy=RegistrarPolicy(min_expires=120, max_expires=600),
        challenge=server,
        users=["alice"],
    )
    alice = Phone(
        net,
        "alice.test",
        user="alice",
        auth=DigestClient("alice", "secret", random=lambda n: b"c" * n),
    )
    reg = alice.register("example.com", expires=60)
    net.run()
    # 401, then 423 (60 < 120), then 200 with the granted 120 s.
    statuses = [h.first_line for h in net.trace if h.src == "example.com"]
    assert statuses == [
        "SIP/2.0 401 Unauthorized",
        "SIP/2.0 423 Interval Too Brief",
        "SIP/2.0 200 OK",
    ]
    (event,) = alice.reg_log
    assert isinstance(event, Registered) and event.binding_found and event.expires == 120
    assert [b.contact for b in registrar.bindings["sip:alice@example.com"]] == [
        "sip:alice@alice.test"
    ]
    call_ids = {r.call_id for r in registrar.requests}
    assert len(call_ids) == 1
    assert [r.cseq.seq for r in registrar.requests] == [1, 2, 3]

    net.advance(90)  # refreshed at 90 s (max(60, 120 - 30))
    assert len(registrar.requests) == 4
    assert isinstance(alice.reg_log[-1], Registered)
    assert registrar.requests[-1].cseq.seq == 4

    registrar.fail_next = [(503, (("Retry-After", "40"),))]
    net.advance(90)
    assert isinstance(alice.reg_log[-1], RegistrationFailed)
    net.advance(40)
    assert isinstance(alice.reg_log[-1], Registered)

    alice.act(reg, lambda: reg.unregister(net.now))
    net.run()
    assert isinstance(alice.reg_log[-1], Unregistered)
    assert registrar.bindings["sip:alice@example.com"] == []
