"""The SDP offer/answer model (RFC 3264), as pure functions and one small state holder.

* :func:`create_offer` builds an offer from local capabilities (:class:`MediaCapability`,
  each with its :class:`Codec` list); static payload types keep their RFC 3551 numbers
  (0 PCMU, 8 PCMA, 9 G722), others get dynamic numbers from 96 up (RFC 3264 §5).
* :func:`create_answer` answers an offer: one ``m=`` line per offered one, codecs
  intersected in the offerer's order with the offerer's payload type numbers (§6.1),
  unusable streams rejected with port 0 (§6), directions mirrored (§6.1). It raises
  ``RemoteProtocolError(status_hint=488)`` when nothing at all is acceptable.
* :func:`negotiate` turns a local and a remote SDP into :class:`NegotiatedMedia`: the
  codec and payload type to send with (the remote SDP's numbers, §5.1/§6.1), where to
  send RTP/RTCP, and who sends (§7). :func:`process_answer` checks an answer against
  its offer first.
* :func:`update_origin` keeps the ``o=`` line and bumps its version only when the SDP
  changed (§8); :func:`hold_offer` / :func:`resume_offer` build hold re-offers (§8.4),
  :func:`is_held` also recognises the RFC 2543 ``c=0.0.0.0`` hold; :func:`compare`
  reports mid-call address, port, codec and direction changes.
* :class:`MediaSession` tracks one dialog's offer/answer state (a transition table:
  an offer received while ours is outstanding is glare, 491) and the SDPs exchanged.

Nothing here performs I/O; randomness (the ``o=`` session id) is injected.
"""

from __future__ import annotations

import enum
import secrets
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace

from sipwire.core._errors import LocalProtocolError, RemoteProtocolError
from sipwire.core.sdp import (
    STATIC_PAYLOAD_TYPES,
    Attribute,
    Connection,
    Direction,
    MediaDescription,
    Origin,
    SessionDescription,
    Timing,
)

__all__ = [
    "DEFAULT_AUDIO_CODECS",
    "DYNAMIC_PAYLOAD_TYPES",
    "G722",
    "PCMA",
    "PCMU",
    "TELEPHONE_EVENT",
    "TRANSITIONS",
    "Codec",
    "MediaCapability",
    "MediaChange",
    "MediaSession",
    "NegotiatedMedia",
    "OfferAnswerInput",
    "OfferAnswerState",
    "codecs_of",
    "compare",
    "create_answer",
    "create_offer",
    "hold_direction",
    "hold_offer",
    "is_held",
    "negotiate",
    "process_answer",
    "resume_direction",
    "resume_offer",
    "update_origin",
]

DYNAMIC_PAYLOAD_TYPES = range(96, 128)  # RFC 3551 §6: the dynamic range


# --------------------------------------------------------------------------- codecs


@dataclass(frozen=True, kw_only=True, slots=True)
class Codec:
    """An RTP payload format: encoding name, clock rate, channels, fmtp parameters.

    ``payload_type`` is the number bound to it in some SDP (``None`` in a capability
    list means "pick one": the RFC 3551 static number if there is one, else a dynamic
    one). Encoding names compare case-insensitively (RFC 4855 §3).
    """

    name: str
    clock_rate: int
    channels: int = 1
    fmtp: str | None = None
    payload_type: int | None = None

    def __post_init__(self) -> None:
        if not self.name or any(c.isspace() or c == "/" for c in self.name):
            raise LocalProtocolError(f"bad codec name {self.name!r}")
        if self.clock_rate <= 0 or self.channels <= 0:
            raise LocalProtocolError("codec clock rate and channels must be positive")
        if self.payload_type is not None and not 0 <= self.payload_type <= 127:
            raise LocalProtocolError(f"payload type {self.payload_type} outside 0..127")

    def matches(self, other: Codec) -> bool:
        """Same format: name (case-insensitive), clock rate and channels are equal."""
        return (
            self.name.casefold() == other.name.casefold()
            and self.clock_rate == other.clock_rate
            and self.channels == other.channels
        )

    @property
    def is_telephone_event(self) -> bool:
        """RFC 4733 DTMF events (``telephone-event``)."""
        return self.name.casefold() == "telephone-event"

    @property
    def is_secondary(self) -> bool:
        """DTMF events or comfort noise (RFC 3389): never the main send codec."""
        return self.is_telephone_event or self.name.casefold() == "cn"

    def rtpmap(self, payload_type: int) -> str:
        """The ``a=rtpmap`` value binding this codec to ``payload_type`` (RFC 8866 §6.6)."""
        text = f"{payload_type} {self.name}/{self.clock_rate}"
        return text if self.channels == 1 else f"{text}/{self.channels}"

    def static_payload_type(self) -> int | None:
        """The RFC 3551 static payload type of this format, if it has one."""
        for pt, mapping in STATIC_PAYLOAD_TYPES.items():
            if (
                mapping.encoding_name.casefold() == self.name.casefold()
                and mapping.clock_rate == self.clock_rate
                and (mapping.channels or 1) == self.channels
            ):
                return pt
        return None


