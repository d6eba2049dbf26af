"""SDP offer/answer (RFC 3264): offers, answers, negotiation, versions, hold, state."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from sipwire.core._errors import LocalProtocolError, RemoteProtocolError
from sipwire.core.offeranswer import (
    DEFAULT_AUDIO_CODECS,
    G722,
    PCMA,
    PCMU,
    TELEPHONE_EVENT,
    TRANSITIONS,
    Codec,
    MediaCapability,
    MediaSession,
    NegotiatedMedia,
    OfferAnswerInput,
    OfferAnswerState,
    codecs_of,
    compare,
    create_answer,
    create_offer,
    hold_direction,
    hold_offer,
    is_held,
    negotiate,
    process_answer,
    resume_direction,
    resume_offer,
    update_origin,
)
from sipwire.core.sdp import Attribute, Connection, Direction, Origin, parse


def crlf(text: str) -> str:
    return text.replace("\n", "\r\n")


def without(text: str, *lines: str) -> str:
    """``text`` minus the given lines (each line given without its CRLF)."""
    return "".join(f"{line}\r\n" for line in text.split("\r\n")[:-1] if line not in lines)


ALICE = Origin(
    username="alice",
    session_id="2890844526",
    session_version=2890844526,
    address="host.anywhere.com",
)
BOB = Origin(
    username="bob", session_id="2890844730", session_version=2890844730, address="host.example.com"
)
H261 = Codec(name="H261", clock_rate=90000)
MPV = Codec(name="MPV", clock_rate=90000)
G723 = Codec(name="G723", clock_rate=8000)
G729 = Codec(name="G729", clock_rate=8000)
EVENTS = Codec(name="telephone-events", clock_rate=8000, payload_type=110)  # RFC's spelling
OPUS = Codec(name="opus", clock_rate=48000, channels=2, fmtp="useinbandfec=1")

US = Origin(session_id="42", session_version=42, address="192.0.2.10")


def audio(port: int = 4000, *codecs: Codec, **kwargs: object) -> MediaCapability:
    return MediaCapability(port=port, codecs=codecs or DEFAULT_AUDIO_CODECS, **kwargs)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- RFC 3264 §10.1

RFC_10_1_OFFER = crlf("""v=0
o=alice 2890844526 2890844526 IN IP4 host.anywhere.com
s=
c=IN IP4 host.anywhere.com
t=0 0
m=audio 49170 RTP/AVP 0
a=rtpmap:0 PCMU/8000
m=video 51372 RTP/AVP 31
a=rtpmap:31 H261/90000
m=video 53000 RTP/AVP 32
a=rtpmap:32 MPV/90000
""")

RFC_10_1_ANSWER = crlf("""v=0
o=bob 2890844730 2890844730 IN IP4 host.example.com
s=
c=IN IP4 host.example.com
t=0 0
m=audio 49920 RTP/AVP 0
a=rtpmap:0 PCMU/8000
m=video 0 RTP/AVP 31
m=video 53000 RTP/AVP 32
a=rtpmap:32 MPV/90000
""")

RFC_10_1_REOFFER = crlf("""v=0
o=bob 2890844730 2890844731 IN IP4 host.example.com
s=
c=IN IP4 host.example.com
t=0 0
m=audio 65422 RTP/AVP 0
a=rtpmap:0 PCMU/8000
m=video 0 RTP/AVP 31
m=video 53000 RTP/AVP 32
a=rtpmap:32 MPV/90000
m=audio 51434 RTP/AVP 110
a=rtpmap:110 telephone-events/8000
a=recvonly
""")

RFC_10_1_REANSWER = crlf("""v=0
o=alice 2890844526 2890844527 IN IP4 host.anywhere.com
s=
c=IN IP4 host.anywhere.com
t=0 0
m=audio 49170 RTP/AVP 0
a=rtpmap:0 PCMU/8000
m=video 0 RTP/AVP 31
a=rtpmap:31 H261/90000
m=video 53000 RTP/AVP 32
a=rtpmap:32 MPV/90000
m=audio 53122 RTP/AVP 110
a=rtpmap:110 telephone-events/8000
a=sendonly
""")

ALICE_STREAMS = [
    audio(49170, PCMU),
    MediaCapability(media="video", port=51372, codecs=(H261,)),
    MediaCapability(media="video", port=53000, codecs=(MPV,)),
]
BOB_STREAMS = [audio(49920, PCMU), MediaCapability(media="video", port=53000, codecs=(MPV,))]


def test_rfc3264_10_1_offer() -> None:
    offer = create_offer(ALICE_STREAMS, origin=ALICE, address="host.anywhere.com", session_name="")
    # We always state the direction; the RFC leaves the default sendrecv implicit.
    assert without(offer.serialize(), "a=sendrecv") == RFC_10_1_OFFER
    assert parse(RFC_10_1_OFFER) == replace(
        offer, media=tuple(m.with_direction(None) for m in offer.media)
    )


def test_rfc3264_10_1_answer_rejects_the_unsupported_video_stream() -> None:
    offer = parse(RFC_10_1_OFFER)
    answer = create_answer(
        offer, BOB_STREAMS, origin=BOB, address="host.example.com", session_name=""
    )
    assert without(answer.serialize(), "a=sendrecv") == RFC_10_1_ANSWER

    negotiated = process_answer(offer, parse(RFC_10_1_ANSWER))
    assert [n.accepted for n in negotiated] == [True, False, True]
    first = negotiated[0]
    assert first.send_codec == replace(PCMU, channels=1)
    assert (first.remote_address, first.remote_port) == ("host.example.com", 49920)
    assert first.remote_rtcp == ("host.example.com", 49921)
    assert first.sending and first.receiving
    assert negotiated[1].send_codec is None and not negotiated[1].sending
    assert negotiated[2].send_codec == replace(MPV, payload_type=32)


def test_rfc3264_10_1_reoffer_changes_port_and_adds_a_recvonly_stream() -> None:
    bob_answer = parse(RFC_10_1_ANSWER)
    streams = [
        audio(65422, PCMU),
        MediaCapability(media="video", port=0, codecs=(H261,)),
        MediaCapability(media="video", port=53000, codecs=(MPV,)),
        audio(51434, EVENTS, direction=Direction.RECVONLY),
    ]
    reoffer = create_offer(
        streams, origin=BOB, address="host.example.com", session_name="", previous=bob_answer
    )
    assert without(reoffer.serialize(), "a=sendrecv") == RFC_10_1_REOFFER

    alice_streams = [*ALICE_STREAMS, audio(53122, EVENTS)]
    alice_answer = create_answer(
        parse(RFC_10_1_REOFFER),
        alice_streams,
        origin=ALICE,
        address="host.anywhere.com",
        session_name="",
        previous=parse(RFC_10_1_OFFER),
    )
    # The RFC keeps the rtpmap of the disabled video stream; we drop attributes there.
    assert without(alice_answer.serialize(), "a=sendrecv") == without(
        RFC_10_1_REANSWER, "a=rtpmap:31 H261/90000"
    )

    negotiated = process_answer(reoffer, alice_answer)
    assert negotiated[0].remote_port == 49170
    events = negotiated[3]
    assert (events.local_direction, events.remote_direction) == (
        Direction.RECVONLY,
        Direction.SENDONLY,
    )
    assert events.receiving and not events.sending
    assert events.receive_codecs == (EVENTS,)


# --------------------------------------------------------------------------- RFC 3264 §10.2

RFC_10_2_OFFER = crlf("""v=0
o=alice 2890844526 2890844526 IN IP4 host.anywhere.com
s=
c=IN IP4 host.anywhere.com
t=0 0
m=audio 62986 RTP/AVP 0 4 18
a=rtpmap:0 PCMU/8000
a=rtpmap:4 G723/8000
a=rtpmap:18 G729/8000
a=inactive
""")

RFC_10_2_ANSWER = crlf("""v=0
o=bob 2890844730 2890844731 IN IP4 host.example.com
s=
c=IN IP4 host.example.com
t=0 0
m=audio 54344 RTP/AVP 0 4
a=rtpmap:0 PCMU/8000
a=rtpmap:4 G723/8000
a=inactive
""")

RFC_10_2_REOFFER = crlf("""v=0
o=alice 2890844526 2890844527 IN IP4 host.anywhere.com
s=
c=IN IP4 host.anywhere.com
t=0 0
m=audio 62986 RTP/AVP 4
a=rtpmap:4 G723/8000
a=sendrecv
""")

RFC_10_2_REANSWER = crlf("""v=0
o=bob 2890844730 2890844732 IN IP4 host.example.com
s=
c=IN IP4 host.example.com
t=0 0
m=audio 54344 RTP/AVP 4
a=rtpmap:4 G723/8000
a=sendrecv
""")


def test_rfc3264_10_2_one_of_n_codec_selection() -> None:
    alice = MediaSession(
        streams=[audio(62986, PCMU, G723, G729, direction=Direction.INACTIVE)],
        address="host.anywhere.com",
        username="alice",
        session_name="",
        random_below=lambda _: 2890844526,
    )
    offer = alice.create_offer()
    assert offer.serialize() == RFC_10_2_OFFER

    bob_streams = [audio(54344, PCMU, G723)]
    bob_origin = replace(BOB, session_version=2890844731)
    answer = create_answer(
        offer, bob_streams, origin=bob_origin, address="host.example.com", session_name=""
    )
    assert answer.serialize() == RFC_10_2_ANSWER

    negotiated = alice.receive_answer(answer)
    assert not negotiated[0].sending and not negotiated[0].receiving  # inactive both ways
    assert negotiated[0].send_codec == replace(PCMU, channels=1)

    reoffer = alice.create_offer([audio(62986, G723)])
    assert reoffer.serialize() == RFC_10_2_REOFFER

    reanswer = create_answer(
        reoffer,
        bob_streams,
        origin=bob_origin,
        address="host.example.com",
        session_name="",
        previous=answer,
    )
    assert reanswer.serialize() == RFC_10_2_REANSWER
    (final,) = alice.receive_answer(reanswer)
    assert final.sending and final.receiving
    assert final.send_codec == replace(G723, payload_type=4)


# --------------------------------------------------------------------------- offers


def test_default_offer_pcmu_pcma_telephone_event() -> None:
    offer = create_offer([audio(4000)], origin=US, address="192.0.2.10")
    assert offer.serialize() == crlf("""v=0
