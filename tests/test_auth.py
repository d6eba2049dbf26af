"""The authentication policy of ``sipwire serve`` (sipwire.apps.auth), with a fake clock and
in-memory stores: who is challenged (401 vs 407), with what (SHA-256 then MD5, MD5 alone for
baresip and SIPp), stale nonces, replays, identities, trusted peers, the relay rule, user
enumeration and the brute-force guard (ban, growth, recovery, bursts of a real phone)."""

from __future__ import annotations

import asyncio
import ipaddress
import itertools
import re
from collections.abc import Iterable

import pytest

from sipwire.aio.transport import Source
from sipwire.apps.auth import (
    Authenticator,
    AuthOutcome,
    AuthPolicy,
    FailureGuard,
    GuardConfig,
    GuardVerdict,
    normalize_domain,
    source_key,
)
from sipwire.core._errors import LocalProtocolError
from sipwire.core.digest import (
    Algorithm,
    Challenge,
    Credentials,
    DigestResult,
    compute_response,
    ha1_table,
)
from sipwire.core.message import Request, Response, make_response
from sipwire.store import StoreError, UserRecord
from sipwire.store.memory import MemoryUserStore

DOMAIN = "example.com"
PASSWORDS = {"alice": "alice-secret", "bob": "bob-secret"}


class Clock:
    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def counting_random() -> object:
    counter = itertools.count(1)

    def random(n: int) -> bytes:
        return next(counter).to_bytes(n, "big")

    return random


class FakeTx:
    """A server transaction stand-in: records responses, fixed To tag."""

    def __init__(self, request: Request, source: Source) -> None:
        self.request = request
        self.source = source
        self.responses: list[Response] = []

    async def respond(
        self,
        status: int,
        reason: str | None = None,
        *,
        headers: Iterable[tuple[str, str]] = (),
        body: bytes = b"",
    ) -> Response:
        response = make_response(self.request, status, reason, to_tag="fixedtag")
        for name, value in headers:
            response.headers.add(name, value)
        self.responses.append(response)
        return response


def src(ip: str = "192.0.2.10", port: int = 5060) -> Source:
    return Source(transport="UDP", remote=(ip, port), local=("127.0.0.1", 5060))


def users() -> MemoryUserStore:
    store = MemoryUserStore()
    for name, password in PASSWORDS.items():
        store._users[(name, DOMAIN)] = UserRecord(
            username=name, domain=DOMAIN, ha1=ha1_table(name, DOMAIN, password)
        )
    return store


def make_auth(
    policy: AuthPolicy | None = None, clock: Clock | None = None, **kw: object
) -> Authenticator:
    return Authenticator(
        kw.pop("store", None) or users(),  # type: ignore[arg-type]
        domains=kw.pop("domains", [DOMAIN]),  # type: ignore[arg-type]
        policy=policy or AuthPolicy(),
        clock=clock or Clock(),
        random=counting_random(),  # type: ignore[arg-type]
        **kw,  # type: ignore[arg-type]
    )


_call_ids = itertools.count(1)


def register(
    user: str = "alice",
    *,
    to_user: str | None = None,
    domain: str = DOMAIN,
    user_agent: str | None = None,
    headers: Iterable[tuple[str, str]] = (),
) -> Request:
    aor = f"sip:{to_user or user}@{domain}"
    hdrs = [
        ("Via", "SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK-1"),
        ("From", f"<{aor}>;tag=f1"),
        ("To", f"<{aor}>"),
        ("Call-ID", f"reg-{next(_call_ids)}@192.0.2.10"),
        ("CSeq", "1 REGISTER"),
        ("Contact", "<sip:alice@192.0.2.10:5060>"),
        ("Max-Forwards", "70"),
    ]
    if user_agent:
        hdrs.append(("User-Agent", user_agent))
    hdrs.extend(headers)
    return Request("REGISTER", f"sip:{domain}", hdrs)


def invite(
    from_aor: str = f"sip:alice@{DOMAIN}",
    to_uri: str = "sip:carol@elsewhere.net",
    *,
    method: str = "INVITE",
    headers: Iterable[tuple[str, str]] = (),
    to_tag: str | None = None,
) -> Request:
    to = f"<{to_uri}>" + (f";tag={to_tag}" if to_tag else "")
    hdrs = [
        ("Via", "SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK-2"),
        ("From", f"<{from_aor}>;tag=f2"),
        ("To", to),
        ("Call-ID", f"call-{next(_call_ids)}@192.0.2.10"),
        ("CSeq", f"1 {method}"),
        ("Max-Forwards", "70"),
        *headers,
    ]
    return Request(method, to_uri, hdrs)


def answer(
    challenge: str,
    user: str,
    password: str,
    *,
    method: str,
    uri: str,
    nc: int = 1,
    cnonce: str = "0a4f113b",
    realm: str | None = None,
) -> str:
    """Digest credentials answering ``challenge`` (what a phone would send)."""
    ch = Challenge.parse(challenge)
    algorithm = Algorithm.from_token(ch.algorithm)
    assert algorithm is not None
    the_realm = realm or ch.realm
    assert the_realm is not None and ch.nonce is not None
    stored = ha1_table(user, the_realm, password)[algorithm.base.value]
    nc_text = f"{nc:08x}"
    response = compute_response(
        ha1=stored,
        algorithm=algorithm,
        nonce=ch.nonce,
        method=method,
        uri=uri,
        qop="auth",
        nc=nc_text,
        cnonce=cnonce,
    )
    return str(
        Credentials.digest(
            username=user,
            realm=the_realm,
            nonce=ch.nonce,
            uri=uri,
            response=response,
            algorithm=algorithm.value,
            cnonce=cnonce,
            qop="auth",
            nc=nc_text,
        )
    )


