"""Shared state, helpers and the session-modification actions of
:class:`sipwire.core.invite.InviteSession` (RFC 3261 §14, RFC 3311 §5, RFC 3264 glue).

Private: import from :mod:`sipwire.core.invite`.  :class:`_SessionBase` holds the
session's state and the building blocks (responses, requests, ACKs, credentials, media
events) and the actions of the modify table and of both sides; the UAC/UAS actions, the
public API and the table interpreter live in :mod:`sipwire.core.invite`.
"""

from __future__ import annotations

import enum
import secrets
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sipwire.core._errors import LocalProtocolError, RemoteProtocolError
from sipwire.core._invite_tables import (
    SDP,
    Action,
    EndReason,
    Event,
    InDialogRequest,
    InDialogResponse,
    MediaNegotiated,
    ModificationCompleted,
    ModifyInput,
    ModifyState,
    ReinviteReceived,
    Role,
    SessionConfig,
    SessionInput,
    SessionState,
)
from sipwire.core.address import Address
from sipwire.core.dialog import (
    Dialog,
    DialogSet,
    Output,
    SendAck,
    SendRequest,
    SendResponse,
    next_hop,
)
from sipwire.core.digest import DigestClient
from sipwire.core.message import Request, Response, make_response
from sipwire.core.offeranswer import (
    MediaCapability,
    MediaSession,
    NegotiatedMedia,
    OfferAnswerState,
    compare,
)
from sipwire.core.sdp import SessionDescription
from sipwire.core.uri import URI

_S, _I, _A, _E = SessionState, SessionInput, Action, EndReason
_M, _MI = ModifyState, ModifyInput

# ------------------------------------------------------------------------------- helpers


class _Timer(enum.Enum):
    ACK = _I.TIMER_ACK
    GLARE = _I.TIMER_GLARE
    LINGER = _I.TIMER_LINGER


@dataclass(slots=True)
class _Ctx:
    """What the input at hand carries (the message, the app's arguments)."""

    now: float
    message: Request | Response | None = None
    transaction: object = None
    dialog: Dialog | None = None
    mod: ModifyInput | None = None
    status: int = 0
    reason: str | None = None
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes | None = None
    content_type: str | None = None
    intent: str = ""
    streams: tuple[MediaCapability, ...] | None = None
    early_media: bool = False
    pending: _Pending | None = None


@dataclass(slots=True)
class _Pending:
    """One request of ours awaiting its final response."""

    kind: str  # "bye" | "modify" | "app" | "fork-bye"
    request: Request
    dialog: Dialog
    attempts: int = 0


@dataclass(frozen=True, slots=True)
class _MediaSnapshot:
    """A MediaSession's public state, to undo an answer we end up not sending."""

    local_sdp: SessionDescription | None
    remote_sdp: SessionDescription | None
    negotiated: tuple[NegotiatedMedia, ...]
    held: bool
    legacy_hold: bool

    @classmethod
    def take(cls, media: MediaSession) -> _MediaSnapshot:
        return cls(
            media.local_sdp, media.remote_sdp, media.negotiated, media.held, media.legacy_hold
        )

    def restore(self, media: MediaSession, *, local_sdp: bool = True) -> None:
        if media.state is not OfferAnswerState.STABLE:
            media.rollback()
        if local_sdp:  # an offer the peer saw stays: the next one is numbered after it (§8)
            media.local_sdp = self.local_sdp
        media.remote_sdp, media.negotiated = self.remote_sdp, self.negotiated
        media.held, media.legacy_hold = self.held, self.legacy_hold


@dataclass(slots=True)
class _RemoteModify:
    """Their re-INVITE: its transaction and what we will send in our 2xx."""

    request: Request
    transaction: object
    sdp: SessionDescription | None = None  # our answer (or our offer, when theirs had none)
    had_offer: bool = False
    snapshot: _MediaSnapshot | None = None


