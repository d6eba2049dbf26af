"""A scriptable responder: the sipwire equivalent of SIPp's built-in ``uas`` scenario.

It answers INVITE with ``180 Ringing`` then the configured final response (a 200 carries
an SDP answer built with RFC 3264 offer/answer, or an offer when the INVITE had none),
absorbs ACK, answers BYE 200 (481 for an unknown dialog, §15.1.2), CANCEL with 487 for
the INVITE (§9.2), and OPTIONS with 200 and its capabilities (§11.2). It keeps no
state beyond the confirmed calls (bounded) so it can be used as a load target.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
from collections.abc import Awaitable
from dataclasses import dataclass

from sipwire.aio.endpoint import Endpoint, ServerTransaction
from sipwire.core._errors import RemoteProtocolError
from sipwire.core.message import Request
from sipwire.core.offeranswer import MediaCapability, create_answer, create_offer
from sipwire.core.sdp import Origin, SessionDescription

__all__ = ["Responder", "ResponderConfig"]

_log = logging.getLogger("sipwire.uas")

#: Calls remembered for BYE (a bound: the oldest are forgotten first).
MAX_CALLS = 100_000
_ANSWER_CACHE = 64


@dataclass(frozen=True, slots=True, kw_only=True)
class ResponderConfig:
    code: int = 200
    ring: float = 0.0
    media_port: int = 6000
    media_address: str = "127.0.0.1"


class Responder:
    """Attach to an :class:`Endpoint` with :meth:`install`."""

    def __init__(self, endpoint: Endpoint, config: ResponderConfig | None = None) -> None:
        self.ep = endpoint
        self.config = config or ResponderConfig()
        self.calls: collections.OrderedDict[str, None] = collections.OrderedDict()
        self._answers: collections.OrderedDict[bytes, bytes] = collections.OrderedDict()
        self.counters: collections.Counter[str] = collections.Counter()
        self._version = 1
        self._contacts: dict[str, str] = {}

    def install(self) -> None:
        self.ep.on("INVITE", self.on_invite)
        self.ep.on("BYE", self.on_bye)
        self.ep.on("OPTIONS", self.on_options)
        self.ep.on_ack(self.on_ack)

    def _origin(self) -> Origin:
        addrtype = "IP6" if ":" in self.config.media_address else "IP4"
        return Origin(
            username="sipwire",
            session_id="1",
            session_version=self._version,
            addrtype=addrtype,
            address=self.config.media_address,
        )

    def _sdp_for(self, offer: bytes) -> bytes:
        """The SDP answer for an offer body (cached: load generators repeat one offer)."""
        cached = self._answers.get(offer)
        if cached is not None:
            return cached
        capability = MediaCapability(port=self.config.media_port)
        if offer:
            parsed = SessionDescription.parse(offer)
            sdp = create_answer(
                parsed, [capability], origin=self._origin(), address=self.config.media_address
            )
        else:
            sdp = create_offer(
                [capability], origin=self._origin(), address=self.config.media_address
            )
        body = sdp.to_bytes()
        self._answers[offer] = body
        if len(self._answers) > _ANSWER_CACHE:
            self._answers.popitem(last=False)
        return body

    def on_invite(self, request: Request, tx: ServerTransaction) -> Awaitable[None] | None:
        """Answer at once (a synchronous handler: no task per call) unless it has to
        ring first, which returns the coroutine that waits."""
        self.counters["invite"] += 1
        if request.to.tag is not None:  # a re-INVITE: accept it with the same answer
            self._answer_200(request, tx)
            return None
        tx.respond_nowait(180)
        if self.config.ring > 0:
            return self._ring_then_answer(request, tx)
        self._final(request, tx)
        return None

    async def _ring_then_answer(self, request: Request, tx: ServerTransaction) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(tx.cancelled.wait(), self.config.ring)
        if tx.is_final:  # cancelled: the endpoint sent 487
            self.counters["cancelled"] += 1
            return
        self._final(request, tx)

    def _final(self, request: Request, tx: ServerTransaction) -> None:
        if self.config.code == 200:
            self._answer_200(request, tx)
        else:
            tx.respond_nowait(self.config.code)

    def _contact(self, transport: str) -> str:
        """The Contact header value for ``transport`` (cached: it never changes)."""
        value = self._contacts.get(transport)
        if value is None:
            name = transport if transport in ("UDP", "TCP", "TLS") else "UDP"
            value = self._contacts[transport] = f"<{self.ep.contact_uri(name)}>"
        return value

    def _answer_200(self, request: Request, tx: ServerTransaction) -> None:
        try:
            body = self._sdp_for(request.body)
        except RemoteProtocolError as exc:
            tx.respond_nowait(488, f"Not Acceptable Here ({exc.reason})")
            return
        tx.respond_nowait(
            200,
            headers=[
                ("Contact", self._contact(tx.source.transport)),
                ("Content-Type", "application/sdp"),
            ],
            body=body,
        )
        self.calls[request.call_id] = None
        if len(self.calls) > MAX_CALLS:
            self.calls.popitem(last=False)
        self.counters["answered"] += 1

    def on_ack(self, request: Request, source: object) -> None:
        self.counters["ack"] += 1

    def on_bye(self, request: Request, tx: ServerTransaction) -> None:
        if self.calls.pop(request.call_id, 0) is None:
            self.counters["bye"] += 1
            tx.respond_nowait(200)
        else:
            tx.respond_nowait(481)

    def on_options(self, request: Request, tx: ServerTransaction) -> None:
        tx.respond_nowait(
            200,
            headers=[
                ("Allow", ", ".join(self.ep.allowed_methods())),
                ("Accept", "application/sdp"),
            ],
        )