def with_header(request: Request, name: str, value: str) -> Request:
    clone = request.copy()
    clone.headers.add(name, value)
    return clone


async def challenge_of(
    auth: Authenticator, request: Request, source: Source | None = None, *, proxy: bool = False
) -> AuthOutcome:
    outcome = await auth.check(request, source or src(), proxy=proxy)
    assert not outcome.accepted and outcome.status == (407 if proxy else 401), outcome
    return outcome


async def register_with(
    auth: Authenticator,
    user: str,
    password: str,
    *,
    to_user: str | None = None,
    source: Source | None = None,
    algorithm_index: int = 0,
    cnonce: str = "0a4f113b",
) -> AuthOutcome:
    """A full REGISTER round: challenge, then the answer with ``password``."""
    first = register(user, to_user=to_user)
    ch = await challenge_of(auth, first, source)
    value = ch.headers[algorithm_index][1]
    creds = answer(value, user, password, method="REGISTER", uri=first.uri_text, cnonce=cnonce)
    return await auth.check(
        with_header(first, "Authorization", creds), source or src(), proxy=False
    )


def challenges(outcome: AuthOutcome) -> list[Challenge]:
    return [Challenge.parse(v) for _, v in outcome.headers]


# ------------------------------------------------------------------------------------------
# Challenges


async def test_register_without_credentials_gets_401_sha256_then_md5() -> None:
    auth = make_auth()
    outcome = await challenge_of(auth, register())
    assert outcome.reason == "Unauthorized"
    assert [name for name, _ in outcome.headers] == ["WWW-Authenticate", "WWW-Authenticate"]
    chs = challenges(outcome)
    assert [c.algorithm for c in chs] == ["SHA-256", "MD5"]  # RFC 8760 §2.3: preferred first
    assert {c.realm for c in chs} == {DOMAIN}
    assert len({c.nonce for c in chs}) == 1
    assert all(c.qop_options == ("auth",) and not c.stale for c in chs)


async def test_register_with_the_right_password_is_accepted_for_each_algorithm() -> None:
    for index in (0, 1):
        auth = make_auth()
        outcome = await register_with(auth, "alice", "alice-secret", algorithm_index=index)
        assert outcome.accepted and outcome.identity == "alice", outcome
        assert outcome.aor == f"sip:alice@{DOMAIN}" and outcome.realm == DOMAIN


async def test_wrong_password_is_challenged_again_not_stale() -> None:
    auth = make_auth()
    outcome = await register_with(auth, "alice", "wrong")
    assert outcome.status == 401 and outcome.result is DigestResult.BAD_RESPONSE
    assert not any(c.stale for c in challenges(outcome))


@pytest.mark.parametrize(
    ("agent", "expected"),
    [
        ("baresip v1.0.0 (x86_64/linux)", ["MD5"]),
        ("SIPp/Linux", ["MD5"]),
        ("BARESIP", ["MD5"]),
        ("Linphone/5.1 (belle-sip/5.1)", ["SHA-256", "MD5"]),
        (None, ["SHA-256", "MD5"]),
    ],
)
async def test_md5_only_user_agents(agent: str | None, expected: list[str]) -> None:
    auth = make_auth()
    outcome = await challenge_of(auth, register(user_agent=agent))
    assert [c.algorithm for c in challenges(outcome)] == expected


async def test_md5_only_list_is_configurable_and_md5_needs_to_be_offered() -> None:
    auth = make_auth(AuthPolicy(md5_only_user_agents=("Grandstream",)))
    baresip = await challenge_of(auth, register(user_agent="baresip v1.0.0"))
    assert [c.algorithm for c in challenges(baresip)] == ["SHA-256", "MD5"]
    gs = await challenge_of(auth, register(user_agent="Grandstream GXP2130"))
    assert [c.algorithm for c in challenges(gs)] == ["MD5"]
    sha_only = make_auth(AuthPolicy(algorithms=("SHA-256",)))
    out = await challenge_of(sha_only, register(user_agent="baresip"))
    assert [c.algorithm for c in challenges(out)] == ["SHA-256"]


async def test_baresip_answers_md5_and_gets_in() -> None:
    auth = make_auth()
    first = register(user_agent="baresip v1.0.0")
    ch = await challenge_of(auth, first)
    creds = answer(ch.headers[0][1], "alice", "alice-secret", method="REGISTER", uri=first.uri_text)
    assert "algorithm=MD5" in creds
    ok = await auth.check(with_header(first, "Authorization", creds), src(), proxy=False)
    assert ok.accepted and ok.identity == "alice"