o=- 42 42 IN IP4 192.0.2.10
s=-
c=IN IP4 192.0.2.10
t=0 0
m=audio 4000 RTP/AVP 0 8 101
a=rtpmap:0 PCMU/8000
a=rtpmap:8 PCMA/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-16
a=sendrecv
""")


def test_offer_options_ipv6_ptime_rtcp_mux_and_extra_attributes() -> None:
    capability = audio(
        5004,
        OPUS,
        G722,
        PCMU,
        TELEPHONE_EVENT,
        ptime=20,
        rtcp_port=5009,
        rtcp_mux=True,
        attributes=(Attribute("label", "1"),),
    )
    video = MediaCapability(
        media="video",
        port=5006,
        codecs=(Codec(name="H264", clock_rate=90000),),
        address="2001:db8::2",
    )
    offer = create_offer([capability, video], origin=US, address="2001:db8::1")
    assert offer.connection == Connection(addrtype="IP6", address="2001:db8::1")
    media = offer.media[0]
    assert media.formats == ("96", "9", "0", "101")  # opus gets the first dynamic number
    assert media.rtpmap(96) is not None and media.rtpmap(96).channels == 2  # type: ignore[union-attr]
    assert media.fmtp(96) == "useinbandfec=1"
    assert media.ptime == 20
    assert media.rtcp is not None and media.rtcp.port == 5009
    assert media.rtcp_mux
    assert media.attribute("label") == "1"
    assert offer.media[1].formats == ("96",)  # payload types are bound per m= line
    assert offer.connection_for(1) == Connection(addrtype="IP6", address="2001:db8::2")


def test_dynamic_payload_types_avoid_explicit_ones() -> None:
    codecs = [
        Codec(name="X-A", clock_rate=8000, payload_type=96),
        Codec(name="X-B", clock_rate=8000),
        Codec(name="X-C", clock_rate=8000, payload_type=97),
        Codec(name="X-D", clock_rate=8000),
    ]
    offer = create_offer([audio(4000, *codecs)], origin=US, address="192.0.2.10")
    assert offer.media[0].formats == ("96", "98", "97", "99")


def test_running_out_of_dynamic_payload_types_is_local_misuse() -> None:
    codecs = [Codec(name=f"X-{n}", clock_rate=8000) for n in range(33)]
    with pytest.raises(LocalProtocolError, match="no dynamic RTP payload type"):
        create_offer([audio(4000, *codecs)], origin=US, address="192.0.2.10")


def test_static_payload_type_is_found_for_a_codec_without_one() -> None:
    assert Codec(name="pcma", clock_rate=8000).static_payload_type() == 8
    assert Codec(name="G729", clock_rate=8000).static_payload_type() == 18
    assert Codec(name="L16", clock_rate=44100, channels=2).static_payload_type() == 10
    assert Codec(name="opus", clock_rate=48000, channels=2).static_payload_type() is None


@pytest.mark.parametrize(
    "build",
    [
        lambda: Codec(name="", clock_rate=8000),
        lambda: Codec(name="a b", clock_rate=8000),
        lambda: Codec(name="PCMU", clock_rate=0),
        lambda: Codec(name="PCMU", clock_rate=8000, payload_type=128),
        lambda: MediaCapability(port=70000),
        lambda: MediaCapability(port=1, codecs=()),
    ],
)
def test_bad_capabilities_are_local_misuse(build: object) -> None:
    with pytest.raises(LocalProtocolError):
        build()  # type: ignore[operator]


# --------------------------------------------------------------------------- answers

LINPHONE_OFFER = crlf("""v=0
o=alice 3456 2301 IN IP4 192.168.1.30
s=Talk
c=IN IP4 192.168.1.30
t=0 0
a=ice-ufrag:8f2a1c3d
m=audio 7078 RTP/AVP 96 97 98 0 8 18 101 99 100
a=rtpmap:96 opus/48000/2
a=fmtp:96 useinbandfec=1
a=rtpmap:97 SILK/16000
a=rtpmap:98 speex/16000
a=rtpmap:18 G729/8000
a=rtpmap:101 telephone-event/48000
a=rtpmap:99 telephone-event/16000
a=rtpmap:100 telephone-event/8000
a=rtcp:7079
a=candidate:1 1 UDP 2130706431 192.168.1.30 7078 typ host
""")


def test_answer_intersects_in_offer_order_with_offer_payload_types() -> None:
    offer = parse(LINPHONE_OFFER)
    answer = create_answer(offer, [audio(4000)], origin=US, address="192.0.2.10")
    media = answer.media[0]
    # PCMU and PCMA in the offer's order; DTMF at the 8 kHz number the offer chose (100).
    assert media.formats == ("0", "8", "100")
    assert media.rtpmap(100) is not None and media.rtpmap(100).clock_rate == 8000  # type: ignore[union-attr]
    assert media.fmtp(100) == "0-16"
    assert media.direction is Direction.SENDRECV
    assert answer.timings == offer.timings

    # The answerer sends with the offer's payload type numbers (RFC 3264 §6.1).
    (ours,) = negotiate(answer, offer)
    assert ours.send_codec == Codec(name="PCMU", clock_rate=8000, payload_type=0)
    assert ours.telephone_event == Codec(name="telephone-event", clock_rate=8000, payload_type=100)
    assert (ours.remote_address, ours.remote_port, ours.remote_rtcp) == (
        "192.168.1.30",
        7078,
        ("192.168.1.30", 7079),
    )


def test_answer_prefers_the_offerers_order_not_ours() -> None:
    offer = parse(
        crlf("""v=0