PCMU = Codec(name="PCMU", clock_rate=8000, payload_type=0)
PCMA = Codec(name="PCMA", clock_rate=8000, payload_type=8)
G722 = Codec(name="G722", clock_rate=8000, payload_type=9)  # 8000 by RFC 3551 §4.5.2
TELEPHONE_EVENT = Codec(name="telephone-event", clock_rate=8000, fmtp="0-16", payload_type=101)
DEFAULT_AUDIO_CODECS = (PCMU, PCMA, TELEPHONE_EVENT)


def codecs_of(media: MediaDescription) -> tuple[Codec, ...]:
    """The codecs of an RTP media description, in preference order, with their payload
    types. A format without ``a=rtpmap`` uses the static RFC 3551 mapping (RFC 3264
    §5.1); an unknown dynamic one is skipped."""
    result = []
    for pt in media.payload_types:
        mapping = media.rtpmap(pt)
        if mapping is None or not mapping.encoding_name or "/" in mapping.encoding_name:
            continue
        if mapping.clock_rate <= 0 or mapping.channels == 0:
            continue
        result.append(
            Codec(
                name=mapping.encoding_name,
                clock_rate=mapping.clock_rate,
                channels=mapping.channels or 1,
                fmtp=media.fmtp(pt) or None,
                payload_type=pt,
            )
        )
    return tuple(result)


def _find_match(codec: Codec, candidates: Iterable[Codec]) -> Codec | None:
    return next((c for c in candidates if c.matches(codec)), None)


# --------------------------------------------------------------------------- capabilities


@dataclass(frozen=True, kw_only=True, slots=True)
class MediaCapability:
    """One local media stream we can offer or accept.

    ``codecs`` are in preference order. ``direction`` is what we want (RFC 3264 §5.1);
    ``ptime`` the packetization we would like to receive (§5.1); ``rtcp_port`` adds
    ``a=rtcp`` (RFC 3605); ``rtcp_mux`` offers/accepts RFC 5761 multiplexing;
    ``address`` overrides the session address with a media-level ``c=``;
    ``attributes`` are extra ``a=`` lines appended verbatim. Port 0 disables it.
    """

    media: str = "audio"
    port: int
    codecs: tuple[Codec, ...] = DEFAULT_AUDIO_CODECS
    proto: str = "RTP/AVP"
    direction: Direction = Direction.SENDRECV
    ptime: int | None = None
    rtcp_port: int | None = None
    rtcp_mux: bool = False
    address: str | None = None
    attributes: tuple[Attribute, ...] = ()

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise LocalProtocolError(f"port {self.port} out of range")
        object.__setattr__(self, "codecs", tuple(self.codecs))  # accept any sequence
        object.__setattr__(self, "attributes", tuple(self.attributes))
        if not self.codecs:
            raise LocalProtocolError("a media capability needs at least one codec")


def _connection(address: str) -> Connection:
    addrtype = "IP6" if ":" in address else "IP4"
    return Connection(addrtype=addrtype, address=address)