def test_policy_validation() -> None:
    with pytest.raises(LocalProtocolError):
        AuthPolicy(algorithms=("SHA-1",))
    with pytest.raises(LocalProtocolError):
        AuthPolicy(algorithms=())
    with pytest.raises(LocalProtocolError):
        AuthPolicy(trusted=("not-a-network",))
    with pytest.raises(LocalProtocolError):
        GuardConfig(max_failures=0)
    with pytest.raises(LocalProtocolError):
        GuardConfig(ban_initial=10, ban_max=5)
    with pytest.raises(LocalProtocolError):
        make_auth(domains=[])
    policy = AuthPolicy(trusted=("10.0.0.0/8", ipaddress.ip_network("2001:db8::/32")))
    assert policy.trusted_networks == (
        ipaddress.ip_network("10.0.0.0/8"),
        ipaddress.ip_network("2001:db8::/32"),
    )
    assert AuthPolicy(algorithms=("md5",)).algorithms == ("MD5",)


# ------------------------------------------------------------------------------------------
# Proxy (407) and relay policy


async def test_local_user_calling_out_gets_407_proxy_authenticate() -> None:
    auth = make_auth()
    request = invite()
    outcome = await challenge_of(auth, request, proxy=True)
    assert outcome.reason == "Proxy Authentication Required"
    assert {name for name, _ in outcome.headers} == {"Proxy-Authenticate"}
    value = outcome.headers[0][1]
    # Credentials in Authorization (for a registrar) do not count for the proxy.
    wrong_header = answer(value, "alice", "alice-secret", method="INVITE", uri=request.uri_text)
    again = await auth.check(with_header(request, "Authorization", wrong_header), src(), proxy=True)
    assert again.status == 407
    ch2 = again.headers[0][1]
    creds = answer(ch2, "alice", "alice-secret", method="INVITE", uri=request.uri_text)
    ok = await auth.check(with_header(request, "Proxy-Authorization", creds), src(), proxy=True)
    assert ok.accepted and ok.identity == "alice" and ok.realm == DOMAIN


async def test_authorize_answers_407_itself_and_returns_false() -> None:
    auth = make_auth()
    request = invite()
    tx = FakeTx(request, src())
    assert await auth.authorize(request, tx) is False
    assert [r.status for r in tx.responses] == [407]
    assert tx.responses[0].headers.count("Proxy-Authenticate") == 2
    creds = answer(
        tx.responses[0].headers.get_all("Proxy-Authenticate")[0],
        "alice",
        "alice-secret",
        method="INVITE",
        uri=request.uri_text,
    )
    retry = with_header(request, "Proxy-Authorization", creds)
    tx2 = FakeTx(retry, src())
    assert await auth.authorize(retry, tx2) is True
    assert tx2.responses == []
    outcome = await auth.authenticate(retry, FakeTx(retry, src()), proxy=True)
    assert outcome.status == 407 and outcome.result is DigestResult.REPLAY  # nc=1 again
    assert challenges(outcome)[0].stale


async def test_from_outside_to_local_user_needs_no_auth() -> None:
    auth = make_auth()
    request = invite("sip:carol@elsewhere.net", f"sip:alice@{DOMAIN}")
    outcome = await auth.check(request, src("203.0.113.5"), proxy=True)
    assert outcome.accepted and not outcome.authenticated
    assert auth.is_relay_allowed(request, False, src("203.0.113.5"))


async def test_outside_to_outside_is_refused_never_an_open_relay() -> None:
    auth = make_auth()
    request = invite("sip:carol@elsewhere.net", "sip:dave@faraway.org")
    tx = FakeTx(request, src("203.0.113.5"))
    assert await auth.authorize(request, tx) is False
    assert [(r.status, r.reason) for r in tx.responses] == [(403, "Relaying denied")]
    assert not auth.is_relay_allowed(request, False, src("203.0.113.5"))
    tel = invite("sip:carol@elsewhere.net", "tel:+15551234567")
    assert not auth.is_relay_allowed(tel, False, src("203.0.113.5"))
    assert (await auth.check(tel, src("203.0.113.5"), proxy=True)).status == 403


async def test_local_user_may_relay_once_authenticated() -> None:
    auth = make_auth()
    request = invite(f"sip:alice@{DOMAIN}", "sip:dave@faraway.org")
    assert not auth.is_relay_allowed(request, False, src())
    assert auth.is_relay_allowed(request, True, src())
    assert (await auth.check(request, src(), proxy=True)).status == 407


async def test_from_identity_must_match_the_authenticated_user() -> None:
    auth = make_auth()
    request = invite(f"sip:bob@{DOMAIN}", "sip:dave@faraway.org")
    ch = await challenge_of(auth, request, proxy=True)
    creds = answer(ch.headers[0][1], "alice", "alice-secret", method="INVITE", uri=request.uri_text)
    out = await auth.check(with_header(request, "Proxy-Authorization", creds), src(), proxy=True)
    assert (out.status, out.reason, out.identity) == (403, "Forbidden", "alice")
    lax = make_auth(AuthPolicy(check_from_identity=False))
    ch = await challenge_of(lax, request, proxy=True)
    creds = answer(ch.headers[0][1], "alice", "alice-secret", method="INVITE", uri=request.uri_text)
    out = await lax.check(with_header(request, "Proxy-Authorization", creds), src(), proxy=True)
    assert out.accepted and out.identity == "alice"