@dataclass(slots=True)
class _LocalModify:
    """Our re-INVITE/UPDATE: what to (re-)send."""

    method: str
    intent: str  # "hold" | "hold-legacy" | "resume" | "offer" | "none" | "raw"
    streams: tuple[MediaCapability, ...] | None = None
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes | None = None
    content_type: str | None = None
    snapshot: _MediaSnapshot | None = None
    sent: Request | None = None


def _sdp_of(message: Request | Response) -> SessionDescription | None:
    """The SDP body, None without one; RemoteProtocolError if unreadable."""
    if not message.body:
        return None
    ctype = message.content_type
    if ctype is not None and ctype.mime_type != SDP:
        return None
    return SessionDescription.parse(message.body)


def _credential_rows(request: Request) -> list[tuple[str, str]]:
    return [
        (name, value)
        for name, value in request.headers
        if name.lower() in ("authorization", "proxy-authorization")
    ]


def _address(value: Address | URI | str) -> Address:
    if isinstance(value, Address):
        return value
    if isinstance(value, str):
        return Address.parse(value)
    return Address(value)


def _default_token() -> str:
    return secrets.token_hex(8)


_FollowUp = SessionInput | ModifyInput | None


class _SessionBase:
    """State and building blocks shared by the actions (see the module docstring)."""

    def __init__(
        self,
        *,
        role: Role,
        call_id: str,
        local_tag: str,
        contact: Address,
        media: MediaSession | None,
        auth: DigestClient | None,
        config: SessionConfig,
        random_token: Callable[[], str],
        random_below: Callable[[int], int],
    ) -> None:
        self.role = role
        self.call_id = call_id
        self.local_tag = local_tag
        self.contact = contact
        self.media = media
        self.auth = auth
        self.config = config
        self._random_token = random_token
        self._random_below = random_below
        self.state = SessionState.IDLE
        self.mod_state = ModifyState.IDLE
        #: The primary dialog (UAC: the first 2xx's, or None before; UAS: ours).
        self.dialog: Dialog | None = None
        #: UAC: every dialog of the INVITE (forks).
        self.dialog_set: DialogSet | None = None
        #: UAC: the INVITE last sent (a new one after an auth retry); UAS: the one received.
        self.invite_request: Request | None = None
        self.end_reason: EndReason | None = None
        #: True once the terminated session has lingered 64*T1: the user agent drops it.
        self.closed = False
        self._invite_tx: object = None
        self._target: URI | None = None
        self._from: Address | None = None
        self._to: Address | None = None
        self._route: tuple[Address, ...] = ()
        self._extra: tuple[tuple[str, str], ...] = ()
        self._invite_body: tuple[bytes, str | None] = (b"", None)
        self._offer = True  # UAC: the INVITE carries an offer; UAS: the INVITE carried one
        self._answer_in_ack = False  # UAS: our 2xx carried the offer
        self._late_answered = False  # UAC: we answered the 2xx's offer in the ACK
        self._answer_sdp: SessionDescription | None = None  # UAS: answer to the INVITE
        self._early_sdp: OrderedDict[str, SessionDescription] = OrderedDict()
        self._acks: OrderedDict[tuple[str, int], Request] = OrderedDict()
        self._pending: dict[tuple[str | None, int, str], _Pending] = {}
        self._local_mod: _LocalModify | None = None
        self._remote_mod: _RemoteModify | None = None
        self._timers: dict[_Timer, float] = {}
        self._out: list[Output] = []
        self._events: list[Event] = []
        self._last_request: Request | None = None
        self._auth_attempts = 0  # credentials sent for the INVITE

    # ------------------------------------------------------------------ building blocks

    def _response(
        self,
        request: Request,
        status: int,
        *,
        reason: str | None = None,
        headers: tuple[tuple[str, str], ...] = (),
        body: bytes = b"",
        ctype: str | None = None,
        contact: bool = False,
    ) -> Response:
        response = make_response(request, status, reason, to_tag=self.local_tag)
        rows = response.headers
        if contact:
            rows.add("Contact", str(self.contact))
        if request.method == "INVITE" and 200 <= status < 300:
            rows.add("Allow", ", ".join(self.config.allow))
            if self.config.supported:
                rows.add("Supported", ", ".join(self.config.supported))
        for name, value in headers:
            rows.add(name, value)
        if body:
            rows.add("Content-Type", ctype or SDP)
            response.body = body
        return response

    def _reply(
        self,
        ctx: _Ctx,
        status: int,
        *,
        headers: tuple[tuple[str, str], ...] = (),
        sdp: SessionDescription | None = None,
    ) -> None:
        """Answer the request at hand on its transaction."""
        request = ctx.message
        assert isinstance(request, Request)
        refresh = 200 <= status < 300 and request.method in ("INVITE", "UPDATE")
        response = self._response(
            request,
            status,
            headers=headers,
            body=sdp.to_bytes() if sdp is not None else b"",
            contact=refresh,
        )
        self._out.append(SendResponse(response=response, transaction=ctx.transaction))

    def _send(self, kind: str, request: Request, dialog: Dialog, attempts: int = 0) -> None:
        key = (dialog.id.remote_tag, request.cseq.seq, request.method)
        self._pending[key] = _Pending(kind, request, dialog, attempts)
        self._out.append(SendRequest(request=request, next_hop=next_hop(request)))

    def _send_ack(self, dialog: Dialog, seq: int, ack: Request) -> None:
        self._acks[(dialog.id.remote_tag or "", seq)] = ack
        while len(self._acks) > 8:
            self._acks.popitem(last=False)
        self._out.append(SendAck(request=ack.copy(), next_hop=next_hop(ack)))

    def _credentials(
        self, old: Request, response: Response, new: Request, dialog: Dialog | None = None
    ) -> bool:
        """Add to ``new`` the answer to the challenge ``response`` drew for ``old``.  When
        there is none, ``new`` is not sent: its CSeq number is given back to ``dialog`` (the
        numbers stay contiguous, §12.2.1.1)."""
        answer = None
        if self.auth is not None:
            answer = self.auth.handle_challenge(
                response.headers,
                method=new.method,
                uri=new.uri_text,
                body=new.body,
                sent=old.headers,
            )
        if answer is None or not answer.ok:
            if dialog is not None and dialog.local_seq == new.cseq.seq:
                dialog.local_seq -= 1
            return False
        for name, value in answer.headers:
            new.headers.add(name, value)
        return True

    def _negotiated(self, before: tuple[NegotiatedMedia, ...], initial: bool) -> None:
        assert self.media is not None
        after = self.media.negotiated
        self._events.append(
            MediaNegotiated(media=after, changes=compare(before, after), initial=initial)
        )

    def _build_invite(self, seq: int) -> Request:
        assert self._from is not None and self._to is not None and self._target is not None
        rows = [("Route", str(r)) for r in self._route]
        rows += [
            ("Max-Forwards", "70"),
            ("From", str(self._from.with_tag(self.local_tag))),
            ("To", str(self._to)),
            ("Call-ID", self.call_id),
            ("CSeq", f"{seq} INVITE"),
            ("Contact", str(self.contact)),
            ("Allow", ", ".join(self.config.allow)),
        ]
        if self.config.supported:
            rows.append(("Supported", ", ".join(self.config.supported)))
        rows += self._extra
        body, ctype = self._invite_body
        if body:
            rows.append(("Content-Type", ctype or SDP))
        return Request("INVITE", self._target, rows, body)

    # ------------------------------------------------------------------ actions: both

    def _a_respond_ok(self, ctx: _Ctx) -> _FollowUp:
        self._reply(ctx, 200)
        return None

    def _a_respond_481(self, ctx: _Ctx) -> _FollowUp:
        self._reply(ctx, 481)
        return None

    def _a_respond_491(self, ctx: _Ctx) -> _FollowUp:
        self._reply(ctx, 491)
        return None

    def _a_respond_500(self, ctx: _Ctx) -> _FollowUp:
        # §14.2: Retry-After, randomly 0-10 s.
        self._reply(ctx, 500, headers=(("Retry-After", str(self._random_below(11))),))
        return None

    def _a_pass_to_app(self, ctx: _Ctx) -> _FollowUp:
        assert isinstance(ctx.message, Request)
        self._events.append(InDialogRequest(request=ctx.message, transaction=ctx.transaction))
        return None

    def _a_send_request(self, ctx: _Ctx) -> _FollowUp:
        dialog = self.dialog
        assert dialog is not None
        if sum(p.kind == "app" for p in self._pending.values()) >= self.config.max_pending_requests:
            raise LocalProtocolError(
                f"{self.config.max_pending_requests} in-dialog requests are outstanding"
            )
        request = dialog.create_request(
            ctx.intent, body=ctx.body or b"", content_type=ctx.content_type, headers=ctx.headers
        )
        self._last_request = request
        self._send("app", request, dialog)
        return None

    def _a_report_response(self, ctx: _Ctx) -> _FollowUp:
        pending, response = ctx.pending, ctx.message
        assert pending is not None and isinstance(response, Response)
        if response.status in (401, 407) and pending.attempts < self.config.max_auth_attempts:
            old = pending.request
            new = pending.dialog.create_request(
                old.method,
                body=old.body,
                content_type=old.headers.get("Content-Type"),
                headers=[
                    (n, v)
                    for n, v in old.headers
                    if n.lower()
                    not in (
                        "route",
                        "max-forwards",
                        "from",
                        "to",
                        "call-id",
                        "cseq",
                        "contact",
                        "content-type",
                        "content-length",
                        "via",
                        "authorization",
                        "proxy-authorization",
                    )
                ],
            )
            if self._credentials(old, response, new, pending.dialog):
                self._send("app", new, pending.dialog, pending.attempts + 1)
                return None
        self._events.append(InDialogResponse(request=pending.request, response=response))
        if pending.dialog is self.dialog and response.status == 481:
            return _I.DIALOG_GONE
        if pending.dialog is self.dialog and response.status == 408:
            return _I.REQUEST_TIMEOUT
        return None

    def _a_delegate(self, ctx: _Ctx) -> _FollowUp:
        return ctx.mod

    def _a_abort_remote_modify(self, ctx: _Ctx) -> _FollowUp:
        """§15.1.2: a BYE arrived; a pending re-INVITE of theirs gets 487."""
        if self.mod_state is not _M.REMOTE:
            return None
        ctx.status = 487
        return _MI.REQ_CANCEL

    def _a_close(self, ctx: _Ctx) -> _FollowUp:
        self.closed = True
        return None

    # ------------------------------------------------------------------ actions: modify

    def _send_modify(self, lm: _LocalModify, extra: Sequence[tuple[str, str]] = ()) -> Request:
        dialog = self.dialog
        assert dialog is not None
        if lm.sent is not None:  # a retry with credentials: the same offer again
            body = lm.sent.body
            ctype = lm.sent.headers.get("Content-Type")
        else:
            media, sdp = self.media, None
            if lm.intent in ("hold", "hold-legacy"):
                assert media is not None
                sdp = media.hold(legacy=lm.intent == "hold-legacy")
            elif lm.intent == "resume":
                assert media is not None
                sdp = media.resume()
            elif lm.intent == "offer":
                assert media is not None
                sdp = media.create_offer(lm.streams)
            body = sdp.to_bytes() if sdp is not None else lm.body or b""
            ctype = SDP if sdp is not None else lm.content_type
        request = dialog.create_request(
            lm.method, body=body, content_type=ctype if body else None, headers=lm.headers
        )
        for name, value in extra:
            request.headers.add(name, value)
        return request

    def _a_send_modify(self, ctx: _Ctx) -> _FollowUp:
        method = "INVITE" if ctx.mod is _MI.APP_REINVITE else "UPDATE"
        lm = _LocalModify(
            method,
            ctx.intent,
            streams=ctx.streams,
            headers=ctx.headers,
            body=ctx.body,
            content_type=ctx.content_type,
            snapshot=None if self.media is None else _MediaSnapshot.take(self.media),
        )
        request = self._send_modify(lm)
        lm.sent = request
        self._local_mod = lm
        self._timers.pop(_Timer.GLARE, None)
        assert self.dialog is not None
        self._send("modify", request, self.dialog)
        return None

    def _rollback_local(self) -> None:
        lm = self._local_mod
        if self.media is not None and lm is not None and lm.snapshot is not None:
            if self.media.state is OfferAnswerState.LOCAL_OFFER:
                self.media.rollback()
            self.media.held, self.media.legacy_hold = lm.snapshot.held, lm.snapshot.legacy_hold

    def _a_ack_modify(self, ctx: _Ctx) -> _FollowUp:
        response, pending = ctx.message, ctx.pending
        assert isinstance(response, Response) and pending is not None
        dialog = pending.dialog
        dialog.receive_response(response)  # target refresh (§12.2.1.2)
        lm = self._local_mod if self.mod_state is _M.LOCAL else None
        media, follow = self.media, None
        before = media.negotiated if media is not None else ()
        body, ctype = b"", None
        try:
            sdp = _sdp_of(response)
            if lm is not None and media is not None and lm.intent == "none":
                if sdp is None:
                    raise RemoteProtocolError("no offer in the 2xx to an offerless re-INVITE")
                media.receive_offer(sdp)
                body, ctype = media.create_answer().to_bytes(), SDP
            elif lm is not None and media is not None and lm.intent != "raw":
                if sdp is None:
                    raise RemoteProtocolError("no answer in the 2xx (§14.1)")
                media.receive_answer(sdp)
        except RemoteProtocolError:
            self._rollback_local()
            follow = _I.MEDIA_FAILED
        if response.cseq.method == "INVITE":
            seq = response.cseq.seq
            ack = dialog.create_ack(
                seq, body=body, content_type=ctype, headers=_credential_rows(pending.request)
            )
            self._send_ack(dialog, seq, ack)
        if lm is None:
            return None
        self._local_mod = None
        if follow is None and media is not None and lm.intent != "raw":
            self._negotiated(before, False)
        self._events.append(
            ModificationCompleted(method=lm.method, status=response.status, response=response)
        )
        return follow

    def _a_start_glare_timer(self, ctx: _Ctx) -> _FollowUp:
        """§14.1: retry after 2.1-4 s if we own the Call-ID, else 0-2 s (10 ms units)."""
        self._rollback_local()
        if self.role is Role.UAC:
            delay = (210 + self._random_below(191)) / 100
        else:
            delay = self._random_below(201) / 100
        self._timers[_Timer.GLARE] = ctx.now + delay
        return None

    def _a_resend_after_glare(self, ctx: _Ctx) -> _FollowUp:
        lm = self._local_mod
        if lm is None:
            return None
        lm.sent = None
        if self.media is not None:
            lm.snapshot = _MediaSnapshot.take(self.media)
        lm.sent = self._send_modify(lm)
        assert self.dialog is not None
        self._send("modify", lm.sent, self.dialog)
        return None

    def _a_defer_glare(self, ctx: _Ctx) -> _FollowUp:
        self._timers[_Timer.GLARE] = ctx.now + self.config.t1
        return None

    def _a_retry_modify(self, ctx: _Ctx) -> _FollowUp:
        pending, response, lm = ctx.pending, ctx.message, self._local_mod
        assert pending is not None and isinstance(response, Response) and lm is not None
        if pending.attempts >= self.config.max_auth_attempts:
            return _MI.RESP_FAILURE
        new = self._send_modify(lm)
        if not self._credentials(pending.request, response, new, pending.dialog):
            return _MI.RESP_FAILURE
        lm.sent = new
        self._send("modify", new, pending.dialog, pending.attempts + 1)
        return None

    def _a_modify_failed(self, ctx: _Ctx) -> _FollowUp:
        response, lm = ctx.message, self._local_mod
        assert isinstance(response, Response)
        self._rollback_local()
        self._local_mod = None
        if lm is not None:
            self._events.append(
                ModificationCompleted(method=lm.method, status=response.status, response=response)
            )
        return None

    def _a_modify_gone(self, ctx: _Ctx) -> _FollowUp:
        self._a_modify_failed(ctx)
        assert isinstance(ctx.message, Response)
        return _I.DIALOG_GONE if ctx.message.status == 481 else _I.REQUEST_TIMEOUT

    def _a_remote_offer(self, ctx: _Ctx) -> _FollowUp:
        """Their re-INVITE (§14.2): prepare our answer (or offer) now, send it on accept."""
        request = ctx.message
        assert isinstance(request, Request)
        media = self.media
        remote = _RemoteModify(request, ctx.transaction)
        self._remote_mod = remote
        if media is not None:
            remote.snapshot = _MediaSnapshot.take(media)
            try:
                offer = _sdp_of(request)
                remote.had_offer = offer is not None
                if offer is not None:
                    media.receive_offer(offer)
                    remote.sdp = media.create_answer()
                else:
                    remote.sdp = media.create_offer()
            except RemoteProtocolError as exc:
                ctx.status = exc.status_hint if 400 <= exc.status_hint < 700 else 488
                return _MI.APP_REJECT
        if self.config.auto_accept_reinvite:
            return _MI.APP_ACCEPT
        self._events.append(ReinviteReceived(request=request))
        return None

    def _a_accept_remote(self, ctx: _Ctx) -> _FollowUp:
        remote = self._remote_mod
        assert remote is not None
        response = self._response(
            remote.request,
            200,
            headers=ctx.headers if ctx.message is None else (),
            body=remote.sdp.to_bytes() if remote.sdp is not None else b"",
            contact=True,
        )
        self._out.append(SendResponse(response=response, transaction=remote.transaction))
        self._timers[_Timer.ACK] = ctx.now + 64 * self.config.t1
        if self.media is not None and remote.had_offer and remote.snapshot is not None:
            self._negotiated(remote.snapshot.negotiated, False)
        return None

    def _a_reject_remote(self, ctx: _Ctx) -> _FollowUp:
        remote = self._remote_mod
        assert remote is not None
        if self.media is not None and remote.snapshot is not None:
            remote.snapshot.restore(self.media)
        status = ctx.status or 487
        response = self._response(remote.request, status)
        self._out.append(SendResponse(response=response, transaction=remote.transaction))
        self._remote_mod = None
        return None

    def _a_apply_ack(self, ctx: _Ctx) -> _FollowUp:
        self._timers.pop(_Timer.ACK, None)
        remote, self._remote_mod = self._remote_mod, None
        media = self.media
        if remote is None or media is None or remote.had_offer:
            return None
        assert isinstance(ctx.message, Request) and remote.snapshot is not None
        try:
            sdp = _sdp_of(ctx.message)
            if sdp is None:
                raise RemoteProtocolError("no answer in the ACK (§14.2)")
            media.receive_answer(sdp)
        except RemoteProtocolError:
            return _I.MEDIA_FAILED
        self._negotiated(remote.snapshot.negotiated, False)
        return None

    def _a_answer_update(self, ctx: _Ctx) -> _FollowUp:
        """RFC 3311 §5.2: answer an UPDATE's offer in its 200; 491 while our offer is
        outstanding, 500 + Retry-After while theirs is."""
        media = self.media
        if media is None:
            self._reply(ctx, 488)
            return None
        if media.state is OfferAnswerState.LOCAL_OFFER:
            self._reply(ctx, 491)
            return None
        if media.state is OfferAnswerState.REMOTE_OFFER:
            return self._a_respond_500(ctx)
        request = ctx.message
        assert isinstance(request, Request)
        snapshot = _MediaSnapshot.take(media)
        try:
            offer = _sdp_of(request)
            if offer is None:
                raise RemoteProtocolError("the UPDATE body is not SDP", 415)
            answer = media.answer(offer)
        except RemoteProtocolError as exc:
            snapshot.restore(media)
            self._reply(ctx, exc.status_hint if 400 <= exc.status_hint < 700 else 488)
            return None
        self._reply(ctx, 200, sdp=answer)
        self._negotiated(snapshot.negotiated, False)
        return None