def _assign_payload_types(
    codecs: Sequence[Codec], previous: Sequence[Codec] = ()
) -> tuple[Codec, ...]:
    """Give every codec a payload type: its own, its static RFC 3551 one, the one it had
    in the previous SDP (RFC 3264 §8.3.2: a mapping must not change), else a free one."""
    chosen: list[int | None] = []
    for codec in codecs:
        pt = codec.payload_type
        if pt is None:
            pt = codec.static_payload_type()
        if pt is None:
            earlier = _find_match(codec, previous)
            pt = None if earlier is None else earlier.payload_type
        chosen.append(pt)
    taken = {pt for pt in chosen if pt is not None} | {
        c.payload_type for c in previous if c.payload_type is not None
    }
    free = (pt for pt in DYNAMIC_PAYLOAD_TYPES if pt not in taken)
    result = []
    for codec, pt in zip(codecs, chosen, strict=True):
        if pt is None:
            pt = next(free, None)
            if pt is None:
                raise LocalProtocolError("no dynamic RTP payload type left (96..127)")
        result.append(replace(codec, payload_type=pt))
    return tuple(result)


def _media_line(
    capability: MediaCapability,
    codecs: Sequence[Codec],
    direction: Direction,
    *,
    rtcp_mux: bool,
    session_address: str | None,
) -> MediaDescription:
    attributes: list[Attribute] = []
    for codec in codecs:
        assert codec.payload_type is not None
        attributes.append(Attribute("rtpmap", codec.rtpmap(codec.payload_type)))
        if codec.fmtp:
            attributes.append(Attribute("fmtp", f"{codec.payload_type} {codec.fmtp}"))
    if capability.ptime is not None:
        attributes.append(Attribute("ptime", str(capability.ptime)))
    if capability.rtcp_port is not None:
        attributes.append(Attribute("rtcp", str(capability.rtcp_port)))
    if rtcp_mux:
        attributes.append(Attribute("rtcp-mux"))
    attributes.extend(capability.attributes)
    attributes.append(Attribute(direction.value))
    own_address = capability.address
    connections = () if own_address in (None, session_address) else (_connection(own_address),)
    return MediaDescription(
        media=capability.media,
        port=capability.port,
        proto=capability.proto,
        formats=tuple(str(c.payload_type) for c in codecs),
        connections=connections,
        attributes=tuple(attributes),
    )


def _disabled(media: MediaDescription) -> MediaDescription:
    """A stream switched off: port 0, same media/proto/formats, no attributes (§6, §8.2)."""
    formats = media.formats or ("0",)
    return MediaDescription(media=media.media, port=0, proto=media.proto, formats=formats)


# --------------------------------------------------------------------------- versioning


def update_origin(
    previous: SessionDescription | None, new: SessionDescription
) -> SessionDescription:
    """``new`` as the next SDP after ``previous`` in one session (RFC 3264 §8).

    The ``o=`` line stays identical to the previous one; its version goes up by one if
    anything else changed, and stays if nothing did (then ``previous`` is returned).
    """
    if previous is None:
        return new
    candidate = replace(new, origin=previous.origin)
    if candidate == previous:
        return previous
    return candidate.with_version(previous.origin.session_version + 1)


# --------------------------------------------------------------------------- offers


def create_offer(
    streams: Sequence[MediaCapability],
    *,
    origin: Origin,
    address: str,
    session_name: str = "-",
    previous: SessionDescription | None = None,
) -> SessionDescription:
    """Build an offer (RFC 3264 §5) with one ``m=`` line per capability, in order.

    With ``previous`` (the last SDP we sent in this session) the offer follows §8: the
    ``o=`` line is kept and its version bumped if anything changed, payload type numbers
    stay bound to the same codecs, and ``m=`` lines beyond ``streams`` are kept, disabled
    (the number of ``m=`` lines never decreases). A capability with port 0 yields a
    disabled line without attributes (§8.2).
    """
    previous_media = previous.media if previous is not None else ()
    lines = []
    for index, capability in enumerate(streams):
        earlier = codecs_of(previous_media[index]) if index < len(previous_media) else ()
        codecs = _assign_payload_types(capability.codecs, earlier)
        line = _media_line(
            capability,
            codecs,
            capability.direction,
            rtcp_mux=capability.rtcp_mux,
            session_address=address,
        )
        lines.append(_disabled(line) if capability.port == 0 else line)
    lines.extend(_disabled(m) for m in previous_media[len(streams) :])
    offer = SessionDescription(
        origin=origin,
        session_name=session_name,
        connection=_connection(address),
        media=tuple(lines),
    )
    return update_origin(previous, offer)