@pytest.mark.parametrize("method", ["ACK", "CANCEL"])
async def test_ack_and_cancel_are_never_challenged(method: str) -> None:
    auth = make_auth()
    request = invite(method=method)
    tx = FakeTx(request, src())
    assert await auth.authorize(request, tx) is True
    assert tx.responses == []


async def test_in_dialog_requests_pass_unless_configured() -> None:
    request = invite(
        method="BYE",
        to_tag="callee",
        headers=[("Route", "<sip:proxy.example.com;lr>")],
    )
    auth = make_auth()
    assert (await auth.check(request, src(), proxy=True)).accepted
    assert auth.is_relay_allowed(request, False, src())
    strict = make_auth(AuthPolicy(challenge_in_dialog=True))
    assert (await strict.check(request, src(), proxy=True)).status == 407
    # A To tag without a Route through us is treated as out-of-dialog.
    no_route = invite(method="BYE", to_tag="callee")
    assert (await auth.check(no_route, src(), proxy=True)).status == 407


async def test_local_to_local_message_is_challenged() -> None:
    auth = make_auth()
    request = invite(f"sip:alice@{DOMAIN}", f"sip:bob@{DOMAIN}", method="MESSAGE")
    assert (await auth.check(request, src(), proxy=True)).status == 407


async def test_unreadable_from_is_400() -> None:
    auth = make_auth()
    request = Request(
        "INVITE",
        "sip:bob@example.com",
        [("Via", "SIP/2.0/UDP h;branch=z9hG4bK-x"), ("To", "<sip:bob@example.com>")],
    )
    out = await auth.check(request, src(), proxy=True)
    assert out.status == 400 and not out.accepted


# ------------------------------------------------------------------------------------------
# Trusted peers, no-auth, domains


async def test_trusted_peers_skip_auth_and_may_relay() -> None:
    auth = make_auth(AuthPolicy(trusted=["10.0.0.0/8", "2001:db8::/32"]))
    relay = invite("sip:gw@pstn.example", "sip:dave@faraway.org")
    for ip in ("10.1.2.3", "2001:db8::5", "::ffff:10.9.9.9"):
        assert (await auth.check(relay, src(ip), proxy=True)).accepted, ip
        assert auth.is_relay_allowed(relay, False, src(ip))
    local = invite()
    assert (await auth.check(local, src("10.1.2.3"), proxy=True)).accepted
    reg = await auth.check(register(), src("10.1.2.3"), proxy=False)
    assert reg.accepted and reg.aor == f"sip:alice@{DOMAIN}" and not reg.authenticated
    assert (await auth.check(local, src("192.0.2.10"), proxy=True)).status == 407


async def test_no_auth_disables_everything() -> None:
    auth = make_auth(AuthPolicy(no_auth=True))
    relay = invite("sip:carol@elsewhere.net", "sip:dave@faraway.org")
    assert (await auth.check(relay, src(), proxy=True)).accepted
    assert auth.is_relay_allowed(relay, False, src())
    tx = FakeTx(register(to_user="bob"), src())
    assert await auth.authenticate_register(tx.request, tx) == f"sip:bob@{DOMAIN}"
    assert tx.responses == []


async def test_register_for_a_domain_we_do_not_serve_is_403() -> None:
    auth = make_auth()
    request = register(domain="elsewhere.net")
    tx = FakeTx(request, src())
    assert await auth.authenticate_register(request, tx) is None
    assert [(r.status, r.reason) for r in tx.responses] == [(403, "Domain not served here")]


async def test_register_without_user_in_to_is_400() -> None:
    auth = make_auth()
    request = Request(
        "REGISTER",
        f"sip:{DOMAIN}",
        [
            ("Via", "SIP/2.0/UDP h;branch=z9hG4bK-x"),
            ("From", f"<sip:{DOMAIN}>;tag=1"),
            ("To", f"<sip:{DOMAIN}>"),
            ("Call-ID", "x"),
            ("CSeq", "1 REGISTER"),
        ],
    )
    assert (await auth.check(request, src(), proxy=False)).status == 400


async def test_several_domains_are_separate_realms() -> None:
    store = users()
    store._users[("alice", "other.org")] = UserRecord(
        username="alice", domain="other.org", ha1=ha1_table("alice", "other.org", "other-pw")
    )
    auth = make_auth(store=store, domains=["Example.COM", "other.org"])
    assert auth.domains == (DOMAIN, "other.org")
    first = register(domain="other.org")
    ch = await challenge_of(auth, first)
    assert challenges(ch)[0].realm == "other.org"
    good = answer(ch.headers[0][1], "alice", "other-pw", method="REGISTER", uri=first.uri_text)
    out = await auth.check(with_header(first, "Authorization", good), src(), proxy=False)
    assert out.accepted and out.aor == "sip:alice@other.org"
    # example.com's password is not other.org's.
    first = register(domain="other.org")
    ch = await challenge_of(auth, first)
    bad = answer(ch.headers[0][1], "alice", "alice-secret", method="REGISTER", uri=first.uri_text)
    out = await auth.check(
        with_header(first, "Authorization", bad), src("198.51.100.1"), proxy=False
    )
    assert out.status == 401


