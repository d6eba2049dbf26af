"""The INVITE session of a user agent (RFC 3261 §13-15, RFC 6026, RFC 3311, RFC 3264 glue),
sans-IO, both sides.

:class:`InviteSession` is one call: the dialog(s) of one INVITE, the offer/answer of its
:class:`~sipwire.core.offeranswer.MediaSession`, re-INVITE/UPDATE, BYE and the requests
inside the dialog.  It never sends anything itself: every input -- a call from the
application, a message routed to it by the user agent, :meth:`~InviteSession.handle_timer`
-- queues outputs (:mod:`sipwire.core.dialog`: :class:`SendRequest`, :class:`SendAck`,
:class:`SendCancel`, :class:`SendResponse`) that the shell drains with
:meth:`~InviteSession.outgoing`, then events for the application
(:meth:`~InviteSession.events`).  Every call that can start or fire a timer takes ``now``.

Two transition tables drive it (``docs/dialogs.md`` is generated from them):

* :data:`SESSION_TABLE` -- the call: ``(SessionState, SessionInput) -> entry``;
* :data:`MODIFY_TABLE` -- the session modification inside a confirmed dialog (re-INVITE
  and UPDATE, both ways, with 491 glare and the §14.1 retry timer):
  ``(ModifyState, ModifyInput) -> entry``.

An entry is a :class:`Transition` (actions in order, next state, and whether the call
ends and why), an :class:`Ignore` or a :class:`Misuse` (the application asked for
something the state forbids: :class:`LocalProtocolError`, nothing changed).  Network
inputs and timers are never misuse.  Actions may feed a follow-up input (a failed
authentication, an unusable answer), processed after the state has changed.

Not done here: reliable provisionals (RFC 3262, 100rel: an INVITE requiring it is
answered 420), session timers (RFC 4028: Session-Expires is not negotiated or refreshed),
UPDATE from the application before the dialog is confirmed, and the ``Replaces``/REFER
machinery (the requests reach the application as :class:`InDialogRequest`).
"""

from __future__ import annotations

import secrets
from collections import deque
from collections.abc import Callable, Iterable, Sequence

from sipwire.core._errors import LocalProtocolError, RemoteProtocolError
from sipwire.core._invite_base import (
    _address,
    _credential_rows,
    _Ctx,
    _default_token,
    _FollowUp,
    _sdp_of,
    _SessionBase,
    _Timer,
)
from sipwire.core._invite_tables import (
    MODIFY_TABLE,
    SDP,
    SESSION_TABLE,
    Action,
    EarlyMedia,
    EndReason,
    Event,
    Ignore,
    InDialogRequest,
    InDialogResponse,
    MediaNegotiated,
    Misuse,
    ModificationCompleted,
    ModifyInput,
    ModifyState,
    Progress,
    ReinviteReceived,
    Role,
    SessionConfig,
    SessionEnded,
    SessionEstablished,
    SessionInput,
    SessionState,
    Transition,
    render_markdown,
)
from sipwire.core.address import Address
from sipwire.core.dialog import (
    Dialog,
    DialogSet,
    Output,
    SendAck,
    SendCancel,
    SendRequest,
    SendResponse,
    next_hop,
)
from sipwire.core.digest import DigestClient
from sipwire.core.message import Request, Response
from sipwire.core.offeranswer import (
    MediaCapability,
    MediaSession,
    OfferAnswerState,
    process_answer,
)
from sipwire.core.sdp import SessionDescription
from sipwire.core.uri import URI, parse_uri

__all__ = [
    "MODIFY_TABLE",
    "SESSION_TABLE",
    "Action",
    "EarlyMedia",
    "EndReason",
    "Event",
    "Ignore",
    "InDialogRequest",
    "InDialogResponse",
    "InviteSession",
    "MediaNegotiated",
    "Misuse",
    "ModificationCompleted",
    "ModifyInput",
    "ModifyState",
    "Progress",
    "ReinviteReceived",
    "Role",
    "SessionConfig",
    "SessionEnded",
    "SessionEstablished",
    "SessionInput",
    "SessionState",
    "Transition",
    "render_markdown",
]

_S, _I, _A, _E = SessionState, SessionInput, Action, EndReason
_M, _MI = ModifyState, ModifyInput