def _answer_codecs(offered: Sequence[Codec], local: Sequence[Codec]) -> list[Codec]:
    """Offered codecs we support, in the offer's order with the offer's payload types
    (RFC 3264 §6.1). DTMF/CN only come along with a main codec of the same clock rate."""
    common: list[Codec] = []
    for codec in offered:
        ours = _find_match(codec, local)
        if ours is not None:
            common.append(replace(codec, fmtp=ours.fmtp if ours.fmtp else codec.fmtp))
    rates = {c.clock_rate for c in common if not c.is_secondary}
    return [c for c in common if not c.is_secondary or c.clock_rate in rates]


def create_answer(
    offer: SessionDescription,
    streams: Sequence[MediaCapability],
    *,
    origin: Origin,
    address: str,
    session_name: str = "-",
    previous: SessionDescription | None = None,
) -> SessionDescription:
    """Answer ``offer`` from local capabilities (RFC 3264 §6).

    Each offered ``m=`` line takes the first unused capability of the same media type
    and transport that has a codec in common with it. It is rejected with port 0 when
    the offer disabled it, when no capability fits, when it is multicast (§6.2, not
    supported here) or when it has no connection address. Directions follow §6.1 (offer
    sendonly -> recvonly, recvonly -> sendonly, inactive -> inactive), narrowed by the
    capability's own direction. ``a=rtcp-mux`` is echoed only if both sides want it
    (RFC 5761 §5.1.1). ``t=`` is copied from the offer (§6). ``previous`` is our last
    SDP in this session (§8 versioning).

    Raises ``RemoteProtocolError(status_hint=488)`` if the offer has streams but none is
    acceptable ("the entire offered session is rejected", §6.1).
    """
    unused = list(streams)
    lines: list[MediaDescription] = []
    accepted = 0
    for offered in offer.media:
        line = _answer_line(offer, offered, unused, address)
        accepted += line.port != 0
        lines.append(line)
    if offer.media and not accepted:
        raise RemoteProtocolError("no acceptable media in the offer", 488)
    answer = SessionDescription(
        origin=origin,
        session_name=session_name,
        connection=_connection(address),
        timings=offer.timings or (Timing(),),
        media=tuple(lines),
    )
    return update_origin(previous, answer)


def _answer_line(
    offer: SessionDescription,
    offered: MediaDescription,
    unused: list[MediaCapability],
    address: str,
) -> MediaDescription:
    connection = offer.connection_for(offered)
    if offered.port == 0 or connection is None or connection.is_multicast:
        return _disabled(offered)
    offered_codecs = codecs_of(offered)
    for capability in unused:
        if (
            capability.port == 0
            or capability.media.casefold() != offered.media.casefold()
            or capability.proto.casefold() != offered.proto.casefold()
        ):
            continue
        codecs = _answer_codecs(offered_codecs, capability.codecs)
        if not any(not c.is_secondary for c in codecs):
            continue
        unused.remove(capability)
        offered_direction = offer.direction_of(offered)
        direction = Direction.from_flags(
            send=offered_direction.receives and capability.direction.sends,
            receive=offered_direction.sends and capability.direction.receives,
        )
        return _media_line(
            capability,
            codecs,
            direction,
            rtcp_mux=capability.rtcp_mux and offered.rtcp_mux,
            session_address=address,
        )
    return _disabled(offered)


# --------------------------------------------------------------------------- negotiation