async def test_host_aliases_belong_to_the_primary_domain() -> None:
    aliases = {"192.0.2.1", "[2001:db8::1]"}
    auth = make_auth(domains=[DOMAIN, "other.org"], host_aliases=lambda h: h in aliases)
    assert auth.local_domain("192.0.2.1") == DOMAIN
    assert auth.local_domain("other.org") == "other.org"
    assert auth.local_domain("192.0.2.2") is None
    first = register(domain="192.0.2.1")
    ch = await challenge_of(auth, first)
    assert challenges(ch)[0].realm == DOMAIN
    creds = answer(ch.headers[0][1], "alice", "alice-secret", method="REGISTER", uri=first.uri_text)
    out = await auth.check(with_header(first, "Authorization", creds), src(), proxy=False)
    assert out.accepted and out.realm == DOMAIN and out.aor == "sip:alice@192.0.2.1"
    call = invite("sip:alice@192.0.2.1", "sip:dave@faraway.org")
    assert (await auth.check(call, src(), proxy=True)).status == 407
    inbound = invite("sip:carol@elsewhere.net", "sip:bob@[2001:db8::1]")
    assert (await auth.check(inbound, src(), proxy=True)).accepted


async def test_nonces_are_shared_by_authenticators_with_one_secret() -> None:
    clock = Clock()
    one = make_auth(clock=clock, secret=b"k" * 32)
    two = make_auth(clock=clock, secret=b"k" * 32)
    first = register()
    ch = await challenge_of(one, first)
    creds = answer(ch.headers[0][1], "alice", "alice-secret", method="REGISTER", uri=first.uri_text)
    assert (
        await two.check(with_header(first, "Authorization", creds), src(), proxy=False)
    ).accepted


def test_normalize_domain_and_source_key() -> None:
    assert normalize_domain(" Example.COM ") == "example.com"
    assert normalize_domain("::1") == normalize_domain("[0:0::1]") == "[::1]"
    assert normalize_domain("127.0.0.1") == "127.0.0.1"
    for bad in ("", "a b", "alice@example.com", "[::zz]"):
        with pytest.raises(LocalProtocolError):
            normalize_domain(bad)
    assert source_key("192.0.2.1") == "192.0.2.1"
    assert source_key("::ffff:192.0.2.1") == "192.0.2.1"
    assert (
        source_key("2001:db8:1:2:3:4:5:6") == source_key("2001:db8:1:2::99") == "2001:db8:1:2::/64"
    )
    assert source_key("2001:db8::1", 128) == "2001:db8::1/128"
    assert source_key("not-an-ip") == "not-an-ip"


# ------------------------------------------------------------------------------------------
# Identity, stale nonces, replays, malformed credentials, store failures


async def test_alice_cannot_register_bobs_aor() -> None:
    auth = make_auth()
    request = register("alice", to_user="bob")
    ch = await challenge_of(auth, request)
    creds = answer(
        ch.headers[0][1], "alice", "alice-secret", method="REGISTER", uri=request.uri_text
    )
    retry = with_header(request, "Authorization", creds)
    tx = FakeTx(retry, src())
    assert await auth.authenticate_register(retry, tx) is None
    assert [(r.status, r.reason) for r in tx.responses] == [(403, "Forbidden")]
    out = await register_with(auth, "alice", "alice-secret", to_user="bob", cnonce="fresh")
    assert (out.status, out.identity, out.aor) == (403, "alice", f"sip:bob@{DOMAIN}")
    # Bob may register himself, alice herself.
    bob = await register_with(auth, "bob", "bob-secret")
    assert bob.accepted and bob.aor == f"sip:bob@{DOMAIN}"
    alice = await register_with(auth, "alice", "alice-secret")
    assert alice.accepted and alice.aor == f"sip:alice@{DOMAIN}"


async def test_expired_nonce_with_right_password_is_stale_and_not_a_failure() -> None:
    clock = Clock()
    auth = make_auth(AuthPolicy(nonce_lifetime=300), clock=clock)
    first = register()
    ch = await challenge_of(auth, first)
    creds = answer(ch.headers[0][1], "alice", "alice-secret", method="REGISTER", uri=first.uri_text)
    clock.advance(301)
    out = await auth.check(with_header(first, "Authorization", creds), src(), proxy=False)
    assert out.status == 401 and out.result is DigestResult.STALE
    assert all(c.stale for c in challenges(out))
    assert auth.guard.banned_until("192.0.2.10", "alice", clock()) is None
    assert len(auth.guard._pairs) == 0  # nothing counted
    # The client retries with the fresh nonce at once and gets in.
    creds = answer(
        out.headers[0][1], "alice", "alice-secret", method="REGISTER", uri=first.uri_text
    )
    assert (
        await auth.check(with_header(first, "Authorization", creds), src(), proxy=False)
    ).accepted
    # A wrong password on an old nonce is a plain failure, never stale.
    ch = await challenge_of(auth, first)
    clock.advance(301)
    creds = answer(ch.headers[0][1], "alice", "nope", method="REGISTER", uri=first.uri_text)
    out = await auth.check(with_header(first, "Authorization", creds), src(), proxy=False)
    assert out.result is DigestResult.BAD_RESPONSE and not challenges(out)[0].stale