class InviteSession(_SessionBase):
    """One call, UAC or UAS side; see the module docstring and ``docs/dialogs.md``.

    Build with :meth:`uac` (then :meth:`invite`) or :meth:`uas`.  Route every
    message of the call to it: responses to the requests it queued (the shell keeps the
    request of each :class:`SendRequest`) and in-dialog requests whose
    :func:`~sipwire.core.dialog.session_key` is :attr:`key`, plus the CANCEL of its
    INVITE (UAS) and ACKs.  Drain :meth:`outgoing` then :meth:`events` after every input;
    re-arm the timer at :meth:`next_deadline`.  Once :attr:`closed`, forget it.
    """

    # ------------------------------------------------------------------ construction

    @classmethod
    def uac(
        cls,
        *,
        target: URI | str,
        from_: Address | URI | str,
        contact: Address | URI | str,
        to: Address | URI | str | None = None,
        media: MediaSession | None = None,
        offer: bool = True,
        body: bytes = b"",
        content_type: str | None = None,
        route: Sequence[Address | URI | str] = (),
        headers: Iterable[tuple[str, str]] = (),
        auth: DigestClient | None = None,
        config: SessionConfig | None = None,
        call_id: str | None = None,
        random_token: Callable[[], str] = _default_token,
        random_below: Callable[[int], int] = secrets.randbelow,
    ) -> InviteSession:
        """A call to ``target`` (the Request-URI) from ``from_`` (To defaults to the
        target).  With ``media`` the INVITE carries its offer unless ``offer=False`` (the
        offer then comes in the 2xx and the answer goes in the ACK, §13.2.1); without
        ``media``, ``body``/``content_type`` are sent as given.  ``route`` is a preloaded
        route set (e.g. an outbound proxy, loose routing); ``headers`` are added to the
        INVITE; ``auth`` answers 401/407 to every request of the call."""
        session = cls(
            role=Role.UAC,
            call_id=call_id or f"{random_token()}{random_token()}",
            local_tag=random_token(),
            contact=_address(contact),
            media=media,
            auth=auth,
            config=config or SessionConfig(),
            random_token=random_token,
            random_below=random_below,
        )
        session._target = parse_uri(target) if isinstance(target, str) else target
        session._from = _address(from_).without_param("tag")
        session._to = _address(to if to is not None else session._target)
        session._route = tuple(_address(r) for r in route)
        session._extra = tuple(headers)
        session._offer = offer and media is not None
        session._invite_body = (body, content_type)
        return session

    @classmethod
    def uas(
        cls,
        request: Request,
        *,
        transaction: object,
        contact: Address | URI | str,
        now: float,
        media: MediaSession | None = None,
        local_tag: str | None = None,
        secure: bool | None = None,
        auth: DigestClient | None = None,
        config: SessionConfig | None = None,
        random_token: Callable[[], str] = _default_token,
        random_below: Callable[[int], int] = secrets.randbelow,
    ) -> InviteSession:
        """The session of an INVITE without To tag that we received on ``transaction``.

        The dialog exists from here (our tag: ``local_tag``, e.g. the endpoint's
        ``tx.to_tag``).  An INVITE we cannot take is answered at once and the session
        is terminated (:class:`SessionEnded` ``INCOMPATIBLE``): a required extension we
        lack (420 + Unsupported), a body other than SDP (415 + Accept), an unusable offer
        (488, or 400 for malformed SDP).  Otherwise the state is ``INCOMING``: call
        :meth:`ring`, :meth:`answer` or :meth:`reject`.  RemoteProtocolError (answer its
        ``status_hint``) when the INVITE cannot make a dialog (no Contact).
        """
        if request.method != "INVITE" or request.to.tag is not None:
            raise LocalProtocolError("uas() takes an INVITE without To tag")
        cfg = config or SessionConfig()
        tag = local_tag or random_token()
        session = cls(
            role=Role.UAS,
            call_id=request.call_id,
            local_tag=tag,
            contact=_address(contact),
            media=media,
            auth=auth,
            config=cfg,
            random_token=random_token,
            random_below=random_below,
        )
        session.dialog = Dialog.uas(
            request,
            local_tag=tag,
            contact=session.contact,
            secure=secure,
            random_below=random_below,
        )
        session.invite_request = request
        session._invite_tx = transaction
        session.state = SessionState.INCOMING
        ctx = _Ctx(now, message=request, transaction=transaction)
        unsupported = [t for t in request.require if t not in cfg.supported]
        ctype = request.content_type
        if unsupported:
            ctx.status, ctx.headers = 420, (("Unsupported", ", ".join(unsupported)),)
        elif request.body and ctype is not None and ctype.mime_type != SDP:
            ctx.status, ctx.headers = 415, (("Accept", SDP),)
        else:
            try:
                offer = _sdp_of(request)
                session._offer = offer is not None
                if offer is not None and media is not None:
                    media.receive_offer(offer)
                    session._answer_sdp = media.create_answer()
            except RemoteProtocolError as exc:
                ctx.status = exc.status_hint if 400 <= exc.status_hint < 700 else 488
        if ctx.status:
            session._feed(_I.INCOMPATIBLE, ctx)
        return session

    # ------------------------------------------------------------------ inspection

    @property
    def key(self) -> tuple[str, str]:
        """``(Call-ID, local tag)``: what :func:`~sipwire.core.dialog.session_key` of an
        in-dialog message of this call returns."""
        return (self.call_id, self.local_tag)

    @property
    def ended(self) -> bool:
        return self.end_reason is not None

    @property
    def established(self) -> bool:
        return self.state is SessionState.CONFIRMED

    # ------------------------------------------------------------------ output

    def outgoing(self) -> list[Output]:
        """Messages queued since the last call, in order."""
        out, self._out = self._out, []
        return out

    def events(self) -> list[Event]:
        """Events for the application since the last call, in order."""
        events, self._events = self._events, []
        return events

    def next_deadline(self) -> float | None:
        return min(self._timers.values(), default=None)

    def handle_timer(self, now: float) -> None:
        """Fire every timer due at ``now``, earliest first."""
        for timer, at in sorted(self._timers.items(), key=lambda item: item[1]):
            if at <= now and self._timers.get(timer) == at:
                del self._timers[timer]
                ctx = _Ctx(now, mod=_MI.TIMER_GLARE if timer is _Timer.GLARE else None)
                self._feed(timer.value, ctx)

    # ------------------------------------------------------------------ application

    def invite(self, now: float) -> Request:
        """Send the INVITE (UAC, once); returns it."""
        self._feed(_I.APP_INVITE, _Ctx(now))
        assert self.invite_request is not None
        return self.invite_request

    def ring(
        self,
        now: float,
        *,
        status: int = 180,
        reason: str | None = None,
        early_media: bool = False,
        headers: Iterable[tuple[str, str]] = (),
    ) -> None:
        """UAS: send a 101-199 provisional with our tag and Contact (an early dialog);
        ``early_media`` puts the SDP answer in it (183 Session Progress style)."""
        if not 101 <= status <= 199:
            raise LocalProtocolError("ring() sends a 101-199 response")
        ctx = _Ctx(now, status=status, reason=reason, headers=tuple(headers))
        ctx.early_media = early_media
        self._feed(_I.APP_RING, ctx)

    def answer(
        self,
        now: float,
        *,
        headers: Iterable[tuple[str, str]] = (),
        streams: Sequence[MediaCapability] | None = None,
        body: bytes | None = None,
        content_type: str | None = None,
    ) -> None:
        """UAS: send 200 with our Contact and the SDP answer (or our offer, when the
        INVITE had none; ``streams`` may replace the capabilities for it).  Without a
        MediaSession, ``body``/``content_type`` are sent as given."""
        ctx = _Ctx(now, headers=tuple(headers), body=body, content_type=content_type)
        ctx.streams = None if streams is None else tuple(streams)
        self._feed(_I.APP_ANSWER, ctx)

    def reject(
        self,
        status: int,
        now: float,
        *,
        reason: str | None = None,
        headers: Iterable[tuple[str, str]] = (),
    ) -> None:
        """UAS: answer the INVITE with ``status`` (300-699): decline 603, busy 486, ..."""
        if not 300 <= status <= 699:
            raise LocalProtocolError("reject() sends a 300-699 response")
        self._feed(_I.APP_REJECT, _Ctx(now, status=status, reason=reason, headers=tuple(headers)))

    def hangup(self, now: float, *, headers: Iterable[tuple[str, str]] = ()) -> None:
        """End the call whatever its state: CANCEL (UAC before the final response),
        ``config.hangup_status`` (UAS before answering), BYE (confirmed; a UAS that has
        not seen the ACK yet sends it when the ACK arrives or 64*T1 pass, §15).  A no-op
        when already ending."""
        self._feed(_I.APP_HANGUP, _Ctx(now, headers=tuple(headers)))

    def cancel(self, now: float) -> None:
        """UAC: CANCEL the INVITE (§9.1); a 2xx that races it is ACKed and BYEd."""
        if self.role is not Role.UAC:
            raise LocalProtocolError("only the caller cancels")
        self.hangup(now)

    def reinvite(
        self,
        now: float,
        *,
        streams: Sequence[MediaCapability] | None = None,
        offer: bool = True,
        headers: Iterable[tuple[str, str]] = (),
        body: bytes | None = None,
        content_type: str | None = None,
    ) -> None:
        """Send a re-INVITE (§14.1) with a new offer (``streams`` replaces the
        capabilities), or with none (``offer=False``: the peer offers in its 2xx, we
        answer in the ACK).  Without a MediaSession, ``body`` is sent as given."""
        if self.media is None:
            intent = "raw"
        else:
            intent = "offer" if offer else "none"
        self._modify(
            now,
            _MI.APP_REINVITE,
            intent,
            streams=streams,
            headers=headers,
            body=body,
            content_type=content_type,
        )

    def hold(self, now: float, *, legacy: bool = False) -> None:
        """re-INVITE putting every stream on hold (RFC 3264 §8.4: sendonly/inactive;
        ``legacy`` adds ``c=0.0.0.0``)."""
        self._need_media()
        self._modify(now, _MI.APP_REINVITE, "hold-legacy" if legacy else "hold")

    def resume(self, now: float) -> None:
        """re-INVITE taking the streams off hold."""
        self._need_media()
        self._modify(now, _MI.APP_REINVITE, "resume")

    def update(
        self,
        now: float,
        *,
        streams: Sequence[MediaCapability] | None = None,
        headers: Iterable[tuple[str, str]] = (),
    ) -> None:
        """Send an UPDATE with a new offer (RFC 3311), confirmed dialogs only."""
        self._need_media()
        self._modify(now, _MI.APP_UPDATE, "offer", streams=streams, headers=headers)

    def accept_reinvite(self, now: float, *, headers: Iterable[tuple[str, str]] = ()) -> None:
        """Answer the pending re-INVITE 200 (after :class:`ReinviteReceived`)."""
        self._feed(_I.APP_MODIFY, _Ctx(now, mod=_MI.APP_ACCEPT, headers=tuple(headers)))

    def reject_reinvite(self, status: int, now: float) -> None:
        """Reject the pending re-INVITE (e.g. 488); the session goes on as before."""
        if not 300 <= status <= 699:
            raise LocalProtocolError("reject_reinvite() sends a 300-699 response")
        self._feed(_I.APP_MODIFY, _Ctx(now, mod=_MI.APP_REJECT, status=status))

    def send_request(
        self,
        method: str,
        now: float,
        *,
        body: bytes = b"",
        content_type: str | None = None,
        headers: Iterable[tuple[str, str]] = (),
    ) -> Request:
        """Send ``method`` (INFO, MESSAGE, NOTIFY, REFER, OPTIONS...) inside the dialog;
        its final response comes back as :class:`InDialogResponse`.  At most
        ``config.max_pending_requests`` outstanding."""
        if method in ("INVITE", "ACK", "CANCEL", "BYE", "UPDATE", "PRACK"):
            raise LocalProtocolError(f"use the session's own methods for {method}")
        ctx = _Ctx(now, body=body, content_type=content_type, headers=tuple(headers))
        ctx.intent = method
        self._feed(_I.APP_REQUEST, ctx)
        assert self._last_request is not None
        return self._last_request

    def respond(
        self,
        request: Request,
        status: int,
        now: float,
        *,
        transaction: object,
        reason: str | None = None,
        headers: Iterable[tuple[str, str]] = (),
        body: bytes = b"",
        content_type: str | None = None,
    ) -> Response:
        """Answer an :class:`InDialogRequest` (no state change); returns the response."""
        del now
        response = self._response(
            request, status, reason=reason, headers=tuple(headers), body=body, ctype=content_type
        )
        self._out.append(SendResponse(response=response, transaction=transaction))
        return response

    # ------------------------------------------------------------------ network

    def receive_response(self, response: Response, now: float) -> None:
        """A response to a request this session queued (any transaction: the INVITE,
        its 2xx retransmissions and forks, BYE, re-INVITE, UPDATE, the app's requests),
        or a 408/503 the shell made up for a timeout / transport failure.  Unknown ones
        are ignored.  RemoteProtocolError if a header we need is malformed."""
        cseq = response.cseq
        status, tag = response.status, response.to.tag
        ctx = _Ctx(now, message=response)
        if cseq.method == "INVITE" and 200 <= status < 300 and (tag or "", cseq.seq) in self._acks:
            self._feed(_I.RESP_2XX_AGAIN, ctx)
            return
        invite = self.invite_request
        if (
            self.role is Role.UAC
            and invite is not None
            and cseq.method == "INVITE"
            and cseq.seq == invite.cseq.seq
        ):
            self._feed(self._classify_invite_response(status, tag), ctx)
            return
        key = (tag, cseq.seq, cseq.method)
        pending = self._pending.get(key)
        if pending is None or status < 200:
            return
        del self._pending[key]
        ctx.dialog = pending.dialog
        ctx.pending = pending
        challenged = status in (401, 407) and self.auth is not None
        if pending.kind == "fork-bye":
            if self.dialog_set is not None:
                self.dialog_set.forget(pending.dialog)
        elif pending.kind == "bye":
            self._feed(_I.RESP_BYE_AUTH if challenged else _I.RESP_BYE_FINAL, ctx)
        elif pending.kind == "app":
            self._feed(_I.RESP_REQUEST, ctx)
        else:
            if status < 300:
                ctx.mod = _MI.RESP_2XX
            elif status == 491:
                ctx.mod = _MI.RESP_491
            elif challenged:
                ctx.mod = _MI.RESP_AUTH
            elif status in (408, 481):
                ctx.mod = _MI.RESP_GONE
            else:
                ctx.mod = _MI.RESP_FAILURE
            self._feed(_I.RESP_MODIFY, ctx)

    def _classify_invite_response(self, status: int, tag: str | None) -> SessionInput:
        if status < 200:
            return _I.RESP_1XX_DIALOG if tag is not None and status != 100 else _I.RESP_1XX
        if status < 300:
            if tag is None:
                raise RemoteProtocolError("a 2xx to an INVITE must have a To tag (§12.1.1)")
            return _I.RESP_2XX if self.dialog is None else _I.RESP_2XX_FORK
        if status in (401, 407) and self.auth is not None:
            return _I.RESP_AUTH
        return _I.RESP_FAILURE

    def receive_request(self, request: Request, now: float, *, transaction: object = None) -> None:
        """A request routed to this session: an in-dialog request (``transaction`` is its
        server transaction, used for the response), an ACK (for our 2xx), or the CANCEL
        of the INVITE or of a pending re-INVITE (UAS).  Requests the session does not
        take are answered here: 481 (no such dialog, §12.2.2), 500 (CSeq out of order,
        §12.2.2), 491/500 (§14.2)."""
        method = request.method
        ctx = _Ctx(now, message=request, transaction=transaction)
        seq = request.cseq.seq
        invite = self.invite_request
        if method in ("ACK", "CANCEL"):
            remote = self._remote_mod
            if self.role is Role.UAS and invite is not None and seq == invite.cseq.seq:
                ctx.transaction = self._invite_tx
                self._feed(_I.REQ_ACK if method == "ACK" else _I.REQ_CANCEL, ctx)
            elif remote is not None and seq == remote.request.cseq.seq:
                ctx.mod = _MI.REQ_ACK if method == "ACK" else _MI.REQ_CANCEL
                self._feed(_I.REQ_ACK if method == "ACK" else _I.REQ_CANCEL, ctx)
            return
        if request.to.tag is None:
            raise LocalProtocolError("a request without To tag is not part of this session")
        dialog = self._dialog_for(request.from_.tag)
        if dialog is None:
            self._reply(ctx, 481)
            return
        if not dialog.terminated and self.state is not SessionState.TERMINATED:
            if dialog.check_request(request) is not None:
                self._reply(ctx, 500)  # §12.2.2: out of order
                return
        ctx.dialog = dialog
        if method == "BYE":
            inp = _I.REQ_BYE
        elif method == "INVITE":
            inp, ctx.mod = _I.REQ_INVITE, _MI.REQ_INVITE
        elif method == "UPDATE":
            inp = _I.REQ_UPDATE
            ctx.mod = _MI.REQ_UPDATE if request.body else _MI.REQ_UPDATE_NO_OFFER
        else:
            inp = _I.REQ_OTHER
        self._feed(inp, ctx)

    def _dialog_for(self, remote_tag: str | None) -> Dialog | None:
        dialog = self.dialog
        if dialog is not None:
            return dialog if dialog.id.remote_tag == remote_tag else None
        if self.dialog_set is not None:
            found = self.dialog_set.get(remote_tag)
            return found if found is not None and found.is_early else None
        return None

    # ------------------------------------------------------------------ the machine

    def _modify(
        self,
        now: float,
        mod: ModifyInput,
        intent: str,
        *,
        streams: Sequence[MediaCapability] | None = None,
        headers: Iterable[tuple[str, str]] = (),
        body: bytes | None = None,
        content_type: str | None = None,
    ) -> None:
        ctx = _Ctx(now, mod=mod, headers=tuple(headers), body=body, content_type=content_type)
        ctx.intent, ctx.streams = intent, None if streams is None else tuple(streams)
        self._feed(_I.APP_MODIFY, ctx)

    def _need_media(self) -> None:
        if self.media is None:
            raise LocalProtocolError("this needs a MediaSession")

    def _feed(self, first: SessionInput, ctx: _Ctx) -> None:
        """Apply ``first`` and the follow-ups its actions feed, in order."""
        queue: deque[SessionInput | ModifyInput] = deque([first])
        while queue:
            inp = queue.popleft()
            if isinstance(inp, SessionInput):
                entry = SESSION_TABLE[(self.state, inp)]
                if isinstance(entry, Misuse):
                    raise LocalProtocolError(f"{inp.value}: {entry.reason}")
                if isinstance(entry, Ignore):
                    continue
                queue.extend(self._run(entry.actions, ctx))
                old, self.state = self.state, entry.next_state
                if entry.ends is not None:
                    self._end(entry.ends, ctx)
                if self.state is _S.TERMINATED and old is not _S.TERMINATED:
                    self._enter_terminated(ctx.now)
            else:
                mod_entry = MODIFY_TABLE[(self.mod_state, inp)]
                if isinstance(mod_entry, Misuse):
                    raise LocalProtocolError(f"{inp.value}: {mod_entry.reason}")
                if isinstance(mod_entry, Ignore):
                    continue
                ctx.mod = inp
                queue.extend(self._run(mod_entry.actions, ctx))
                self.mod_state = mod_entry.next_state

    def _run(self, actions: tuple[Action, ...], ctx: _Ctx) -> list[SessionInput | ModifyInput]:
        follow: list[SessionInput | ModifyInput] = []
        for action in actions:
            result = _ACTIONS[action](self, ctx)
            if result is not None:
                follow.append(result)
        return follow

    def _end(self, reason: EndReason, ctx: _Ctx) -> None:
        if self.end_reason is not None:
            return
        self.end_reason = reason
        self._timers.pop(_Timer.ACK, None)
        self._timers.pop(_Timer.GLARE, None)
        message = ctx.message
        status: int | None = ctx.status or None
        if status is None and isinstance(message, Response):
            status = message.status
        self._events.append(SessionEnded(reason=reason, status=status, message=message))

    def _enter_terminated(self, now: float) -> None:
        self._timers.pop(_Timer.ACK, None)
        self._timers.pop(_Timer.GLARE, None)
        self._timers[_Timer.LINGER] = now + 64 * self.config.t1
        if self.dialog is not None:
            self.dialog.terminate()
        if self.dialog_set is not None:
            for dialog in self.dialog_set:
                if dialog.is_early:
                    dialog.terminate()

    # ------------------------------------------------------------------ actions: UAC

    def _a_send_invite(self, ctx: _Ctx) -> _FollowUp:
        if self._offer:
            assert self.media is not None
            self._invite_body = (self.media.create_offer().to_bytes(), SDP)
        invite = self._build_invite(1)
        self.invite_request = invite
        self.dialog_set = DialogSet(
            invite,
            contact=self.contact,
            max_dialogs=self.config.max_dialogs,
            random_below=self._random_below,
        )
        self._out.append(SendRequest(request=invite, next_hop=next_hop(invite)))
        return None

    def _a_send_cancel(self, ctx: _Ctx) -> _FollowUp:
        assert self.invite_request is not None
        self._out.append(SendCancel(invite=self.invite_request))
        return None

    def _a_progress(self, ctx: _Ctx) -> _FollowUp:
        assert isinstance(ctx.message, Response)
        self._events.append(Progress(response=ctx.message))
        return None

    def _a_early_dialog(self, ctx: _Ctx) -> _FollowUp:
        response = ctx.message
        assert isinstance(response, Response) and self.dialog_set is not None
        dialog = self.dialog_set.receive_response(response)
        self._events.append(Progress(response=response))
        media = self.media
        if dialog is None or media is None or not self._offer or media.local_sdp is None:
            return None
        try:
            sdp = _sdp_of(response)
            if sdp is None:
                return None
            negotiated = process_answer(media.local_sdp, sdp)
        except RemoteProtocolError:
            return None  # unusable early media: wait for the final answer
        self._early_sdp[dialog.id.remote_tag or ""] = sdp
        while len(self._early_sdp) > self.config.max_dialogs:
            self._early_sdp.popitem(last=False)
        self._events.append(EarlyMedia(media=negotiated, response=response))
        return None

    def _a_ack_2xx(self, ctx: _Ctx) -> _FollowUp:
        response = ctx.message
        assert isinstance(response, Response) and self.dialog_set is not None
        assert self.invite_request is not None
        dialog = self.dialog_set.receive_response(response)
        assert dialog is not None
        self.dialog = dialog
        body, ctype, follow = b"", None, None
        if self.media is not None and not self._offer and self.state is not _S.CANCELLING:
            try:  # §13.2.1: the offer came in the 2xx, the answer goes in the ACK
                offer = _sdp_of(response)
                if offer is None:
                    raise RemoteProtocolError("the 2xx to an offerless INVITE has no offer")
                self.media.receive_offer(offer)
                body, ctype = self.media.create_answer().to_bytes(), SDP
                self._late_answered = True
            except RemoteProtocolError:
                if self.media.state is not OfferAnswerState.STABLE:
                    self.media.rollback()
                follow = _I.MEDIA_FAILED
        seq = self.invite_request.cseq.seq
        ack = dialog.create_ack(
            seq, body=body, content_type=ctype, headers=_credential_rows(self.invite_request)
        )
        self._send_ack(dialog, seq, ack)
        return follow

    def _a_established(self, ctx: _Ctx) -> _FollowUp:
        response = ctx.message
        assert isinstance(response, Response)
        self._events.append(SessionEstablished(message=response))
        media = self.media
        if media is None:
            return None
        if not self._offer:
            if self._late_answered:
                self._negotiated((), True)
            return None
        try:
            sdp = _sdp_of(response) or self._early_sdp.get(response.to.tag or "")
            if sdp is None:
                raise RemoteProtocolError("no answer in the 2xx (§13.2.1)")
            media.receive_answer(sdp)
        except RemoteProtocolError:
            return _I.MEDIA_FAILED
        self._negotiated((), True)
        return None

    def _a_resend_ack(self, ctx: _Ctx) -> _FollowUp:
        response = ctx.message
        assert isinstance(response, Response)
        ack = self._acks.get((response.to.tag or "", response.cseq.seq))
        if ack is not None:
            self._out.append(SendAck(request=ack.copy(), next_hop=next_hop(ack)))
        return None

    def _a_ack_and_bye_fork(self, ctx: _Ctx) -> _FollowUp:
        """§13.2.2.4: a 2xx from another fork after the first: ACK it, then BYE it."""
        response = ctx.message
        assert isinstance(response, Response) and self.dialog_set is not None
        assert self.invite_request is not None
        dialog = self.dialog_set.receive_response(response)
        if dialog is None or dialog is self.dialog:
            return None
        seq = self.invite_request.cseq.seq
        ack = dialog.create_ack(seq, headers=_credential_rows(self.invite_request))
        self._send_ack(dialog, seq, ack)
        self._send("fork-bye", dialog.create_request("BYE"), dialog)
        dialog.terminate()
        return None

    def _a_send_bye(self, ctx: _Ctx) -> _FollowUp:
        dialog = self.dialog
        assert dialog is not None
        headers = ctx.headers if ctx.message is None else ()
        self._send("bye", dialog.create_request("BYE", headers=headers), dialog)
        return None

    def _a_retry_invite(self, ctx: _Ctx) -> _FollowUp:
        """§22.2: the same INVITE with credentials, a new CSeq, same Call-ID and tag."""
        response, old = ctx.message, self.invite_request
        assert isinstance(response, Response) and old is not None
        self._auth_attempts += 1
        new = self._build_invite(old.cseq.seq + 1)
        if self._auth_attempts > self.config.max_auth_attempts or not self._credentials(
            old, response, new
        ):
            return _I.AUTH_FAILED
        self.invite_request = new
        assert self.dialog_set is not None
        self.dialog_set.invite = new
        self._out.append(SendRequest(request=new, next_hop=next_hop(new)))
        return None

    def _a_retry_bye(self, ctx: _Ctx) -> _FollowUp:
        pending, response = ctx.pending, ctx.message
        assert pending is not None and isinstance(response, Response)
        if pending.attempts >= self.config.max_auth_attempts:
            return _I.RESP_BYE_FINAL
        new = pending.dialog.create_request("BYE")
        if not self._credentials(pending.request, response, new, pending.dialog):
            return _I.RESP_BYE_FINAL
        self._send("bye", new, pending.dialog, pending.attempts + 1)
        return None

    # ------------------------------------------------------------------ actions: UAS

    def _invite_response(self, ctx: _Ctx, status: int, sdp: SessionDescription | None) -> None:
        assert self.invite_request is not None
        body = sdp.to_bytes() if sdp is not None else ctx.body or b""
        response = self._response(
            self.invite_request,
            status,
            reason=ctx.reason,
            headers=ctx.headers,
            body=body,
            ctype=ctx.content_type if sdp is None else SDP,
            contact=status < 300,
        )
        self._out.append(SendResponse(response=response, transaction=self._invite_tx))

    def _a_send_1xx(self, ctx: _Ctx) -> _FollowUp:
        early = self._answer_sdp if ctx.early_media else None
        self._invite_response(ctx, ctx.status or 180, early)
        return None

    def _a_send_2xx(self, ctx: _Ctx) -> _FollowUp:
        sdp = None
        if self.media is not None:
            if self._offer:
                sdp = self._answer_sdp
            else:  # §13.2.1: we offer in the 2xx, the answer comes in the ACK
                sdp = self.media.create_offer(ctx.streams)
                self._answer_in_ack = True
        self._invite_response(ctx, 200, sdp)
        assert self.dialog is not None
        self.dialog.confirm()
        if self.media is not None and self._offer:
            self._negotiated((), True)
        return None

    def _a_send_reject(self, ctx: _Ctx) -> _FollowUp:
        self._invite_response(ctx, ctx.status or self.config.hangup_status, None)
        return None

    def _a_send_487(self, ctx: _Ctx) -> _FollowUp:
        self._invite_response(_Ctx(ctx.now), 487, None)
        return None

    def _a_start_ack_timer(self, ctx: _Ctx) -> _FollowUp:
        self._timers[_Timer.ACK] = ctx.now + 64 * self.config.t1
        return None

    def _a_stop_ack_timer(self, ctx: _Ctx) -> _FollowUp:
        self._timers.pop(_Timer.ACK, None)
        return None

    def _a_confirm(self, ctx: _Ctx) -> _FollowUp:
        ack = ctx.message
        assert isinstance(ack, Request)
        self._events.append(SessionEstablished(message=ack))
        if self.media is None or not self._answer_in_ack:
            return None
        try:
            sdp = _sdp_of(ack)
            if sdp is None:
                raise RemoteProtocolError("no answer in the ACK (§13.2.1)")
            self.media.receive_answer(sdp)
        except RemoteProtocolError:
            return _I.MEDIA_FAILED
        self._negotiated((), True)
        return None