@dataclass(frozen=True, kw_only=True, slots=True)
class NegotiatedMedia:
    """The outcome of offer/answer for one ``m=`` line, from our point of view.

    ``send_codec`` and ``telephone_event`` carry the *remote* payload type numbers,
    the ones to put in RTP we send (RFC 3264 §5.1, §6.1); ``receive_codecs`` carry
    ours. ``ptime`` is the packetization the remote asked to receive. RTCP goes to
    ``remote_rtcp`` (the RTP address when ``rtcp_mux``; RFC 3605 / RFC 3550 §11).
    ``legacy_hold`` / ``local_legacy_hold``: the remote's / our connection address is
    ``0.0.0.0`` (RFC 3264 §8.4), so nothing is sent to that side.
    """

    index: int
    media: str
    proto: str
    accepted: bool
    local_port: int
    local_direction: Direction
    remote_direction: Direction
    remote_address: str | None
    remote_port: int
    remote_rtcp: tuple[str, int] | None
    rtcp_mux: bool
    send_codec: Codec | None
    telephone_event: Codec | None
    receive_codecs: tuple[Codec, ...]
    ptime: float | None
    legacy_hold: bool
    local_legacy_hold: bool = False

    @property
    def sending(self) -> bool:
        """Whether we should send RTP now (RFC 3264 §6.1, §7, §8.4)."""
        return (
            self.accepted
            and self.local_direction.sends
            and self.remote_direction.receives
            and not self.legacy_hold
            and self.remote_address is not None
            and self.send_codec is not None
        )

    @property
    def receiving(self) -> bool:
        """Whether we should expect RTP now."""
        return (
            self.accepted
            and self.local_direction.receives
            and self.remote_direction.sends
            and not self.local_legacy_hold
        )

    @property
    def held_by_remote(self) -> bool:
        """The remote put this stream on hold: it will not receive (RFC 3264 §8.4),
        either by direction (sendonly/inactive) or by the RFC 2543 ``c=0.0.0.0``."""
        return self.accepted and (not self.remote_direction.receives or self.legacy_hold)

    @property
    def held_locally(self) -> bool:
        """We put this stream on hold: our SDP says we do not receive (by direction or
        by ``c=0.0.0.0``)."""
        return self.accepted and (not self.local_direction.receives or self.local_legacy_hold)


def negotiate(local: SessionDescription, remote: SessionDescription) -> tuple[NegotiatedMedia, ...]:
    """Pair the ``m=`` lines of our SDP and the peer's (offer and answer, either way).

    The send codec is the first remote format (the remote's preference, RFC 3264 §6.1
    and §7) that we also listed, other than DTMF or comfort noise; DTMF goes with the
    remote ``telephone-event`` of the same clock rate.
    """
    result = []
    for index, (ours, theirs) in enumerate(zip(local.media, remote.media, strict=False)):
        result.append(_negotiate_one(index, local, ours, remote, theirs))
    return tuple(result)


def _negotiate_one(
    index: int,
    local: SessionDescription,
    ours: MediaDescription,
    remote: SessionDescription,
    theirs: MediaDescription,
) -> NegotiatedMedia:
    local_codecs = codecs_of(ours) if ours.is_rtp else ()
    remote_codecs = codecs_of(theirs) if theirs.is_rtp else ()
    send = next(
        (c for c in remote_codecs if not c.is_secondary and _find_match(c, local_codecs)), None
    )
    events = [c for c in remote_codecs if c.is_telephone_event and _find_match(c, local_codecs)]
    event = None
    if send is not None and events:
        event = next((c for c in events if c.clock_rate == send.clock_rate), events[0])
    receive = tuple(c for c in local_codecs if _find_match(c, remote_codecs))
    connection = remote.connection_for(theirs)
    own = local.connection_for(ours)
    mux = ours.rtcp_mux and theirs.rtcp_mux
    accepted = (
        ours.port != 0
        and theirs.port != 0
        and ours.media.casefold() == theirs.media.casefold()
        and (not ours.is_rtp or any(not c.is_secondary for c in receive))
    )
    if not accepted:
        send = event = None
        receive = ()
    remote_address = None if connection is None else connection.address
    rtcp = remote.rtcp_address(theirs)
    if mux and remote_address is not None:
        rtcp = (remote_address, theirs.port)
    return NegotiatedMedia(
        index=index,
        media=ours.media,
        proto=ours.proto,
        accepted=accepted,
        local_port=ours.port,
        local_direction=local.direction_of(ours),
        remote_direction=remote.direction_of(theirs),
        remote_address=remote_address,
        remote_port=theirs.port,
        remote_rtcp=rtcp if accepted else None,
        rtcp_mux=mux,
        send_codec=send,
        telephone_event=event,
        receive_codecs=receive,
        ptime=theirs.ptime,
        legacy_hold=connection is not None and connection.is_unspecified,
        local_legacy_hold=own is not None and own.is_unspecified,
    )


def process_answer(
    offer: SessionDescription, answer: SessionDescription
) -> tuple[NegotiatedMedia, ...]:
    """Check an answer against the offer we sent, then :func:`negotiate` (RFC 3264 §7).

    Raises ``RemoteProtocolError`` if the answer does not have exactly one ``m=`` line
    per offered one with the same media type (§6). A stream we offered with port 0 stays
    disabled whatever the answer says (§5.1).
    """
    if len(answer.media) != len(offer.media):
        raise RemoteProtocolError(
            f"answer has {len(answer.media)} m= lines, the offer had {len(offer.media)}"
        )
    for index, (ours, theirs) in enumerate(zip(offer.media, answer.media, strict=True)):
        if ours.media.casefold() != theirs.media.casefold():
            raise RemoteProtocolError(
                f"answer m= line {index} is {theirs.media!r}, the offer had {ours.media!r}"
            )
    return negotiate(offer, answer)