async def test_replayed_nonce_count_is_refused_as_stale_and_next_nc_accepted() -> None:
    auth = make_auth()
    first = register()
    ch = await challenge_of(auth, first)
    value = ch.headers[0][1]
    creds = answer(value, "alice", "alice-secret", method="REGISTER", uri=first.uri_text, nc=1)
    request = with_header(first, "Authorization", creds)
    assert (await auth.check(request, src(), proxy=False)).accepted
    replay = await auth.check(request, src("198.51.100.7"), proxy=False)
    assert replay.status == 401 and replay.result is DigestResult.REPLAY
    assert challenges(replay)[0].stale
    nc2 = answer(value, "alice", "alice-secret", method="REGISTER", uri=first.uri_text, nc=2)
    assert (await auth.check(with_header(first, "Authorization", nc2), src(), proxy=False)).accepted


async def test_empty_placeholder_credentials_are_just_challenged() -> None:
    auth = make_auth()
    placeholder = (
        f'Digest username="alice", realm="{DOMAIN}", nonce="", uri="sip:{DOMAIN}", response=""'
    )
    out = await auth.check(
        with_header(register(), "Authorization", placeholder), src(), proxy=False
    )
    assert out.status == 401 and out.result is DigestResult.NOT_ANSWERED
    assert len(auth.guard._pairs) == 0


@pytest.mark.parametrize(
    "value",
    [
        'Digest username="alice", realm="example.com", nonce="x", uri="sip:example.com", response="zz"',
        'Digest realm="example.com", nonce=',
        'Digest username="alice", realm="example.com", nonce="x", uri="sip:example.com", '
        'response="0123456789abcdef0123456789abcdef", algorithm=SHA-512',
    ],
)
async def test_malformed_credentials_are_400(value: str) -> None:
    auth = make_auth()
    tx = FakeTx(with_header(register(), "Authorization", value), src())
    assert await auth.authenticate_register(tx.request, tx) is None
    assert [r.status for r in tx.responses] == [400]
    assert len(auth.guard._pairs) == 0


async def test_credentials_for_another_realm_are_ignored() -> None:
    auth = make_auth()
    value = 'Digest username="alice", realm="elsewhere.net", nonce="x", uri="sip:x", response="00"'
    out = await auth.check(with_header(register(), "Authorization", value), src(), proxy=False)
    assert out.status == 401 and out.why == "no credentials"


class BrokenStore(MemoryUserStore):
    async def get_user(self, username: str, domain: str) -> UserRecord | None:
        raise StoreError("disk on fire")


async def test_store_failure_is_500_and_not_counted() -> None:
    auth = make_auth(store=BrokenStore())
    out = await register_with(auth, "alice", "alice-secret")
    assert (out.status, out.reason) == (500, "User database unavailable")
    assert len(auth.guard) == 0  # nothing counted, nothing pending


async def test_responses_add_nothing_but_the_challenge() -> None:
    """No Server/User-Agent or other revealing header comes from the authenticator (the
    endpoint adds its configured ``server_header``, without a version by default)."""
    auth = make_auth()
    request = register()
    tx = FakeTx(request, src())
    await auth.authenticate_register(request, tx)
    plain = make_response(request, 401, "Unauthorized", to_tag="fixedtag")
    names = [n for n, _ in tx.responses[0].headers]
    assert names == [n for n, _ in plain.headers] + ["WWW-Authenticate"] * 2


# ------------------------------------------------------------------------------------------
# User enumeration (RFC 7616 §5.7)


def _masked(response: Response) -> bytes:
    return re.sub(rb'nonce="[^"]*"', b'nonce="..."', response.to_bytes())


async def test_unknown_and_known_users_get_identical_answers() -> None:
    auth = make_auth()
    wire: dict[str, list[bytes]] = {}
    for user in ("alice", "mallory"):
        request = register(user)
        # Same Call-ID so the two exchanges differ only in the user name they probe.
        request.headers.set("Call-ID", "probe@192.0.2.10")
        request.headers.set("From", "<sip:probe@example.com>;tag=f1")
        request.headers.set("To", "<sip:probe@example.com>")
        tx = FakeTx(request, src(port=6000 if user == "alice" else 6001))
        await auth.authenticate_register(request, tx)
        ch = tx.responses[0].headers.get_all("WWW-Authenticate")[1]
        creds = answer(ch, user, "guess-1", method="REGISTER", uri=request.uri_text)
        retry = with_header(request, "Authorization", creds)
        tx2 = FakeTx(retry, src(port=6000 if user == "alice" else 6001))
        await auth.authenticate_register(retry, tx2)
        wire[user] = [_masked(r) for r in tx.responses + tx2.responses]
    assert wire["alice"] == wire["mallory"]
    assert b"401 Unauthorized" in wire["alice"][1]


async def test_unknown_users_are_banned_exactly_like_known_users() -> None:
    clock = Clock()
    auth = make_auth(clock=clock)
    for user in ("alice", "mallory"):
        statuses = []
        for i in range(6):
            out = await register_with(
                auth, user, f"guess-{i}", source=src("198.51.100.9", 7000 + i)
            )
            statuses.append(out.status)
            clock.advance(0.1)
        assert statuses == [401] * 5 + [403], user