_Handler = Callable[[InviteSession, _Ctx], _FollowUp]
_ACTIONS: dict[Action, _Handler] = {
    _A.SEND_INVITE: InviteSession._a_send_invite,
    _A.SEND_CANCEL: InviteSession._a_send_cancel,
    _A.PROGRESS: InviteSession._a_progress,
    _A.EARLY_DIALOG: InviteSession._a_early_dialog,
    _A.ACK_2XX: InviteSession._a_ack_2xx,
    _A.ESTABLISHED: InviteSession._a_established,
    _A.RESEND_ACK: InviteSession._a_resend_ack,
    _A.ACK_AND_BYE_FORK: InviteSession._a_ack_and_bye_fork,
    _A.SEND_BYE: InviteSession._a_send_bye,
    _A.RETRY_INVITE: InviteSession._a_retry_invite,
    _A.RETRY_BYE: InviteSession._a_retry_bye,
    _A.SEND_1XX: InviteSession._a_send_1xx,
    _A.SEND_2XX: InviteSession._a_send_2xx,
    _A.SEND_REJECT: InviteSession._a_send_reject,
    _A.SEND_487: InviteSession._a_send_487,
    _A.RESPOND_OK: InviteSession._a_respond_ok,
    _A.RESPOND_481: InviteSession._a_respond_481,
    _A.RESPOND_491: InviteSession._a_respond_491,
    _A.RESPOND_500: InviteSession._a_respond_500,
    _A.START_ACK_TIMER: InviteSession._a_start_ack_timer,
    _A.STOP_ACK_TIMER: InviteSession._a_stop_ack_timer,
    _A.CONFIRM: InviteSession._a_confirm,
    _A.PASS_TO_APP: InviteSession._a_pass_to_app,
    _A.SEND_REQUEST: InviteSession._a_send_request,
    _A.REPORT_RESPONSE: InviteSession._a_report_response,
    _A.DELEGATE: InviteSession._a_delegate,
    _A.ABORT_REMOTE_MODIFY: InviteSession._a_abort_remote_modify,
    _A.CLOSE: InviteSession._a_close,
    _A.SEND_REINVITE: InviteSession._a_send_modify,
    _A.SEND_UPDATE: InviteSession._a_send_modify,
    _A.ACK_MODIFY: InviteSession._a_ack_modify,
    _A.START_GLARE_TIMER: InviteSession._a_start_glare_timer,
    _A.RETRY_MODIFY: InviteSession._a_retry_modify,
    _A.MODIFY_FAILED: InviteSession._a_modify_failed,
    _A.MODIFY_GONE: InviteSession._a_modify_gone,
    _A.RESEND_AFTER_GLARE: InviteSession._a_resend_after_glare,
    _A.DEFER_GLARE: InviteSession._a_defer_glare,
    _A.REMOTE_OFFER: InviteSession._a_remote_offer,
    _A.ACCEPT_REMOTE: InviteSession._a_accept_remote,
    _A.REJECT_REMOTE: InviteSession._a_reject_remote,
    _A.APPLY_ACK: InviteSession._a_apply_ack,
    _A.ANSWER_UPDATE: InviteSession._a_answer_update,
}
assert set(_ACTIONS) == set(Action), "every action needs a handler"