o=- 1 1 IN IP4 10.0.0.5
s=-
c=IN IP4 10.0.0.5
t=0 0
m=audio 18756 RTP/AVP 8 0 3 101
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-16
a=ptime:30
""")
    )
    answer = create_answer(
        offer, [audio(4000, PCMU, PCMA, TELEPHONE_EVENT)], origin=US, address="h"
    )
    assert answer.media[0].formats == ("8", "0", "101")
    (ours,) = negotiate(answer, offer)
    assert ours.send_codec is not None and ours.send_codec.name == "PCMA"
    assert ours.ptime == 30  # packetize as the remote asked (RFC 3264 §6.1)


def test_codec_names_match_case_insensitively_rfc4855() -> None:
    offer = parse(
        "v=0\r\no=- 1 1 IN IP4 h\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n"
        "m=audio 5000 RTP/AVP 97\r\na=rtpmap:97 pcmu/8000\r\n"
    )
    answer = create_answer(offer, [audio(4000, PCMU)], origin=US, address="h")
    assert answer.media[0].formats == ("97",)
    assert answer.media[0].attribute("rtpmap") == "97 pcmu/8000"


def test_dtmf_alone_is_not_enough_to_accept_a_stream() -> None:
    offer = parse(
        "v=0\r\no=- 1 1 IN IP4 h\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n"
        "m=audio 5000 RTP/AVP 18 101\r\na=rtpmap:101 telephone-event/8000\r\n"
    )
    with pytest.raises(RemoteProtocolError) as info:
        create_answer(offer, [audio(4000)], origin=US, address="h")
    assert info.value.status_hint == 488


@pytest.mark.parametrize(
    ("offered", "local", "expected"),
    [
        (Direction.SENDRECV, Direction.SENDRECV, Direction.SENDRECV),
        (Direction.SENDONLY, Direction.SENDRECV, Direction.RECVONLY),
        (Direction.RECVONLY, Direction.SENDRECV, Direction.SENDONLY),
        (Direction.INACTIVE, Direction.SENDRECV, Direction.INACTIVE),
        (Direction.SENDRECV, Direction.SENDONLY, Direction.SENDONLY),
        (Direction.SENDRECV, Direction.RECVONLY, Direction.RECVONLY),
        (Direction.SENDRECV, Direction.INACTIVE, Direction.INACTIVE),
        (Direction.SENDONLY, Direction.SENDONLY, Direction.INACTIVE),
        (Direction.RECVONLY, Direction.RECVONLY, Direction.INACTIVE),
        (Direction.INACTIVE, Direction.INACTIVE, Direction.INACTIVE),
    ],
)
def test_answer_direction_rfc3264_6_1(
    offered: Direction, local: Direction, expected: Direction
) -> None:
    offer = create_offer([audio(5000, PCMU, direction=offered)], origin=ALICE, address="192.0.2.1")
    answer = create_answer(offer, [audio(4000, PCMU, direction=local)], origin=US, address="h")
    assert answer.direction_of(0) is expected
    (ours,) = negotiate(answer, offer)
    (theirs,) = process_answer(offer, answer)
    # Each side's "sending" is the other's "receiving".
    assert ours.sending == theirs.receiving
    assert ours.receiving == theirs.sending


def test_session_level_direction_in_the_offer_is_honoured() -> None:
    offer = parse(
        "v=0\r\no=- 1 1 IN IP4 h\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\na=sendonly\r\n"
        "m=audio 5000 RTP/AVP 0\r\n"
    )
    answer = create_answer(offer, [audio(4000)], origin=US, address="h")
    assert answer.direction_of(0) is Direction.RECVONLY


def test_rejections_with_port_zero_rfc3264_6() -> None:
    offer = parse(
        crlf("""v=0