# --------------------------------------------------------------------------- hold/resume


def hold_direction(direction: Direction) -> Direction:
    """RFC 3264 §8.4: sendrecv -> sendonly, recvonly -> inactive; others unchanged."""
    return Direction.from_flags(send=direction.sends, receive=False)


def resume_direction(direction: Direction) -> Direction:
    """The inverse of :func:`hold_direction`: sendonly -> sendrecv, inactive -> recvonly."""
    return Direction.from_flags(send=direction.sends, receive=True)


def _rewrite(
    previous: SessionDescription,
    change: Callable[[Direction], Direction],
    address: Callable[[Connection], Connection],
) -> SessionDescription:
    media = []
    for m in previous.media:
        if m.port != 0:
            m = replace(
                m.with_direction(change(previous.direction_of(m))),
                connections=tuple(address(c) for c in m.connections),
            )
        media.append(m)
    session_connection = None if previous.connection is None else address(previous.connection)
    new = replace(previous.with_direction(None), connection=session_connection, media=tuple(media))
    return update_origin(previous, new)


def hold_offer(previous: SessionDescription, *, legacy: bool = False) -> SessionDescription:
    """A re-offer that puts every active stream of our last SDP on hold (RFC 3264 §8.4).

    ``legacy=True`` also sets the connection addresses to ``0.0.0.0`` / ``::`` the way
    RFC 2543 did, for peers that only understand that.
    """

    def unspecified(c: Connection) -> Connection:
        if not legacy or c.addrtype.upper() not in ("IP4", "IP6"):
            return c
        return replace(c, address="::" if c.addrtype.upper() == "IP6" else "0.0.0.0")

    return _rewrite(previous, hold_direction, unspecified)


def resume_offer(previous: SessionDescription, *, address: str | None = None) -> SessionDescription:
    """A re-offer that takes the streams of our held SDP off hold (RFC 3264 §8.4).

    ``address`` replaces ``0.0.0.0``/``::`` connection addresses left by a legacy hold;
    it is required if there are any.
    """

    def restored(c: Connection) -> Connection:
        if not c.is_unspecified:
            return c
        if address is None:
            raise LocalProtocolError("resuming a c=0.0.0.0 hold needs the media address")
        return replace(c, address=address, addrtype="IP6" if ":" in address else "IP4")

    return _rewrite(previous, resume_direction, restored)


def is_held(sdp: SessionDescription) -> bool:
    """Whether ``sdp`` is "held SDP": every active stream says its author will not
    receive, by direction or by a ``c=0.0.0.0`` connection (RFC 3264 §8.4)."""
    active = [m for m in sdp.media if m.port != 0]
    if not active:
        return False
    for m in active:
        connection = sdp.connection_for(m)
        legacy = connection is not None and connection.is_unspecified
        if sdp.direction_of(m).receives and not legacy:
            return False
    return True


# --------------------------------------------------------------------------- changes


@dataclass(frozen=True, kw_only=True, slots=True)
class MediaChange:
    """What changed for one stream between two negotiations (RFC 3264 §8.3)."""

    index: int
    added: bool = False
    removed: bool = False
    address_changed: bool = False
    rtcp_changed: bool = False
    codec_changed: bool = False
    direction_changed: bool = False


def compare(
    old: Sequence[NegotiatedMedia], new: Sequence[NegotiatedMedia]
) -> tuple[MediaChange, ...]:
    """The streams whose remote RTP address/port, RTCP target, send codec or directions
    differ between ``old`` and ``new``, plus streams added or disabled (§8.1-§8.3)."""
    changes = []
    for index in range(max(len(old), len(new))):
        before = old[index] if index < len(old) and old[index].accepted else None
        after = new[index] if index < len(new) and new[index].accepted else None
        if before is None and after is None:
            continue
        if before is None or after is None:
            changes.append(MediaChange(index=index, added=before is None, removed=after is None))
            continue
        change = MediaChange(
            index=index,
            address_changed=(before.remote_address, before.remote_port)
            != (after.remote_address, after.remote_port)
            or before.legacy_hold != after.legacy_hold,
            rtcp_changed=before.remote_rtcp != after.remote_rtcp,
            codec_changed=before.send_codec != after.send_codec
            or before.telephone_event != after.telephone_event,
            direction_changed=(before.local_direction, before.remote_direction)
            != (after.local_direction, after.remote_direction),
        )
        if change != MediaChange(index=index):
            changes.append(change)
    return tuple(changes)