# ------------------------------------------------------------------------------------------
# Brute force: ban, growth, recovery


NO_COOLDOWN = AuthPolicy(guard=GuardConfig(retry_cooldown=0))


async def test_ban_after_five_wrong_passwords_then_recovery() -> None:
    clock = Clock()
    auth = make_auth(NO_COOLDOWN, clock=clock)
    for i in range(5):
        out = await register_with(auth, "alice", f"guess-{i}")
        assert out.status == 401, i
        clock.advance(0.5)
    # Banned: even the right password is refused, unverified, with 403.
    tx = FakeTx(register(), src())
    out = await register_with(auth, "alice", "alice-secret")
    assert (out.status, out.reason) == (403, "Forbidden")
    until = auth.guard.banned_until("192.0.2.10", "alice", clock())
    assert until is not None and 9 < until - clock() <= 10
    # Other users and other sources are not affected.
    assert (await register_with(auth, "bob", "bob-secret")).accepted
    assert (await register_with(auth, "alice", "alice-secret", source=src("198.51.100.1"))).accepted
    # After the ban, the right password gets in and wipes the slate.
    clock.advance(10)
    assert (await register_with(auth, "alice", "alice-secret", cnonce="after")).accepted
    assert auth.guard.banned_until("192.0.2.10", "alice", clock()) is None
    for i in range(4):
        assert (await register_with(auth, "alice", f"again-{i}")).status == 401
    assert tx.responses == []


async def test_ban_grows_to_the_cap_while_failures_continue() -> None:
    clock = Clock()
    auth = make_auth(NO_COOLDOWN, clock=clock)
    for i in range(5):
        await register_with(auth, "alice", f"guess-{i}")
    lengths = []
    for round_ in range(5):
        until = auth.guard.banned_until("192.0.2.10", "alice", clock())
        assert until is not None
        lengths.append(round(until - clock()))
        clock.now = until + 0.01
        # One more wrong guess right after the ban: banned again, longer.
        out = await register_with(auth, "alice", f"late-{round_}")
        assert out.status == 401
    assert lengths == [10, 20, 40, 60, 60]


async def test_failures_decay_with_time() -> None:
    clock = Clock()
    auth = make_auth(NO_COOLDOWN, clock=clock)
    for i in range(4):
        await register_with(auth, "alice", f"guess-{i}")
    clock.advance(300)  # 5 minutes forgive 5 failures at the default 60 s each
    for i in range(4):
        assert (await register_with(auth, "alice", f"more-{i}")).status == 401
    assert auth.guard.banned_until("192.0.2.10", "alice", clock()) is None


async def test_stale_and_missing_credentials_never_count() -> None:
    clock = Clock()
    auth = make_auth(NO_COOLDOWN, clock=clock)
    first = register()
    for _ in range(20):
        await challenge_of(auth, register())
        ch = await challenge_of(auth, first)
        creds = answer(
            ch.headers[0][1], "alice", "alice-secret", method="REGISTER", uri=first.uri_text
        )
        clock.advance(400)
        out = await auth.check(with_header(first, "Authorization", creds), src(), proxy=False)
        assert out.result is DigestResult.STALE
    assert (await register_with(auth, "alice", "alice-secret")).accepted


async def test_identical_resent_answer_counts_once() -> None:
    clock = Clock()
    auth = make_auth(NO_COOLDOWN, clock=clock)
    first = register()
    ch = await challenge_of(auth, first)
    creds = answer(ch.headers[0][1], "alice", "wrong", method="REGISTER", uri=first.uri_text)
    request = with_header(first, "Authorization", creds)
    for _ in range(10):
        out = await auth.check(request, src(), proxy=False)
        assert out.status == 401
        clock.advance(2)
    assert auth.guard._pairs[("192.0.2.10", "alice")].score < 1.01
    assert (await register_with(auth, "alice", "alice-secret")).accepted


async def test_burst_of_a_real_phone_costs_one_failure_and_the_fixed_phone_gets_in() -> None:
    """baresip 1.0.0 with a wrong password answers 15 fresh challenges within ~15 ms from one
    port (see tests/test_auth_peers.py). Only the first is verified and counted; restarted
    with the right password (new process, new port) it registers at once."""
    clock = Clock()
    auth = make_auth(clock=clock)
    phone = src("192.0.2.50", 41000)
    statuses = []
    for i in range(15):
        out = await register_with(auth, "alice", "typo", source=phone, cnonce=f"{i:016x}")
        statuses.append(out.status)
        clock.advance(0.001)
    assert statuses == [401] * 15
    pair = auth.guard._pairs[("192.0.2.50", "alice")]
    assert 0.9 < pair.score <= 1.0
    clock.advance(0.5)
    fixed = await register_with(auth, "alice", "alice-secret", source=src("192.0.2.50", 41002))
    assert fixed.accepted


async def test_guessing_from_one_flow_gets_one_verified_guess_per_cooldown() -> None:
    clock = Clock()
    auth = make_auth(clock=clock)
    attacker = src("203.0.113.66", 5061)
    words = [f"word{i}" for i in range(19)] + ["alice-secret"]
    results = []
    for word in words:
        results.append((await register_with(auth, "alice", word, source=attacker)).status)
        clock.advance(0.005)
    assert 200 not in results and all(s == 401 for s in results)
    # The right password was never verified: it was refused as wrong during the cooldown.
    assert auth.guard._pairs[("203.0.113.66", "alice")].score < 1.01