o=- 1 1 IN IP4 h
s=-
c=IN IP4 192.0.2.1
t=0 0
m=audio 5000 RTP/AVP 0
m=video 5002 RTP/AVP 31
m=audio 5004 RTP/SAVP 0
m=audio 0 RTP/AVP 0
m=audio 5006 RTP/AVP 0
c=IN IP4 233.252.0.1/127
m=audio 5008 RTP/AVP 96
a=rtpmap:96 AMR/8000
m=image 5010 udptl t38
""")
    )
    streams = [audio(4000, PCMU), audio(4002, PCMU), audio(4004, PCMU), audio(4006, PCMU)]
    answer = create_answer(offer, streams, origin=US, address="192.0.2.10")
    assert len(answer.media) == len(offer.media)
    assert [m.port for m in answer.media] == [4000, 0, 0, 0, 0, 0, 0]
    # A rejected line keeps the media type, proto and formats and carries no attributes.
    rejected = answer.media[2]
    assert (rejected.media, rejected.proto, rejected.formats, rejected.attributes) == (
        "audio",
        "RTP/SAVP",
        ("0",),
        (),
    )
    assert answer.media[6].media == "image"


def test_no_connection_address_rejects_the_stream() -> None:
    offer = parse(
        "v=0\r\no=- 1 1 IN IP4 h\r\ns=-\r\nt=0 0\r\nm=audio 5000 RTP/AVP 0\r\n"
        "m=audio 5002 RTP/AVP 0\r\nc=IN IP4 192.0.2.1\r\n"
    )
    answer = create_answer(offer, [audio(4000), audio(4002)], origin=US, address="h")
    assert [m.port for m in answer.media] == [0, 4000]


def test_offer_without_media_gets_an_answer_without_media() -> None:
    offer = parse("v=0\r\no=- 1 1 IN IP4 h\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n")
    answer = create_answer(offer, [audio(4000)], origin=US, address="h")
    assert answer.media == ()
    assert answer.timings == offer.timings


def test_webrtc_offer_is_not_acceptable_488() -> None:
    offer = parse(
        "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"
        "m=audio 9 UDP/TLS/RTP/SAVPF 111 0\r\nc=IN IP4 0.0.0.0\r\na=rtpmap:111 opus/48000/2\r\n"
    )
    with pytest.raises(RemoteProtocolError) as info:
        create_answer(offer, [audio(4000)], origin=US, address="h")
    assert info.value.status_hint == 488


def test_rtcp_mux_is_echoed_only_when_both_want_it_rfc5761() -> None:
    offer_mux = create_offer([audio(5000, rtcp_mux=True)], origin=ALICE, address="192.0.2.1")
    offer_plain = create_offer([audio(5000)], origin=ALICE, address="192.0.2.1")
    for offer, ours, expected in [
        (offer_mux, True, True),
        (offer_mux, False, False),
        (offer_plain, True, False),
    ]:
        answer = create_answer(offer, [audio(4000, rtcp_mux=ours)], origin=US, address="h")
        assert answer.media[0].rtcp_mux is expected
        (negotiated,) = process_answer(offer, answer)
        assert negotiated.rtcp_mux is expected
        assert negotiated.remote_rtcp == ("h", 4000 if expected else 4001)


def test_two_audio_streams_take_two_capabilities() -> None:
    offer = create_offer([audio(5000, PCMU), audio(5002, PCMA)], origin=ALICE, address="a")
    answer = create_answer(offer, [audio(4000, PCMA), audio(4002, PCMU)], origin=US, address="h")
    # Each offered stream takes the first unused capability it has a codec in common with.
    assert [(m.port, m.formats) for m in answer.media] == [(4002, ("0",)), (4000, ("8",))]


# --------------------------------------------------------------------------- answers we receive


def test_offerer_sends_with_the_answers_payload_type_numbers_rfc3264_5_1() -> None:
    offer = create_offer([audio(5000)], origin=ALICE, address="192.0.2.1")
    answer = parse(
        crlf("""v=0