# --------------------------------------------------------------------------- state


class OfferAnswerState(enum.Enum):
    """Where one session is in the offer/answer exchange (RFC 3264 §4, RFC 6337 §3)."""

    STABLE = "stable"
    LOCAL_OFFER = "local-offer"  # we sent an offer, waiting for the answer
    REMOTE_OFFER = "remote-offer"  # we received an offer, owe an answer


class OfferAnswerInput(enum.Enum):
    """What can happen to a :class:`MediaSession`."""

    SEND_OFFER = "send-offer"
    RECEIVE_ANSWER = "receive-answer"
    RECEIVE_OFFER = "receive-offer"
    SEND_ANSWER = "send-answer"
    ROLLBACK = "rollback"


_S, _I = OfferAnswerState, OfferAnswerInput
# RFC 3264 §4: at most one offer outstanding in each direction; an answer closes it.
TRANSITIONS: dict[tuple[OfferAnswerState, OfferAnswerInput], OfferAnswerState] = {
    (_S.STABLE, _I.SEND_OFFER): _S.LOCAL_OFFER,
    (_S.STABLE, _I.RECEIVE_OFFER): _S.REMOTE_OFFER,
    (_S.LOCAL_OFFER, _I.RECEIVE_ANSWER): _S.STABLE,
    (_S.LOCAL_OFFER, _I.ROLLBACK): _S.STABLE,
    (_S.REMOTE_OFFER, _I.SEND_ANSWER): _S.STABLE,
    (_S.REMOTE_OFFER, _I.ROLLBACK): _S.STABLE,
}


