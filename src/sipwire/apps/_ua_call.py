"""One call of a :class:`~sipwire.apps.useragent.UserAgent`: :class:`Call`.

A :class:`Call` pairs the sans-IO INVITE session (:class:`~sipwire.core.invite.InviteSession`,
RFC 3261 §13-15) with the call's audio (:class:`~sipwire.media.stream.MediaStream`, RTP
on a pair of UDP ports).  The user agent routes every SIP message of the call to the
session and hands the session's events to :meth:`Call._on_event`, which keeps the
media in step with the SDP negotiated (RFC 3264): the stream starts when the first
offer/answer completes (or early media arrives), follows re-INVITEs (hold, resume, a
moved peer) and is closed when the call ends.

DTMF from the peer arrives as RFC 4733 telephone-events in RTP, or as SIP INFO
(``application/dtmf-relay`` / ``application/dtmf``); :meth:`Call.dtmf` yields both, once
each, in order of arrival.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import os
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from sipwire.apps._ua_errors import CallFailed, NoResponseError, UserAgentError
from sipwire.core._errors import LocalProtocolError
from sipwire.core.invite import (
    EarlyMedia,
    EndReason,
    Event,
    InDialogRequest,
    InDialogResponse,
    InviteSession,
    MediaNegotiated,
    ModificationCompleted,
    Progress,
    ReinviteReceived,
    Role,
    SessionEnded,
    SessionEstablished,
)
from sipwire.core.message import Request, Response
from sipwire.core.offeranswer import NegotiatedMedia
from sipwire.media.session import MediaStatistics, RemoteMedia
from sipwire.media.stream import MediaStream, RecordWhat
from sipwire.media.tone import FRAME_BYTES

if TYPE_CHECKING:
    from sipwire.apps.useragent import UserAgent

__all__ = ["Call", "CallEnd", "CallState"]

_log = logging.getLogger("sipwire.useragent")

#: Unread DTMF digits a call keeps (the oldest are dropped beyond it).
MAX_DTMF_QUEUE = 64

_DTMF_RELAY = re.compile(r"^\s*signal\s*=\s*([0-9A-Da-d*#])\s*$", re.MULTILINE | re.IGNORECASE)
_DTMF_PLAIN = re.compile(r"^\s*([0-9A-Da-d*#])\s*$")


async def _first(
    futures: Iterable[asyncio.Future[Any]], timeout: float | None
) -> set[asyncio.Future[Any]]:
    """Wait until one of ``futures`` is done (they are not cancelled); returns the done
    ones (empty after ``timeout``)."""
    shielded = {asyncio.shield(f): f for f in futures}
    try:
        done, _ = await asyncio.wait(shielded, timeout=timeout, return_when="FIRST_COMPLETED")
    finally:
        for outer in shielded:
            outer.cancel()  # no-op when done; never cancels the futures themselves
    return {shielded[d] for d in done}


class CallState(enum.Enum):
    """Where a call is, as a user sees it."""

    CALLING = "calling"  # INVITE sent, nothing but 100 back yet
    RINGING = "ringing"  # outgoing: 180/183 received; incoming: not answered yet
    ANSWERED = "answered"  # the call is up
    ENDED = "ended"


@dataclass(frozen=True, slots=True)
class CallEnd:
    """How a call ended.

    ``by`` is ``"local"`` (we hung up, cancelled or declined), ``"remote"`` (the peer
    hung up, cancelled or rejected) or ``None`` (neither: a timeout, a failure);
    ``reason`` is the :class:`~sipwire.core.invite.EndReason` value (``"local BYE"``,
    ``"remote BYE"``, ``"rejected"``, ``"cancelled"``...); ``status`` the SIP status
    when one ended it (486, 603, 487...).
    """

    reason: str
    by: Literal["local", "remote"] | None
    status: int | None = None
    reason_phrase: str = ""

    def __str__(self) -> str:
        """``ended by the peer: remote BYE``, ``ended by us: cancelled (487 ...)``."""
        who = {"local": "us", "remote": "the peer", None: "neither side"}[self.by]
        text = f"ended by {who}: {self.reason}"
        if self.status is not None:
            text += f" ({self.status} {self.reason_phrase})".replace(" )", ")")
        return text


def _who(reason: EndReason, role: Role) -> Literal["local", "remote"] | None:
    if reason in (EndReason.LOCAL_BYE, EndReason.DECLINED):
        return "local"
    if reason in (EndReason.REMOTE_BYE, EndReason.REJECTED, EndReason.DIALOG_GONE):
        return "remote"
    if reason is EndReason.CANCELLED:
        return "local" if role is Role.UAC else "remote"
    return None


def dtmf_from_info(request: Request) -> str | None:
    """The digit of a SIP INFO carrying DTMF (``application/dtmf-relay``:
    ``Signal=5``; ``application/dtmf``: ``5``), else None."""
    ctype = request.content_type
    if ctype is None or not request.body:
        return None
    text = request.body.decode("utf-8", "replace")
    mime = ctype.mime_type
    match = None
    if mime == "application/dtmf-relay":
        match = _DTMF_RELAY.search(text)
    elif mime == "application/dtmf":
        match = _DTMF_PLAIN.match(text)
    return match.group(1).upper() if match else None


class Call:
    """One call; made by :meth:`UserAgent.call` (``direction == "outgoing"``) or
    delivered by :meth:`UserAgent.incoming` / :meth:`UserAgent.on_incoming`
    (``"incoming"``: :meth:`answer` or :meth:`reject` it).

    Media methods (:meth:`play`, :meth:`send_dtmf`, :meth:`read_frame`...) wait until
    the call's audio has started (the answer, or early media) and return quietly
    (``False``, ``b""``) if the call ends first.
    """

    def __init__(
        self,
        ua: UserAgent,
        session: InviteSession,
        stream: MediaStream | None,
        *,
        direction: Literal["outgoing", "incoming"],
        remote: str,
    ) -> None:
        self._ua = ua
        self.session = session
        #: The call's audio stream (None for a call made without media).
        self.media: MediaStream | None = stream
        self.direction = direction
        #: The other party: the callee's URI, or the caller's From.
        self.remote = remote
        self.state = CallState.CALLING if direction == "outgoing" else CallState.RINGING
        #: The last provisional status (180, 183) and final status seen, if any.
        self.progress_status: int | None = None
        self.status: int | None = None
        self.reason_phrase = ""
        #: How the call ended, once it has.
        self.end: CallEnd | None = None
        #: What offer/answer last decided (one entry per ``m=`` line).
        self.negotiated: tuple[NegotiatedMedia, ...] = ()
        self._loop = asyncio.get_running_loop()
        self._answered: asyncio.Future[None] = self._loop.create_future()
        self._ended: asyncio.Future[CallEnd] = self._loop.create_future()
        self._ringing = asyncio.Event()
        self._media_ready = asyncio.Event()
        self._digits: asyncio.Queue[str | None] = asyncio.Queue(MAX_DTMF_QUEUE + 1)
        self._modify: asyncio.Future[ModificationCompleted] | None = None
        self._tasks: set[asyncio.Future[Any]] = set()
        self._no_response: str | None = None  # "no response from ..." if that ended it
        self._record_tasks: list[asyncio.Task[float]] = []
        self._requests: dict[tuple[int, str], asyncio.Future[Response]] = {}
        #: Called with every event of the session (for logging, tests).
        self.on_event: Callable[[Event], None] | None = None
        if stream is not None:
            self._spawn(self._pump_rtp_dtmf(stream))

    def __repr__(self) -> str:
        return f"<Call {self.direction} {self.remote} {self.state.value}>"

    # ------------------------------------------------------------------ inspection

    @property
    def call_id(self) -> str:
        return self.session.call_id

    @property
    def answered(self) -> bool:
        return self._answered.done() and self._answered.exception() is None

    @property
    def ended(self) -> bool:
        return self._ended.done()

    @property
    def held(self) -> bool:
        """We put the call on hold (our SDP says we do not receive)."""
        return any(m.held_locally for m in self.negotiated)

    @property
    def remote_held(self) -> bool:
        """The peer put the call on hold (it does not want our audio)."""
        return any(m.held_by_remote for m in self.negotiated)

    def statistics(self) -> MediaStatistics:
        """The RTP counters of the call's audio so far (all zero without media)."""
        if self.media is None:
            return MediaStatistics.zero()
        return self.media.statistics()

    # ------------------------------------------------------------------ waiting

    async def wait_ringing(self, timeout: float | None = None) -> None:
        """Until a 180/183 arrived (outgoing), or the call was answered or ended."""
        ringing = asyncio.ensure_future(self._ringing.wait())
        try:
            done = await _first([ringing, self._ended, self._answered], timeout)
        finally:
            ringing.cancel()
        if not done:
            raise TimeoutError(f"not ringing within {timeout} s")

    async def wait_answered(self, timeout: float | None = None) -> None:
        """Until the call is up.  Raises :class:`CallFailed` (with the status) if it
        was rejected or cancelled, :class:`NoResponseError` if the INVITE got no
        response, :class:`TimeoutError` after ``timeout`` seconds."""
        await asyncio.wait_for(asyncio.shield(self._answered), timeout)

    async def wait_ended(self, timeout: float | None = None) -> CallEnd:
        """Until the call is over; returns how it ended."""
        return await asyncio.wait_for(asyncio.shield(self._ended), timeout)

    async def wait_media(self, timeout: float | None = None) -> bool:
        """Until the audio stream runs (True), or the call ended without it (False)."""
        waiter = asyncio.ensure_future(self._media_ready.wait())
        try:
            done = await _first([waiter, self._ended], timeout)
        finally:
            waiter.cancel()
        if not done:
            raise TimeoutError(f"no media within {timeout} s")
        return self._media_ready.is_set() and not self._media_closed()

    def _media_closed(self) -> bool:
        return self.media is None or self.media.closed

    # ------------------------------------------------------------------ call control

    def _now(self) -> float:
        return self._loop.time()

    async def answer(self) -> None:
        """Answer an incoming call (200 with our SDP answer); returns once the ACK has
        arrived (the call is up).  Raises :class:`CallFailed` if the caller gave up
        first, :class:`LocalProtocolError` on an outgoing or already answered call."""
        if self.direction != "incoming":
            raise LocalProtocolError("only an incoming call is answered")
        if self.ended:
            await self.wait_answered()  # raises CallFailed
        self.session.answer(self._now())
        self._ua._drain(self)
        await self.wait_answered()

    async def ring(self, status: int = 180, *, early_media: bool = False) -> None:
        """Send a provisional response to an incoming call (180 Ringing by default; the
        user agent already sent one unless made with ``ring=False``).  With
        ``early_media`` (183 Session Progress, say) it carries our SDP answer and the
        call's audio starts at once: :meth:`play` an announcement before answering."""
        if self.direction != "incoming":
            raise LocalProtocolError("only an incoming call rings")
        self.session.ring(self._now(), status=status, early_media=early_media)
        self._ua._drain(self)
        media = self.session.media
        if early_media and media is not None and media.negotiated:
            self._apply_media(media.negotiated)

    async def reject(self, status: int = 486, reason: str | None = None) -> None:
        """Refuse an incoming call: 486 Busy Here (default), 603 Decline, 480..."""
        if self.direction != "incoming":
            raise LocalProtocolError("only an incoming call is rejected; use hangup()")
        self.session.reject(status, self._now(), reason=reason)
        self._ua._drain(self)

    async def hangup(self) -> None:
        """End the call whatever its state: CANCEL before an answer (outgoing), a
        rejection (incoming, not answered: 603), else BYE.  Returns once the request is
        on its way; :meth:`wait_ended` waits for the end.  A no-op once ended."""
        if self.ended:
            return
        self.session.hangup(self._now())
        self._ua._drain(self)

    async def hold(self, timeout: float | None = 32.0) -> None:
        """Put the call on hold: a re-INVITE with our streams ``sendonly`` (RFC 3264
        §8.4); the peer stops sending.  Raises :class:`UserAgentError` if refused."""
        await self._modify_call(lambda: self.session.hold(self._now()), "hold", timeout)

    async def resume(self, timeout: float | None = 32.0) -> None:
        """Take the call off hold (a re-INVITE with ``sendrecv``)."""
        await self._modify_call(lambda: self.session.resume(self._now()), "resume", timeout)

    async def _modify_call(
        self, start: Callable[[], None], what: str, timeout: float | None
    ) -> None:
        if not self.answered or self.ended:
            raise LocalProtocolError(f"cannot {what} a call that is not up")
        if self._modify is not None and not self._modify.done():
            raise LocalProtocolError("a re-INVITE is already in progress")
        waiter: asyncio.Future[ModificationCompleted] = self._loop.create_future()
        self._modify = waiter
        start()
        self._ua._drain(self)
        done = await _first([waiter, self._ended], timeout)
        if waiter not in done:
            if self.ended:
                raise UserAgentError(f"the call ended during {what}")
            raise TimeoutError(f"no answer to the {what} re-INVITE within {timeout} s")
        result = waiter.result()
        if not result.accepted:
            reason = result.response.reason if result.response is not None else ""
            raise UserAgentError(f"{what} refused: {result.status} {reason}".rstrip())

    # ------------------------------------------------------------------ media

    async def _stream(self) -> MediaStream | None:
        if not await self.wait_media():
            return None
        return self.media

    async def play(self, path: str | os.PathLike[str], *, repeat: bool = False) -> bool:
        """Play a WAV file (any PCM rate/width; converted to 8 kHz mono) to the peer;
        True once played to the end, False if stopped or the call ended."""
        stream = await self._stream()
        return False if stream is None else await stream.play(path, repeat=repeat)

    async def play_tone(
        self, *freqs: float, seconds: float | None = 1.0, amplitude: float = 0.5
    ) -> bool:
        """Play a tone (one frequency or several summed) for ``seconds``."""
        stream = await self._stream()
        if stream is None:
            return False
        return await stream.play_tone(*freqs, seconds=seconds, amplitude=amplitude)

    async def play_pcm(self, pcm: bytes, *, repeat: bool = False) -> bool:
        """Play 8 kHz mono 16-bit little-endian PCM."""
        stream = await self._stream()
        return False if stream is None else await stream.play_pcm(pcm, repeat=repeat)

    def stop_playing(self) -> None:
        if self.media is not None:
            self.media.stop_playing()

    @property
    def echo(self) -> bool:
        """Send back what we receive (an echo test)."""
        return self.media is not None and self.media.echo

    @echo.setter
    def echo(self, value: bool) -> None:
        if self.media is None:
            raise LocalProtocolError("this call has no media")
        self.media.echo = value

    def record(
        self,
        path: str | os.PathLike[str],
        *,
        what: RecordWhat = "received",
        max_seconds: float | None = None,
    ) -> asyncio.Task[float]:
        """Record the call to an 8 kHz mono 16-bit WAV from when its audio starts until
        :meth:`stop_recording`, ``max_seconds`` or the end of the call.  ``what``: the
        audio received (default), sent, or both mixed.  Returns a task whose result is
        the seconds recorded (awaiting it is optional)."""

        async def run() -> float:
            stream = await self._stream()
            if stream is None:
                return 0.0
            return await stream.record(path, what=what, max_seconds=max_seconds)

        task: asyncio.Task[float] = asyncio.ensure_future(run())
        self._record_tasks.append(task)
        self._track(task)
        return task

    def stop_recording(self) -> None:
        if self.media is not None:
            self.media.stop_recording()

    async def read_frame(self) -> bytes:
        """The next 20 ms of received audio (320 octets of 8 kHz 16-bit PCM); ``b""``
        once the call has ended."""
        stream = await self._stream()
        return b"" if stream is None else await stream.read_frame()

    async def write_frame(self, pcm: bytes) -> None:
        """Send 20 ms (320 octets) of 8 kHz 16-bit PCM; waits while the send queue is
        full, so a producer runs at the call's pace.  Dropped once the call ended;
        :class:`LocalProtocolError` for a frame of another size."""
        if len(pcm) != FRAME_BYTES:
            raise LocalProtocolError(f"write_frame takes {FRAME_BYTES} octets of PCM")
        stream = await self._stream()
        if stream is None:
            return
        with contextlib.suppress(LocalProtocolError):  # closed meanwhile
            await stream.write_frame(pcm)

    async def send_dtmf(
        self,
        digits: str,
        *,
        duration: float | None = None,
        mode: Literal["rtp", "info"] = "rtp",
    ) -> None:
        """Send DTMF (``0-9 * # A-D``).  ``mode="rtp"`` (default): RFC 4733
        telephone-events when the peer offered them, else in-band tones; returns once
        the last digit has been sent.  ``mode="info"``: one SIP INFO per digit
        (``application/dtmf-relay``), each waiting for the peer's response;
        :class:`UserAgentError` if the peer refuses one."""
        bad = sorted({d for d in digits.upper() if d not in "0123456789*#ABCD"})
        if bad:
            raise LocalProtocolError(f"not DTMF digits: {''.join(bad)!r}")
        if mode == "info":
            await self._send_info_dtmf(digits.upper(), duration or 0.1)
            return
        stream = await self._stream()
        if stream is not None:
            await stream.send_dtmf(digits, duration=duration)

    async def _send_info_dtmf(self, digits: str, duration: float) -> None:
        if not self.answered:
            await self.wait_answered()
        for digit in digits:
            if self.ended:
                return
            body = f"Signal={digit}\r\nDuration={round(duration * 1000)}\r\n".encode()
            request = self.session.send_request(
                "INFO", self._now(), body=body, content_type="application/dtmf-relay"
            )
            waiter: asyncio.Future[Response] = self._loop.create_future()
            self._requests[(request.cseq.seq, "INFO")] = waiter
            self._ua._drain(self)
            done = await _first([waiter, self._ended], None)
            self._requests.pop((request.cseq.seq, "INFO"), None)
            if waiter not in done:
                return  # the call ended
            response = waiter.result()
            if response.status >= 300:
                raise UserAgentError(
                    f"the peer refused the INFO: {response.status} {response.reason}"
                )

    async def dtmf(self) -> AsyncIterator[str]:
        """Digits the peer sends (RFC 4733 or SIP INFO), each once, until the call ends."""
        while True:
            digit = await self._digits.get()
            if digit is None:
                self._digits.put_nowait(None)  # wake other readers too
                return
            yield digit

    async def _pump_rtp_dtmf(self, stream: MediaStream) -> None:
        async for digit in stream.dtmf():
            self._add_digit(digit)

    def _add_digit(self, digit: str) -> None:
        if self._digits.qsize() >= MAX_DTMF_QUEUE:
            with contextlib.suppress(asyncio.QueueEmpty):
                self._digits.get_nowait()
        self._digits.put_nowait(digit)

    # ------------------------------------------------------------------ context manager

    async def __aenter__(self) -> Call:
        return self

    async def __aexit__(self, *exc: object) -> None:
        """Hang up (if still up) and wait for the end, at most 5 s."""
        await self.hangup()
        with contextlib.suppress(TimeoutError):
            await self.wait_ended(5.0)

    # ------------------------------------------------------------------ from the user agent

    def _spawn(self, coro: Awaitable[Any]) -> None:
        self._track(asyncio.ensure_future(coro))

    def _track(self, task: asyncio.Future[Any]) -> None:
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _on_event(self, event: Event) -> None:
        if self.on_event is not None:
            try:
                self.on_event(event)
            except Exception:
                _log.exception("on_event callback failed")
        if isinstance(event, Progress):
            status = event.response.status
            if status > 100:
                self.progress_status = status
                if self.state is CallState.CALLING:
                    self.state = CallState.RINGING
                self._ringing.set()
        elif isinstance(event, EarlyMedia | MediaNegotiated):
            self._apply_media(event.media)
        elif isinstance(event, SessionEstablished):
            self.state = CallState.ANSWERED
            if isinstance(event.message, Response):
                self.status, self.reason_phrase = event.message.status, event.message.reason
            if not self._answered.done():
                self._answered.set_result(None)
        elif isinstance(event, ModificationCompleted):
            if self._modify is not None and not self._modify.done():
                self._modify.set_result(event)
        elif isinstance(event, InDialogRequest):
            self._on_request(event)
        elif isinstance(event, ReinviteReceived):
            self.session.accept_reinvite(self._now())
            self._ua._drain(self)
        elif isinstance(event, InDialogResponse):
            cseq = event.request.cseq
            waiter = self._requests.get((cseq.seq, cseq.method))
            if waiter is not None and not waiter.done():
                waiter.set_result(event.response)
        elif isinstance(event, SessionEnded):
            self._on_ended(event)

    def _on_request(self, event: InDialogRequest) -> None:
        request = event.request
        status = 200
        if request.method == "INFO":
            digit = dtmf_from_info(request)
            if digit is not None:
                self._add_digit(digit)
        elif request.method not in ("OPTIONS", "NOTIFY", "MESSAGE"):
            status = 405
        headers = [("Allow", ", ".join(self.session.config.allow))] if status == 405 else []
        self.session.respond(
            request, status, self._now(), transaction=event.transaction, headers=headers
        )
        self._ua._drain(self)

    def _apply_media(self, media: tuple[NegotiatedMedia, ...]) -> None:
        self.negotiated = media
        stream = self.media
        audio = next((m for m in media if m.media == "audio" and m.accepted), None)
        if stream is None or stream.closed or audio is None:
            return
        try:
            remote = RemoteMedia.from_negotiated(audio)
        except LocalProtocolError as exc:
            _log.warning("call %s: cannot use the negotiated audio: %s", self.call_id, exc)
            return
        if stream.started:
            stream.update(remote)
        else:
            stream.start(remote)
        self._media_ready.set()

    def _on_ended(self, event: SessionEnded) -> None:
        self.state = CallState.ENDED
        message = event.message
        phrase = message.reason if isinstance(message, Response) else ""
        if event.status is not None and not self.answered:
            self.status, self.reason_phrase = event.status, phrase
        end = CallEnd(
            reason=event.reason.value,
            by=None if self._no_response else _who(event.reason, self.session.role),
            status=event.status,
            reason_phrase=phrase,
        )
        self.end = end
        if not self._answered.done():
            if self._no_response:
                error: Exception = NoResponseError(self._no_response, method="INVITE")
            else:
                error = CallFailed(
                    event.status,
                    phrase or event.reason.value,
                    uri=self.remote,
                    incoming=self.direction == "incoming",
                )
            self._answered.set_exception(error)
            self._answered.exception()  # retrieved: no "never retrieved" warning
        if not self._ended.done():
            self._ended.set_result(end)
        self._add_digit_end()
        self._spawn(self._close_media())

    def _add_digit_end(self) -> None:
        while self._digits.full():
            self._digits.get_nowait()
        self._digits.put_nowait(None)

    async def _close_media(self) -> None:
        if self.media is not None:
            await self.media.close()
        self._media_ready.set()

    async def _shutdown(self) -> None:
        """Release everything now (the user agent is closing)."""
        await self._close_media()
        if not self._ended.done():
            self._ended.set_result(CallEnd(reason="user agent closed", by="local"))
        if not self._answered.done():
            self._answered.set_exception(
                CallFailed(
                    None,
                    "user agent closed",
                    uri=self.remote,
                    incoming=self.direction == "incoming",
                )
            )
            self._answered.exception()
        self._add_digit_end()
        for task in list(self._tasks):
            if task not in self._record_tasks:
                task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