async def test_guessing_slowly_gets_five_guesses_then_one_per_growing_ban() -> None:
    clock = Clock()
    auth = make_auth(clock=clock)
    attacker = src("203.0.113.66", 5061)
    words = [f"word{i}" for i in range(20)]
    words[8] = "alice-secret"
    results = []
    for word in words:
        clock.advance(1.5)  # slower than the cooldown: every guess is verified or banned
        out = await register_with(auth, "alice", word, source=attacker)
        results.append(out.status)
    # t=1.5..7.5: five verified guesses; banned 10 s (the right password, 9th, is refused
    # unverified); t=18: one verified guess, banned 20 s, past the last guess at t=30.
    assert results == [401] * 5 + [403] * 6 + [401] + [403] * 8, results


async def test_password_spraying_bans_the_source() -> None:
    clock = Clock()
    store = users()
    for i in range(30):
        store._users[(f"u{i}", DOMAIN)] = UserRecord(
            username=f"u{i}", domain=DOMAIN, ha1=ha1_table(f"u{i}", DOMAIN, f"pw{i}")
        )
    auth = make_auth(NO_COOLDOWN, clock=clock, store=store)
    attacker = src("2001:db8:5:6::1", 5060)
    for i in range(20):
        assert (await register_with(auth, f"u{i}", "123456", source=attacker)).status == 401
    # Banned as a source (its whole /64), for every user, right password or not.
    other_host = src("2001:db8:5:6::abcd", 5060)
    out = await register_with(auth, "u25", "pw25", source=other_host)
    assert out.status == 403
    assert (await register_with(auth, "u25", "pw25", source=src("2001:db8:5:7::1"))).accepted


async def test_concurrent_guesses_cannot_exceed_the_limit() -> None:
    gate = asyncio.Event()

    class SlowStore(MemoryUserStore):
        async def get_user(self, username: str, domain: str) -> UserRecord | None:
            await gate.wait()
            return await super().get_user(username, domain)

    store = SlowStore()
    store._users = users()._users
    clock = Clock()
    auth = make_auth(NO_COOLDOWN, clock=clock, store=store)
    first = register()
    gate.set()
    ch = await challenge_of(auth, first)
    gate.clear()
    value = ch.headers[1][1]
    requests = [
        with_header(
            first,
            "Authorization",
            answer(value, "alice", f"guess-{i}", method="REGISTER", uri=first.uri_text, nc=i + 1),
        )
        for i in range(12)
    ]
    tasks = [asyncio.create_task(auth.check(r, src(), proxy=False)) for r in requests]
    await asyncio.sleep(0)
    gate.set()
    outcomes = await asyncio.gather(*tasks)
    verified = [o for o in outcomes if o.result is DigestResult.BAD_RESPONSE]
    assert len(verified) == 5  # never more than the failures allowed
    assert auth.guard.banned_until("192.0.2.10", "alice", clock()) is not None


def test_guard_tables_are_bounded() -> None:
    guard = FailureGuard(GuardConfig(max_entries=50))
    now = 1000.0
    for i in range(500):
        ip = f"10.0.{i // 250}.{i % 250}"
        assert guard.begin(ip, 5060, f"user{i}", now) is GuardVerdict.VERIFY
        guard.failure(ip, 5060, f"user{i}", ("n", str(i)), now)
        now += 0.01
    assert len(guard._pairs) <= 50 and len(guard._sources) <= 50 and len(guard._flows) <= 50


def test_guard_release_and_success_tidy_up() -> None:
    guard = FailureGuard()
    assert guard.begin("192.0.2.1", 1, "alice", 0.0) is GuardVerdict.VERIFY
    guard.release("192.0.2.1", "alice", 0.0)
    assert len(guard) == 0
    assert guard.begin("192.0.2.1", 1, "alice", 0.0) is GuardVerdict.VERIFY
    guard.failure("192.0.2.1", 1, "alice", ("n", "r"), 0.0)
    assert guard.begin("192.0.2.1", 1, "alice", 0.5) is GuardVerdict.COOLDOWN
    assert guard.begin("192.0.2.1", 2, "alice", 0.5) is GuardVerdict.VERIFY
    guard.success("192.0.2.1", 2, "alice", 0.5)
    assert ("192.0.2.1", "alice") not in guard._pairs


async def test_unreadable_to_gives_a_printable_reason() -> None:
    auth = make_auth()
    request = Request(
        "REGISTER",
        f"sip:{DOMAIN}",
        [
            ("Via", "SIP/2.0/UDP h;branch=z9hG4bK-x"),
            ("From", "<sip:a@example.com>;tag=1"),
            ("To", "<sip:\x01bad"),
            ("Call-ID", "x"),
            ("CSeq", "1 REGISTER"),
        ],
    )
    tx = FakeTx(request, src())
    assert await auth.authenticate_register(request, tx) is None
    (response,) = tx.responses
    assert response.status == 400 and response.reason.isprintable()