o=- 7 7 IN IP4 192.0.2.2
s=-
c=IN IP4 192.0.2.2
t=0 0
m=audio 6000 RTP/AVP 8 96
c=IN IP4 192.0.2.3
a=rtpmap:8 PCMA/8000
a=rtpmap:96 telephone-event/8000
a=fmtp:96 0-15
a=ptime:40
""")
    )
    (negotiated,) = process_answer(offer, answer)
    assert negotiated.send_codec == Codec(name="PCMA", clock_rate=8000, payload_type=8)
    assert negotiated.telephone_event == Codec(
        name="telephone-event", clock_rate=8000, fmtp="0-15", payload_type=96
    )
    # We receive DTMF at our own number and may drop PCMU (RFC 3264 §7).
    assert [c.payload_type for c in negotiated.receive_codecs] == [8, 101]
    assert (negotiated.remote_address, negotiated.remote_port) == ("192.0.2.3", 6000)
    assert negotiated.ptime == 40
    assert negotiated.local_port == 5000
    assert not negotiated.held_by_remote and not negotiated.held_locally


def test_answer_with_wrong_number_of_streams_is_rejected() -> None:
    offer = create_offer([audio(5000)], origin=ALICE, address="192.0.2.1")
    answer = create_answer(offer, [audio(4000)], origin=US, address="h")
    doubled = replace(answer, media=answer.media * 2)
    with pytest.raises(RemoteProtocolError, match="2 m= lines, the offer had 1"):
        process_answer(offer, doubled)
    video = replace(answer, media=(replace(answer.media[0], media="video"),))
    with pytest.raises(RemoteProtocolError, match="'video'"):
        process_answer(offer, video)


def test_answer_with_no_common_codec_is_not_accepted() -> None:
    offer = create_offer([audio(5000, PCMU)], origin=ALICE, address="192.0.2.1")
    answer = create_answer(offer, [audio(4000, PCMU)], origin=US, address="h")
    bogus = replace(
        answer,
        media=(replace(answer.media[0], formats=("18",), attributes=(Attribute("sendrecv"),)),),
    )
    (negotiated,) = process_answer(offer, bogus)
    assert not negotiated.accepted
    assert not negotiated.sending and not negotiated.receiving
    assert negotiated.remote_rtcp is None


def test_a_stream_we_disabled_stays_disabled_whatever_the_answer_says() -> None:
    offer = create_offer([audio(5000), audio(0)], origin=ALICE, address="192.0.2.1")
    answer = create_answer(offer, [audio(4000)], origin=US, address="h")
    sloppy = replace(answer, media=(answer.media[0], replace(answer.media[0], port=4002)))
    assert [n.accepted for n in process_answer(offer, sloppy)] == [True, False]


def test_codecs_of_skips_unknown_dynamic_types() -> None:
    media = parse(
        "v=0\r\no=- 1 1 IN IP4 h\r\ns=-\r\nt=0 0\r\nm=audio 1 RTP/AVP 0 96 97 x\r\n"
        "a=rtpmap:97 opus/48000/2\r\na=fmtp:97 stereo=1\r\na=fmtp:0\r\n"
    ).media[0]
    assert codecs_of(media) == (
        Codec(name="PCMU", clock_rate=8000, payload_type=0),
        Codec(name="opus", clock_rate=48000, channels=2, fmtp="stereo=1", payload_type=97),
    )


# --------------------------------------------------------------------------- §8 versions


def test_update_origin_bumps_only_on_change_rfc3264_8() -> None:
    first = create_offer([audio(5000)], origin=US, address="192.0.2.10")
    same = create_offer([audio(5000)], origin=US, address="192.0.2.10", previous=first)
    assert same == first
    moved = create_offer([audio(5002)], origin=US, address="192.0.2.10", previous=first)
    assert moved.origin == replace(first.origin, session_version=43)
    # The o= line stays that of the previous SDP even if the caller's origin differs.
    other = replace(US, address="198.51.100.1", session_version=1)
    again = create_offer([audio(5004)], origin=other, address="192.0.2.10", previous=moved)
    assert again.origin == replace(first.origin, session_version=44)
    assert update_origin(None, first) is first


def test_reoffer_keeps_every_m_line_and_payload_type_rfc3264_8() -> None:
    first = create_offer(
        [audio(5000, OPUS, PCMU), MediaCapability(media="video", port=5002, codecs=(H261,))],
        origin=US,
        address="h",
    )
    assert first.media[0].formats == ("96", "0")
    speex = Codec(name="speex", clock_rate=16000)
    second = create_offer([audio(5000, speex, PCMU, OPUS)], origin=US, address="h", previous=first)
    # opus keeps 96 (§8.3.2), the new codec gets a number not used before.
    assert second.media[0].formats == ("97", "0", "96")
    # The video line cannot disappear: it stays, disabled (§8).
    assert len(second.media) == 2
    assert (second.media[1].media, second.media[1].port, second.media[1].attributes) == (
        "video",
        0,
        (),
    )


# --------------------------------------------------------------------------- hold / resume


def test_hold_and_resume_directions_rfc3264_8_4() -> None:
    assert hold_direction(Direction.SENDRECV) is Direction.SENDONLY
    assert hold_direction(Direction.RECVONLY) is Direction.INACTIVE
    assert hold_direction(Direction.SENDONLY) is Direction.SENDONLY
    assert hold_direction(Direction.INACTIVE) is Direction.INACTIVE
    assert resume_direction(Direction.SENDONLY) is Direction.SENDRECV
    assert resume_direction(Direction.INACTIVE) is Direction.RECVONLY


def test_hold_offer_and_resume_offer() -> None:
    current = create_offer(
        [audio(5000), audio(5002, direction=Direction.RECVONLY), audio(0)],
        origin=US,
        address="192.0.2.10",
    )
    held = hold_offer(current)
    assert [held.direction_of(i) for i in range(2)] == [Direction.SENDONLY, Direction.INACTIVE]
    assert held.media[2] == current.media[2]  # disabled streams are left alone
    assert held.origin.session_version == current.origin.session_version + 1
    assert is_held(held) and not is_held(current)

    resumed = resume_offer(held)
    assert [resumed.direction_of(i) for i in range(2)] == [Direction.SENDRECV, Direction.RECVONLY]
    assert resumed.origin.session_version == held.origin.session_version + 1


def test_legacy_hold_with_zero_address_rfc3264_8_4() -> None:
    current = create_offer([audio(5000)], origin=US, address="192.0.2.10")
    held = hold_offer(current, legacy=True)
    assert held.connection == Connection(address="0.0.0.0")
    assert held.origin.address == "192.0.2.10"  # o= never changes
    with pytest.raises(LocalProtocolError, match="needs the media address"):
        resume_offer(held)
    resumed = resume_offer(held, address="192.0.2.11")
    assert resumed.connection == Connection(address="192.0.2.11")
    v6 = hold_offer(create_offer([audio(5000)], origin=US, address="2001:db8::1"), legacy=True)
    assert v6.connection == Connection(addrtype="IP6", address="::")


def test_remote_legacy_hold_is_recognised() -> None:
    offer = parse(
        "v=0\r\no=- 1 2 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 0.0.0.0\r\nt=0 0\r\n"
        "m=audio 5000 RTP/AVP 0\r\n"
    )
    assert is_held(offer)
    answer = create_answer(offer, [audio(4000)], origin=US, address="h")
    # RFC 3264 §8.4: do not answer held SDP with held SDP.
    assert answer.direction_of(0) is Direction.SENDRECV
    (negotiated,) = negotiate(answer, offer)
    assert negotiated.legacy_hold and negotiated.held_by_remote
    assert not negotiated.sending  # send neither RTP nor RTCP to 0.0.0.0
    assert negotiated.receiving


def test_is_held_needs_active_streams() -> None:
    assert not is_held(parse("v=0\r\no=- 1 1 IN IP4 h\r\ns=-\r\nt=0 0\r\n"))


# --------------------------------------------------------------------------- changes


def _negotiated(remote_sdp: str) -> tuple[NegotiatedMedia, ...]:
    local = create_offer([audio(5000), audio(5002)], origin=US, address="192.0.2.10")
    return process_answer(local, parse(remote_sdp))


REMOTE = crlf("""v=0
o=- 9 9 IN IP4 192.0.2.20
s=-
c=IN IP4 192.0.2.20
t=0 0
m=audio 6000 RTP/AVP 0 101
a=rtpmap:101 telephone-event/8000
m=audio 0 RTP/AVP 0
""")


def test_compare_reports_mid_call_changes() -> None:
    before = _negotiated(REMOTE)
    assert compare(before, before) == ()

    moved = _negotiated(REMOTE.replace("192.0.2.20\r\nt", "192.0.2.21\r\nt"))
    (change,) = compare(before, moved)
    assert change.index == 0 and change.address_changed and change.rtcp_changed
    assert not change.codec_changed and not change.direction_changed

    new_port = _negotiated(REMOTE.replace("6000", "6002"))
    assert compare(before, new_port)[0].address_changed

    new_codec = _negotiated(REMOTE.replace("RTP/AVP 0 101", "RTP/AVP 8 0 101"))
    (change,) = compare(before, new_codec)
    assert change.codec_changed and not change.address_changed

    held = _negotiated(REMOTE.replace("m=audio 0", "a=sendonly\r\nm=audio 0"))
    (change,) = compare(before, held)
    assert change.direction_changed

    added = _negotiated(REMOTE.replace("m=audio 0", "m=audio 6002"))
    assert compare(before, added)[0].added
    assert compare(added, before)[0].removed


# --------------------------------------------------------------------------- MediaSession


def state_of(session: MediaSession) -> OfferAnswerState:
    """The state, read through a call so mypy does not narrow it across calls."""
    return session.state


def make_session(port: int = 4000, **kwargs: object) -> MediaSession:
    return MediaSession(
        streams=[audio(port)],
        address="192.0.2.10",
        random_below=lambda _: 1000,
        **kwargs,  # type: ignore[arg-type]
    )


def test_transition_table_rfc3264_4() -> None:
    assert TRANSITIONS[(OfferAnswerState.STABLE, OfferAnswerInput.SEND_OFFER)] is (
        OfferAnswerState.LOCAL_OFFER
    )
    assert (OfferAnswerState.LOCAL_OFFER, OfferAnswerInput.RECEIVE_OFFER) not in TRANSITIONS
    assert (OfferAnswerState.REMOTE_OFFER, OfferAnswerInput.SEND_OFFER) not in TRANSITIONS


def test_session_offer_answer_round() -> None:
    alice, bob = make_session(4000), make_session(5000)
    offer = alice.create_offer()
    assert state_of(alice) is OfferAnswerState.LOCAL_OFFER
    assert offer.origin.session_id == "1000" and offer.origin.session_version == 1000
    answer = bob.answer(offer)
    assert state_of(bob) is OfferAnswerState.STABLE
    negotiated = alice.receive_answer(answer)
    assert state_of(alice) is OfferAnswerState.STABLE
    assert negotiated[0].sending and negotiated[0].remote_port == 5000
    assert bob.negotiated[0].sending and bob.negotiated[0].remote_port == 4000
    assert alice.remote_sdp == answer and bob.remote_sdp == offer
    assert alice.local_sdp == offer and bob.local_sdp == answer


def test_session_randomness_is_injected_by_default_from_secrets() -> None:
    a = MediaSession(streams=[audio()], address="h")
    b = MediaSession(streams=[audio()], address="h")
    assert a.origin.session_id.isdigit() and a.origin.session_id != b.origin.session_id


def test_glare_is_491_and_out_of_turn_calls_are_errors() -> None:
    alice, bob = make_session(), make_session()
    alice.create_offer()
    with pytest.raises(RemoteProtocolError) as info:
        alice.receive_offer(bob.create_offer())
    assert info.value.status_hint == 491
    assert state_of(alice) is OfferAnswerState.LOCAL_OFFER
    with pytest.raises(LocalProtocolError):
        alice.create_offer()
    with pytest.raises(LocalProtocolError, match="send-answer is not allowed"):
        alice.create_answer()
    with pytest.raises(RemoteProtocolError, match="receive-answer is not allowed"):
        make_session().receive_answer(bob.local_sdp)  # type: ignore[arg-type]


def test_session_rejects_an_unacceptable_offer_and_stays_usable() -> None:
    bob = make_session()
    offer = parse(
        "v=0\r\no=- 1 1 IN IP4 h\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n"
        "m=audio 5000 RTP/AVP 18\r\n"
    )
    with pytest.raises(RemoteProtocolError) as info:
        bob.answer(offer)
    assert info.value.status_hint == 488
    assert state_of(bob) is OfferAnswerState.STABLE
    assert bob.local_sdp is None
    bob.create_offer()  # still usable


def test_session_bad_answer_leaves_the_offer_outstanding() -> None:
    alice = make_session()
    offer = alice.create_offer()
    bad = replace(offer, media=())
    with pytest.raises(RemoteProtocolError):
        alice.receive_answer(bad)
    assert state_of(alice) is OfferAnswerState.LOCAL_OFFER
    alice.rollback()
    assert state_of(alice) is OfferAnswerState.STABLE


def test_session_hold_resume_and_versions() -> None:
    alice, bob = make_session(4000), make_session(5000)
    alice.receive_answer(bob.answer(alice.create_offer()))
    version = alice.local_sdp.origin.session_version  # type: ignore[union-attr]

    held = alice.hold()
    assert held.direction_of(0) is Direction.SENDONLY
    assert held.origin.session_version == version + 1
    bob_answer = bob.answer(held)
    assert bob_answer.direction_of(0) is Direction.RECVONLY
    (alice_view,) = alice.receive_answer(bob_answer)
    assert alice_view.held_locally and alice_view.sending and not alice_view.receiving
    assert bob.negotiated[0].held_by_remote and not bob.negotiated[0].sending

    resumed = alice.resume()
    assert resumed.direction_of(0) is Direction.SENDRECV
    assert resumed.origin.session_version == version + 2
    alice.receive_answer(bob.answer(resumed))
    assert alice.negotiated[0].sending and alice.negotiated[0].receiving

    # A re-offer with nothing changed keeps the version (RFC 3264 §8).
    same = alice.create_offer()
    assert same.origin.session_version == version + 2
    alice.rollback()


def test_session_legacy_hold() -> None:
    alice, bob = make_session(4000), make_session(5000)
    alice.receive_answer(bob.answer(alice.create_offer()))
    held = alice.hold(legacy=True)
    assert held.connection == Connection(address="0.0.0.0")
    assert is_held(held)
    (alice_view,) = alice.receive_answer(bob.answer(held))
    assert alice_view.local_legacy_hold and alice_view.held_locally
    assert not alice_view.receiving
    assert bob.negotiated[0].legacy_hold and not bob.negotiated[0].sending
    resumed = alice.resume()
    assert resumed.connection == Connection(address="192.0.2.10")


def test_session_rollback_of_a_rejected_reoffer_keeps_versions_increasing() -> None:
    alice, bob = make_session(4000), make_session(5000)
    alice.receive_answer(bob.answer(alice.create_offer()))
    agreed = alice.negotiated
    version = alice.local_sdp.origin.session_version  # type: ignore[union-attr]
    rejected = alice.create_offer([audio(4000, G729)])  # say the peer answers 488
    assert rejected.origin.session_version == version + 1
    alice.rollback()
    assert alice.negotiated == agreed
    retry = alice.create_offer([audio(4000)])
    assert retry.origin.session_version == version + 2


def test_session_hold_out_of_turn_changes_nothing() -> None:
    alice = make_session()
    alice.create_offer()
    with pytest.raises(LocalProtocolError):
        alice.hold()
    assert not alice.held


def test_session_remote_reoffer_with_same_version_gets_the_same_answer() -> None:
    alice, bob = make_session(4000), make_session(5000)
    offer = alice.create_offer()
    first = bob.answer(offer)
    alice.receive_answer(first)
    again = bob.answer(offer)  # a no-op re-offer (same o= version)
    assert again == first


# --------------------------------------------------------------------------- fuzz

_OFFER_LINES = [
    "c=IN IP4 192.0.2.1",
    "c=IN IP4 0.0.0.0",
    "c=IN IP6 ff02::1",
    "c=IN IP4 233.252.0.1/127",
    "m=audio 5000 RTP/AVP 0 8 101",
    "m=audio 0 RTP/AVP 0",
    "m=audio 5002 RTP/SAVP 0",
    "m=video 5004 RTP/AVP 96",
    "m=audio 5006 RTP/AVP 96 97",
    "a=rtpmap:96 opus/48000/2",
    "a=rtpmap:97 telephone-event/48000",
    "a=rtpmap:101 telephone-event/8000",
    "a=rtpmap:0 PCMU/0",
    "a=rtpmap:8 PCMA/8000/0",
    "a=fmtp:101 0-15",
    "a=sendonly",
    "a=recvonly",
    "a=inactive",
    "a=rtcp-mux",
    "a=rtcp:5001",
    "a=ptime:20",
]


@settings(max_examples=300)
@given(st.lists(st.sampled_from(_OFFER_LINES), max_size=14))
def test_fuzz_any_parsed_offer_is_answered_or_refused_with_488(lines: list[str]) -> None:
    try:
        offer = parse("v=0\r\no=- 1 1 IN IP4 h\r\ns=-\r\nt=0 0\r\n" + "\r\n".join(lines))
    except RemoteProtocolError:  # e.g. two session-level c= lines
        assume(False)
    assert isinstance(is_held(offer), bool)
    try:
        answer = create_answer(offer, [audio(4000), audio(4002, OPUS)], origin=US, address="h")
    except RemoteProtocolError as exc:
        assert exc.status_hint == 488
        return
    assert len(answer.media) == len(offer.media)
    assert parse(answer.serialize()) == answer
    for ours, theirs in zip(negotiate(answer, offer), process_answer(offer, answer), strict=True):
        assert ours.accepted == theirs.accepted
        assert ours.sending == theirs.receiving
        if ours.sending:
            assert ours.send_codec is not None
            assert ours.send_codec.payload_type in offer.media[ours.index].payload_types