class MediaSession:
    """The offer/answer side of one dialog: capabilities, SDPs exchanged, results.

    Inputs follow :data:`TRANSITIONS`; anything else is an error: an offer arriving
    while ours is outstanding is glare (``RemoteProtocolError`` with status 491,
    RFC 3261 §14.2), an unexpected answer is a ``RemoteProtocolError``, and calling
    ``create_offer``/``create_answer`` out of turn is a ``LocalProtocolError``.

    ``random_below`` (default :func:`secrets.randbelow`) draws the ``o=`` session id;
    the first version equals it, as many user agents do (RFC 8866 §5.2 leaves it open).
    """

    def __init__(
        self,
        *,
        streams: Sequence[MediaCapability],
        address: str,
        username: str = "-",
        session_name: str = "-",
        random_below: Callable[[int], int] = secrets.randbelow,
    ) -> None:
        self.streams = tuple(streams)
        self.address = address
        self.session_name = session_name
        session_id = random_below(2**31)
        self.origin = Origin(
            username=username,
            session_id=str(session_id),
            session_version=session_id,
            addrtype="IP6" if ":" in address else "IP4",
            address=address,
        )
        self.state = OfferAnswerState.STABLE
        self.local_sdp: SessionDescription | None = None  # last SDP we sent
        self.remote_sdp: SessionDescription | None = None  # last SDP we accepted
        self.negotiated: tuple[NegotiatedMedia, ...] = ()
        self.held = False
        self.legacy_hold = False
        self._pending: SessionDescription | None = None  # outstanding offer, either way

    def _advance(self, event: OfferAnswerInput, *, remote: bool) -> None:
        self._check(event, remote=remote)
        self.state = TRANSITIONS[(self.state, event)]

    def _check(self, event: OfferAnswerInput, *, remote: bool) -> None:
        if (self.state, event) in TRANSITIONS:
            return
        if event is OfferAnswerInput.RECEIVE_OFFER and self.state is OfferAnswerState.LOCAL_OFFER:
            raise RemoteProtocolError("offer received while our offer is outstanding", 491)
        message = f"{event.value} is not allowed in state {self.state.value}"
        if remote:
            raise RemoteProtocolError(message, 400)
        raise LocalProtocolError(message)

    def _capabilities(self) -> tuple[MediaCapability, ...]:
        if not self.held:
            return self.streams
        return tuple(
            replace(
                s,
                direction=hold_direction(s.direction),
                address=None if self.legacy_hold else s.address,
            )
            for s in self.streams
        )

    def _address(self) -> str:
        if self.held and self.legacy_hold:
            return "::" if ":" in self.address else "0.0.0.0"
        return self.address

    def create_offer(self, streams: Sequence[MediaCapability] | None = None) -> SessionDescription:
        """The SDP for an offer (INVITE, re-INVITE, UPDATE); ``streams`` replaces the
        capabilities. While :attr:`held`, streams are offered sendonly/inactive
        (RFC 3264 §8.4), with ``c=0.0.0.0`` too if :attr:`legacy_hold`."""
        self._advance(OfferAnswerInput.SEND_OFFER, remote=False)
        if streams is not None:
            self.streams = tuple(streams)
        offer = create_offer(
            self._capabilities(),
            origin=self.origin,
            address=self._address(),
            session_name=self.session_name,
            previous=self.local_sdp,
        )
        self._pending = self.local_sdp = offer
        return offer

    def receive_answer(self, answer: SessionDescription) -> tuple[NegotiatedMedia, ...]:
        """Apply the answer to our outstanding offer (RFC 3264 §7)."""
        self._advance(OfferAnswerInput.RECEIVE_ANSWER, remote=True)
        assert self._pending is not None
        try:
            self.negotiated = process_answer(self._pending, answer)
        except RemoteProtocolError:
            self.state = OfferAnswerState.LOCAL_OFFER
            raise
        self.remote_sdp, self._pending = answer, None
        return self.negotiated

    def receive_offer(self, offer: SessionDescription) -> None:
        """Record an offer from the peer; answer it with :meth:`create_answer`."""
        self._advance(OfferAnswerInput.RECEIVE_OFFER, remote=True)
        self._pending = offer

    def create_answer(self, streams: Sequence[MediaCapability] | None = None) -> SessionDescription:
        """The answer to the received offer (RFC 3264 §6). If nothing is acceptable the
        offer is dropped and ``RemoteProtocolError(status_hint=488)`` raised."""
        self._check(OfferAnswerInput.SEND_ANSWER, remote=False)
        if streams is not None:
            self.streams = tuple(streams)
        offer = self._pending
        assert offer is not None
        try:
            answer = create_answer(
                offer,
                self._capabilities(),
                origin=self.origin,
                address=self._address(),
                session_name=self.session_name,
                previous=self.local_sdp,
            )
        except RemoteProtocolError:
            self.rollback()
            raise
        self._advance(OfferAnswerInput.SEND_ANSWER, remote=False)
        self.local_sdp, self.remote_sdp, self._pending = answer, offer, None
        self.negotiated = negotiate(answer, offer)
        return answer

    def answer(self, offer: SessionDescription) -> SessionDescription:
        """:meth:`receive_offer` then :meth:`create_answer`."""
        self.receive_offer(offer)
        return self.create_answer()

    def rollback(self) -> None:
        """Abandon the outstanding offer: ours was rejected (e.g. 488 or 491 to a
        re-INVITE), or we will not answer theirs; :attr:`negotiated` stays in force.

        :attr:`local_sdp` keeps an abandoned offer of ours: the peer has seen its
        ``o=`` version, so the next offer is compared with it and numbered after it (§8).
        """
        self._advance(OfferAnswerInput.ROLLBACK, remote=False)
        self._pending = None

    def hold(self, *, legacy: bool = False) -> SessionDescription:
        """A re-offer putting every stream on hold (RFC 3264 §8.4); ``legacy`` also
        uses the RFC 2543 ``c=0.0.0.0`` form. :meth:`rollback` if it is rejected."""
        self._check(OfferAnswerInput.SEND_OFFER, remote=False)
        self.held, self.legacy_hold = True, legacy
        return self.create_offer()

    def resume(self) -> SessionDescription:
        """A re-offer taking the streams off hold (RFC 3264 §8.4)."""
        self._check(OfferAnswerInput.SEND_OFFER, remote=False)
        self.held = self.legacy_hold = False
        return self.create_offer()
