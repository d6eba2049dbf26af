"""SDP (RFC 8866): parsing, serialization, typed accessors, leniency, rejection, fuzz."""

from __future__ import annotations

import pathlib
import string
from dataclasses import replace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sipwire.core._errors import LocalProtocolError, RemoteProtocolError
from sipwire.core.sdp import (
    Attribute,
    Bandwidth,
    Connection,
    Direction,
    MediaDescription,
    Origin,
    RepeatTime,
    Rtcp,
    RtpMap,
    SdpLimits,
    SessionDescription,
    Timing,
    ZoneAdjustment,
    parse,
    typed_time_seconds,
)

TORTURE = pathlib.Path(__file__).parent / "torture"


def crlf(text: str) -> str:
    """Test documents are written with LF; SDP on the wire uses CRLF."""
    return text.replace("\n", "\r\n")


# --------------------------------------------------------------------------- real-world SDP
# Shaped like what these user agents send (written for these tests, not captured).

BARESIP = crlf("""v=0
o=- 1686570511 3249135890 IN IP4 192.168.1.20
s=-
c=IN IP4 192.168.1.20
t=0 0
a=tool:baresip 1.0.0
m=audio 10028 RTP/AVP 96 9 0 8 101
b=AS:64
a=rtpmap:96 opus/48000/2
a=fmtp:96 stereo=1;sprop-stereo=1
a=rtpmap:9 G722/8000
a=rtpmap:0 PCMU/8000
a=rtpmap:8 PCMA/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-15
a=sendrecv
a=label:1
a=rtcp-mux
a=ssrc:1129437389 cname:7f0a4c2e-5c55-4b8a-a3a8-2e3ad3b7d40e
a=ptime:20
""")

LINPHONE = crlf("""v=0
o=alice 3456 2301 IN IP4 192.168.1.30
s=Talk
c=IN IP4 192.168.1.30
t=0 0
a=ice-pwd:3b9c6e1f0a2d4c8e9f7a6b5c
a=ice-ufrag:8f2a1c3d
a=rtcp-xr:rcvr-rtt=all:10000 stat-summary=loss,dup,jitt,TTL voip-metrics
a=record:off
m=audio 7078 RTP/AVP 96 97 98 0 8 18 101 99 100
a=rtpmap:96 opus/48000/2
a=fmtp:96 useinbandfec=1
a=rtpmap:97 SILK/16000
a=rtpmap:98 speex/16000
a=fmtp:98 vbr=on
a=rtpmap:18 G729/8000
a=fmtp:18 annexb=yes
a=rtpmap:101 telephone-event/48000
a=rtpmap:99 telephone-event/16000
a=rtpmap:100 telephone-event/8000
a=rtcp:7079
a=candidate:1 1 UDP 2130706431 192.168.1.30 7078 typ host
a=candidate:1 2 UDP 2130706430 192.168.1.30 7079 typ host
a=candidate:2 1 UDP 1694498815 203.0.113.7 7078 typ srflx raddr 192.168.1.30 rport 7078
a=rtcp-fb:* trr-int 1000
a=rtcp-fb:* ccm tmmbr
""")

ASTERISK = crlf("""v=0
o=- 1700000000 1700000002 IN IP4 10.0.0.5
s=Asterisk
c=IN IP4 10.0.0.5
t=0 0
m=audio 18756 RTP/AVP 0 8 3 101
a=rtpmap:0 PCMU/8000
a=rtpmap:8 PCMA/8000
a=rtpmap:3 GSM/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-16
a=ptime:20
a=maxptime:150
a=sendrecv
""")

CISCO = crlf("""v=0
o=Cisco-SIPUA 2580 0 IN IP4 10.1.1.50
s=SIP Call
b=AS:4064
t=0 0
m=audio 25358 RTP/AVP 0 8 18 9 116 101
c=IN IP4 10.1.1.50
b=TIAS:64000
a=rtpmap:0 PCMU/8000
a=rtpmap:8 PCMA/8000
a=rtpmap:18 G729/8000
a=fmtp:18 annexb=no
a=rtpmap:9 G722/8000
a=rtpmap:116 iLBC/8000
a=fmtp:116 mode=20
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-15
a=sendrecv
m=video 0 RTP/AVP 126 97
c=IN IP4 10.1.1.50
b=TIAS:1000000
a=rtpmap:126 H264/90000
a=fmtp:126 profile-level-id=42801E;packetization-mode=1;level-asymmetry-allowed=1
a=rtpmap:97 H264/90000
a=fmtp:97 profile-level-id=42801E;packetization-mode=0;level-asymmetry-allowed=1
a=content:main
a=label:11
a=inactive
""")

WEBRTC = crlf("""v=0
o=- 4611731400430051336 2 IN IP4 127.0.0.1
s=-
t=0 0
a=group:BUNDLE 0
a=extmap-allow-mixed
a=msid-semantic: WMS stream0
m=audio 9 UDP/TLS/RTP/SAVPF 111 0 8 126
c=IN IP4 0.0.0.0
a=rtcp:9 IN IP4 0.0.0.0
a=ice-ufrag:Yq7T
a=ice-pwd:bN3pDl9Xq0cW5eL1o8ZkR2xM
a=ice-options:trickle
a=fingerprint:sha-256 4F:1C:2A:7E:9B:03:D5:88:61:AF:2C:4E:90:B7:13:5D:66:E2:0A:C9:74:3B:8F:11:D0:5A:92:E6:47:BC:38:1F
a=setup:actpass
a=mid:0
a=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level
a=sendrecv
a=msid:stream0 track0
a=rtcp-mux
a=rtpmap:111 opus/48000/2
a=rtcp-fb:111 transport-cc
a=fmtp:111 minptime=10;useinbandfec=1
a=rtpmap:0 PCMU/8000
a=rtpmap:8 PCMA/8000
a=rtpmap:126 telephone-event/8000
a=ssrc:3735928559 cname:qWe4rTy6uIo8
a=ssrc:3735928559 msid:stream0 track0
""")

REAL_WORLD = {
    "baresip": BARESIP,
    "linphone": LINPHONE,
    "asterisk": ASTERISK,
    "cisco": CISCO,
    "webrtc": WEBRTC,
}


@pytest.mark.parametrize("name", sorted(REAL_WORLD))
def test_real_world_documents_round_trip_byte_for_byte(name: str) -> None:
    text = REAL_WORLD[name]
    sd = parse(text.encode())
    assert sd.serialize() == text
    assert sd.to_bytes() == text.encode()
    assert parse(sd.to_bytes()) == sd


def test_baresip_accessors() -> None:
    sd = parse(BARESIP)
    (audio,) = sd.media
    assert audio.payload_types == (96, 9, 0, 8, 101)
    assert audio.rtpmap(96) == RtpMap(
        payload_type=96, encoding_name="opus", clock_rate=48000, channels=2
    )
    assert audio.rtpmap(9) == RtpMap(
        payload_type=9, encoding_name="G722", clock_rate=8000, channels=None
    )
    assert audio.fmtp(96) == "stereo=1;sprop-stereo=1"
    assert audio.fmtp_params(96) == {"stereo": "1", "sprop-stereo": "1"}
    assert audio.fmtp_params("101") == {"0-15": None}
    assert audio.ptime == 20.0
    assert audio.maxptime is None
    assert audio.rtcp_mux
    assert audio.direction is Direction.SENDRECV
    assert audio.bandwidths == (Bandwidth(bwtype="AS", bandwidth=64),)
    assert audio.attribute("ssrc") == "1129437389 cname:7f0a4c2e-5c55-4b8a-a3a8-2e3ad3b7d40e"
    assert audio.attribute_values("label") == ["1"]
    assert sd.attribute("tool") == "baresip 1.0.0"
    assert sd.rtp_address(0) == ("192.168.1.20", 10028)


def test_linphone_keeps_ice_attributes_and_rtcp_port() -> None:
    sd = parse(LINPHONE)
    audio = sd.media[0]
    assert audio.rtcp == Rtcp(port=7079)
    assert sd.rtcp_address(audio) == ("192.168.1.30", 7079)
    assert len(audio.attribute_values("candidate")) == 3
    assert sd.attribute("ice-ufrag") == "8f2a1c3d"
    assert audio.rtpmap(100) == RtpMap(
        payload_type=100, encoding_name="telephone-event", clock_rate=8000
    )
    # rtcp-xr's value has spaces and colons; it is kept verbatim.
    assert sd.attributes[2] == (
        "rtcp-xr",
        "rcvr-rtt=all:10000 stat-summary=loss,dup,jitt,TTL voip-metrics",
    )


def test_cisco_media_level_connection_and_bandwidth() -> None:
    sd = parse(CISCO)
    assert sd.connection is None
    assert sd.bandwidths == (Bandwidth(bwtype="AS", bandwidth=4064),)
    assert sd.connection_for(0) == Connection(address="10.1.1.50")
    assert sd.media[0].bandwidths == (Bandwidth(bwtype="TIAS", bandwidth=64000),)
    assert sd.media[1].port == 0
    assert sd.direction_of(1) is Direction.INACTIVE
    assert sd.media[1].fmtp_params(126)["packetization-mode"] == "1"


def test_webrtc_rtcp_attribute_with_address() -> None:
    sd = parse(WEBRTC)
    audio = sd.media[0]
    assert audio.proto == "UDP/TLS/RTP/SAVPF"
    assert audio.is_rtp
    assert audio.rtcp == Rtcp(port=9, nettype="IN", addrtype="IP4", address="0.0.0.0")
    assert sd.rtcp_address(0) == ("0.0.0.0", 9)
    assert sd.connection_for(0) is not None
    assert sd.connection_for(0).is_unspecified  # type: ignore[union-attr]
    assert sd.attribute("msid-semantic") == " WMS stream0"  # leading space kept


# --------------------------------------------------------------------------- RFC examples

RFC8866_EXAMPLE = crlf("""v=0
o=jdoe 3724394400 3724394405 IN IP4 198.51.100.1
s=Call to John Smith
i=SDP Offer #1
u=http://www.jdoe.example.com/home.html
e=Jane Doe <jane@jdoe.example.com>
p=+1 617 555-6011
c=IN IP4 198.51.100.1
t=0 0
m=audio 49170 RTP/AVP 0
m=audio 49180 RTP/AVP 0
m=video 51372 RTP/AVP 99
c=IN IP6 2001:db8::2
a=rtpmap:99 h263-1998/90000
""")


def test_rfc8866_section5_example() -> None:
    sd = parse(RFC8866_EXAMPLE)
    assert sd.origin == Origin(
        username="jdoe",
        session_id="3724394400",
        session_version=3724394405,
        address="198.51.100.1",
    )
    assert sd.session_name == "Call to John Smith"
    assert sd.information == "SDP Offer #1"
    assert sd.uri == "http://www.jdoe.example.com/home.html"
    assert sd.emails == ("Jane Doe <jane@jdoe.example.com>",)
    assert sd.phones == ("+1 617 555-6011",)
    assert sd.timings == (Timing(),)
    assert [m.port for m in sd.media] == [49170, 49180, 51372]
    # Session c= applies to the media without their own (RFC 8866 §5).
    assert sd.connection_for(1) == Connection(address="198.51.100.1")
    assert sd.connection_for(2) == Connection(addrtype="IP6", address="2001:db8::2")
    assert sd.serialize() == RFC8866_EXAMPLE


def test_repeat_and_zone_lines_rfc8866_5_10_and_5_11() -> None:
    text = crlf("""v=0
o=- 1 1 IN IP4 192.0.2.1
s=Seminar
c=IN IP4 233.252.0.1/127
t=3724394400 3754123200
r=604800 3600 0 90000
r=7d 1h 0 25h
z=3730928400 -1h 3749680800 0
m=audio 49170 RTP/AVP 0
""")
    sd = parse(text)
    (timing,) = sd.timings
    assert timing.repeats == (
        RepeatTime(interval="604800", duration="3600", offsets=("0", "90000")),
        RepeatTime(interval="7d", duration="1h", offsets=("0", "25h")),
    )
    assert timing.zone_adjustments == (
        ZoneAdjustment(time=3730928400, offset="-1h"),
        ZoneAdjustment(time=3749680800, offset="0"),
    )
    assert [typed_time_seconds(t) for t in ("7d", "1h", "25h", "-1h", "90000", "2m", "5s")] == [
        604800,
        3600,
        90000,
        -3600,
        90000,
        120,
        5,
    ]
    assert sd.connection == Connection(address="233.252.0.1", ttl=127)
    assert sd.connection.is_multicast
    assert sd.serialize() == text


def test_rfc4566_zone_placement_after_all_time_descriptions() -> None:
    sd = parse("v=0\no=- 1 1 IN IP4 h\ns=-\nt=1 2\nt=3 4\nr=1d 1h 0\nz=3730928400 -1h\n")
    assert sd.timings[0] == Timing(start=1, stop=2)
    assert sd.timings[1].zone_adjustments == (ZoneAdjustment(time=3730928400, offset="-1h"),)


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("IN IP4 233.252.0.1/127/3", Connection(address="233.252.0.1", ttl=127, address_count=3)),
        (
            "IN IP6 ff00::db8:0:101/3",
            Connection(addrtype="IP6", address="ff00::db8:0:101", address_count=3),
        ),
        ("IN IP4 host.example.com", Connection(address="host.example.com")),
        ("IN IP6 ::ffff:192.0.2.2", Connection(addrtype="IP6", address="::ffff:192.0.2.2")),
        ("IN IP6 fe80::1%eth0", Connection(addrtype="IP6", address="fe80::1%eth0")),
        (
            "ATM NSAP 47.0091.8100.0000/x",
            Connection(nettype="ATM", addrtype="NSAP", address="47.0091.8100.0000/x"),
        ),
    ],
)  # fmt: skip
def test_connection_suffixes_rfc8866_5_7(line: str, expected: Connection) -> None:
    sd = parse(f"v=0\r\no=- 1 1 IN IP4 h\r\ns=-\r\nc={line}\r\nt=0 0\r\n")
    assert sd.connection == expected
    assert str(expected) == line


def test_multicast_detection() -> None:
    assert Connection(address="239.1.2.3", ttl=1).is_multicast
    assert not Connection(address="192.0.2.1").is_multicast
    assert Connection(addrtype="IP6", address="ff02::1").is_multicast
    assert not Connection(addrtype="IP6", address="2001:db8::1").is_multicast
    assert not Connection(address="host.example.com").is_multicast
    assert Connection(address="0.0.0.0").is_unspecified
    assert Connection(addrtype="IP6", address="0::0").is_unspecified
    assert not Connection(address="192.0.2.1").is_unspecified
    assert not Connection(address="host.example.com").is_unspecified
    assert not Connection(nettype="ATM", addrtype="NSAP", address="0.0.0.0").is_unspecified


def test_port_count_rfc8866_5_14() -> None:
    sd = parse(
        "v=0\r\no=- 1 1 IN IP4 h\r\ns=-\r\nc=IN IP4 h\r\nt=0 0\r\nm=video 49170/2 RTP/AVP 31\r\n"
    )
    assert (sd.media[0].port, sd.media[0].port_count) == (49170, 2)
    assert "m=video 49170/2 RTP/AVP 31\r\n" in sd.serialize()


# --------------------------------------------------------------------------- torture corpora


def _body(path: pathlib.Path) -> bytes:
    data = path.read_bytes()
    for separator in (b"\r\n\r\n", b"\n\n"):
        if separator in data:
            return data.split(separator, 1)[1]
    raise AssertionError(f"{path} has no body")


@pytest.mark.parametrize(
    "path",
    [
        "rfc5118/ipv6-in-sdp.dat",
        "rfc5118/wire/ipv6-in-sdp.dat",
        "rfc5118/mult-ip-in-sdp.dat",
        "rfc5118/wire/mult-ip-in-sdp.dat",
        "rfc5118/ipv4-mapped-ipv6.dat",
        "rfc5118/wire/ipv4-mapped-ipv6.dat",
    ],
)
def test_rfc5118_ipv6_sdp_bodies_are_accepted(path: str) -> None:
    sd = parse(_body(TORTURE / path))
    addresses = [sd.connection_for(m) for m in sd.media]
    assert all(c is not None for c in addresses)
    assert parse(sd.to_bytes()) == sd
    if "mult-ip" in path:
        # RFC 5118 §4.8: IPv4 audio and IPv6 video, each with its own c= line.
        assert sd.rtp_address(0) == ("192.0.2.1", 22334)
        assert sd.rtp_address(1) == ("2001:db8::1", 6024)
        assert sd.session_name == ""
    elif "mapped" in path:
        assert sd.origin.address == "::ffff:192.0.2.2"
        assert sd.rtp_address(0) == ("::ffff:192.0.2.2", 6000)
    else:
        assert sd.origin.addrtype == "IP6"
        assert sd.rtp_address(1) == ("2001:db8::20", 6024)
        assert sd.media[0].rtpmap(2) == RtpMap(
            payload_type=2, encoding_name="G726-32", clock_rate=8000
        )


def test_rfc4475_sdp01_body() -> None:
    sd = parse(_body(TORTURE / "rfc4475" / "sdp01.dat"))
    assert [m.media for m in sd.media] == ["audio", "video"]
    assert sd.media[0].payload_types == (0, 12)
    # "a=rtpmap:31 LPC" has no clock rate: ignored, the static RFC 3551 mapping remains.
    assert sd.media[1].rtpmaps() == {}
    assert sd.media[1].rtpmap(31) == RtpMap(payload_type=31, encoding_name="H261", clock_rate=90000)
    assert sd.media[1].attributes == (Attribute("rtpmap", "31 LPC"),)


def test_rfc4475_bodies_without_s_and_t_lines_are_tolerated() -> None:
    # mismatch02's body has neither s= nor t=; sloppy, but a phone must cope.
    sd = parse(_body(TORTURE / "rfc4475" / "mismatch02.dat"))
    assert sd.session_name is None
    assert sd.timings == ()
    assert "s=" not in sd.serialize()
    assert parse(sd.serialize()) == sd


# --------------------------------------------------------------------------- leniency


MINIMAL = (
    "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n"
    "m=audio 4000 RTP/AVP 0\r\n"
)


def test_lf_only_line_endings_rfc8866_5() -> None:
    assert parse(MINIMAL.replace("\r\n", "\n")) == parse(MINIMAL)


def test_blank_lines_extra_spaces_and_trailing_whitespace() -> None:
    sloppy = (
        "v=0 \r\n\r\no=-  1 1 IN  IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1  \r\n"
        "t=0 0\t\r\nm=audio  4000 RTP/AVP  0 \r\na=sendrecv \r\n\r\n\r\n"
    )
    sd = parse(sloppy)
    assert sd == replace(
        parse(MINIMAL), media=(parse(MINIMAL).media[0].with_direction(Direction.SENDRECV),)
    )


def test_session_lines_out_of_order_rfc3264_section9_example() -> None:
    text = crlf("""v=0
o=carol 28908764872 28908764872 IN IP4 100.3.6.6
s=-
t=0 0
c=IN IP4 192.0.2.4
m=audio 0 RTP/AVP 0 1 3
a=rtpmap:0 PCMU/8000
a=rtpmap:1 1016/8000
a=rtpmap:3 GSM/8000
m=video 0 RTP/AVP 31 34
a=rtpmap:31 H261/90000
a=rtpmap:34 H263/90000
""")
    sd = parse(text)
    assert sd.connection == Connection(address="192.0.2.4")
    assert sd.media[0].rtpmap(1) == RtpMap(payload_type=1, encoding_name="1016", clock_rate=8000)
    # Serialized in RFC 8866 order: c= before t=.
    assert sd.serialize() == text.replace(
        "t=0 0\r\nc=IN IP4 192.0.2.4\r\n", "c=IN IP4 192.0.2.4\r\nt=0 0\r\n"
    )


def test_key_lines_are_discarded_rfc8866_5_12_and_unknown_letters_ignored() -> None:
    text = (
        MINIMAL.replace("t=0 0\r\n", "t=0 0\r\nk=prompt\r\ny=0100000001\r\n") + "k=clear:secret\r\n"
    )
    sd = parse(text)
    assert sd == parse(MINIMAL)
    assert "k=" not in sd.serialize()


def test_bracketed_ipv6_connection_address_is_normalised() -> None:
    sd = parse(MINIMAL.replace("c=IN IP4 192.0.2.1", "c=IN IP6 [2001:db8::1]"))
    assert sd.connection == Connection(addrtype="IP6", address="2001:db8::1")


def test_origin_username_with_spaces_is_tolerated() -> None:
    sd = parse(MINIMAL.replace("o=- 1 1", "o=Some Phone 1 1"))
    assert sd.origin.username == "Some Phone"
    assert sd.origin.session_id == "1"
    assert parse(sd.serialize()) == sd


def test_media_without_formats_is_tolerated() -> None:
    sd = parse(MINIMAL.replace("m=audio 4000 RTP/AVP 0", "m=video 0 RTP/AVP"))
    assert sd.media[0].formats == ()
    assert "m=video 0 RTP/AVP\r\n" in sd.serialize()


def test_non_utf8_octets_round_trip() -> None:
    data = MINIMAL.encode() + b"a=x-label:caf\xe9\r\n"
    sd = parse(data)
    assert sd.to_bytes() == data


def test_attribute_values_are_verbatim() -> None:
    sd = parse(MINIMAL + "a=fmtp:0  a=b \r\na=x-flag\r\na=x-empty:\r\n")
    assert sd.media[0].attributes == (
        Attribute("fmtp", "0  a=b "),
        Attribute("x-flag"),
        Attribute("x-empty", ""),
    )
    assert sd.serialize() == MINIMAL + "a=fmtp:0  a=b \r\na=x-flag\r\na=x-empty:\r\n"
    assert sd.media[0].fmtp(0) == "a=b"


# --------------------------------------------------------------------------- typed accessors


def test_direction_media_level_overrides_session_level_rfc8866_6_7() -> None:
    text = (
        MINIMAL.replace("t=0 0\r\n", "t=0 0\r\na=recvonly\r\n")
        + "m=audio 4002 RTP/AVP 0\r\na=inactive\r\n"
    )
    sd = parse(text)
    assert sd.direction is Direction.RECVONLY
    assert sd.media[0].direction is None
    assert sd.direction_of(0) is Direction.RECVONLY
    assert sd.direction_of(1) is Direction.INACTIVE
    assert parse(MINIMAL).direction_of(0) is Direction.SENDRECV


def test_direction_helpers() -> None:
    assert Direction.SENDONLY.reversed() is Direction.RECVONLY
    assert Direction.RECVONLY.reversed() is Direction.SENDONLY
    assert Direction.SENDRECV.reversed() is Direction.SENDRECV
    assert Direction.INACTIVE.reversed() is Direction.INACTIVE
    assert Direction.from_flags(send=True, receive=False) is Direction.SENDONLY
    assert Direction.SENDRECV.sends and Direction.SENDRECV.receives
    assert not Direction.INACTIVE.sends and not Direction.INACTIVE.receives


def test_with_direction_replaces_existing_attribute() -> None:
    media = parse(ASTERISK).media[0].with_direction(Direction.SENDONLY)
    assert media.direction is Direction.SENDONLY
    assert [a.name for a in media.attributes].count("sendonly") == 1
    assert "sendrecv" not in [a.name for a in media.attributes]
    assert media.with_direction(None).direction is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [("20", 20.0), ("0.5", 0.5), (" 30 ", 30.0), ("0", None), ("abc", None), ("-5", None),
     ("1e3", None)],
)  # fmt: skip
def test_ptime_rfc8866_6_4(value: str, expected: float | None) -> None:
    assert parse(MINIMAL + f"a=ptime:{value}\r\n").media[0].ptime == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("53020", Rtcp(port=53020)),
        (
            "53020 IN IP4 126.16.64.4",
            Rtcp(port=53020, nettype="IN", addrtype="IP4", address="126.16.64.4"),
        ),
        (
            "53020 IN IP6 2001:db8::abcd",
            Rtcp(port=53020, nettype="IN", addrtype="IP6", address="2001:db8::abcd"),
        ),
        ("99999", None),
        ("x", None),
        ("53020 IN IP4", None),
    ],
)  # fmt: skip
def test_rtcp_attribute_rfc3605(value: str, expected: Rtcp | None) -> None:
    sd = parse(MINIMAL + f"a=rtcp:{value}\r\n")
    assert sd.media[0].rtcp == expected
    if expected is None:
        assert sd.rtcp_address(0) == ("192.0.2.1", 4001)  # RTP port + 1 (RFC 3550 §11)
    elif expected.address is None:
        assert sd.rtcp_address(0) == ("192.0.2.1", 53020)
    else:
        assert sd.rtcp_address(0) == (expected.address, 53020)


@pytest.mark.parametrize(
    "value",
    [
        "96",
        "96 opus",
        "96 opus/",
        "96 opus/x",
        "128 opus/48000",
        "96 opus/48000/two",
        "x opus/8000",
        "96 /8000",
    ],
)
def test_malformed_rtpmaps_are_skipped(value: str) -> None:
    assert parse(MINIMAL + f"a=rtpmap:{value}\r\n").media[0].rtpmaps() == {}


def test_static_payload_types_without_rtpmap_rfc3551() -> None:
    media = parse(MINIMAL.replace("RTP/AVP 0", "RTP/AVP 0 8 9 18 96")).media[0]
    assert media.rtpmap(8) == RtpMap(
        payload_type=8, encoding_name="PCMA", clock_rate=8000, channels=1
    )
    assert media.rtpmap(9) == RtpMap(
        payload_type=9, encoding_name="G722", clock_rate=8000, channels=1
    )
    assert media.rtpmap(96) is None


def test_no_connection_anywhere() -> None:
    sd = parse("v=0\r\no=- 1 1 IN IP4 h\r\ns=-\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n")
    assert sd.connection_for(0) is None
    assert sd.rtp_address(0) is None
    assert sd.rtcp_address(0) is None


def test_origin_same_session() -> None:
    a = Origin(session_id="1", session_version=1, address="h")
    assert a.same_session(replace(a, session_version=7))
    assert not a.same_session(replace(a, session_id="2"))


def test_builders() -> None:
    sd = parse(ASTERISK)
    media = sd.media[0].with_attribute("x-test", "1").without_attribute("ptime")
    assert media.attribute("x-test") == "1"
    assert media.ptime is None
    changed = sd.with_media(0, media).with_version(9)
    assert changed.origin.session_version == 9
    assert changed.media[0] == media
    assert sd.with_direction(Direction.INACTIVE).direction is Direction.INACTIVE
    assert str(sd) == sd.serialize()


# --------------------------------------------------------------------------- construction


def test_constructor_normalises_plain_tuples_and_lists() -> None:
    media = MediaDescription(
        port=4000,
        formats=["0"],  # type: ignore[arg-type]
        attributes=[("rtpmap", "0 PCMU/8000"), ("sendrecv", None)],  # type: ignore[arg-type]
    )
    assert media.formats == ("0",)
    assert all(type(a) is Attribute for a in media.attributes)
    assert (
        "a=sendrecv\r\n"
        in SessionDescription(
            origin=Origin(session_id="1", session_version=1, address="h"), media=(media,)
        ).serialize()
    )


@pytest.mark.parametrize(
    "build",
    [
        lambda: Attribute.__new__(Attribute, "a:b", None),
        lambda: Attribute("bad name", None),
        lambda: Attribute("x", "line\r\nbreak"),
    ],
)
def test_constructor_rejects_unserializable_attributes(build: object) -> None:
    attribute = build()  # type: ignore[operator]
    with pytest.raises(LocalProtocolError):
        MediaDescription(port=1, attributes=(attribute,))


@pytest.mark.parametrize(
    "build",
    [
        lambda: MediaDescription(port=70000),
        lambda: MediaDescription(port=1, media="au dio"),
        lambda: MediaDescription(port=1, port_count=0),
        lambda: Connection(address="1.2.3.4/5"),
        lambda: Connection(addrtype="IP6", address="::1", ttl=3),
        lambda: Connection(address="224.1.1.1", address_count=2),
        lambda: Connection(address="224.1.1.1", ttl=256),
        lambda: Origin(username="", session_id="1", session_version=1, address="h"),
        lambda: Origin(session_id="1", session_version=-1, address="h"),
        lambda: Bandwidth(bwtype="A:S", bandwidth=1),
        lambda: RepeatTime(interval="1w", duration="1", offsets=("0",)),
        lambda: RepeatTime(interval="1", duration="1", offsets=()),
        lambda: ZoneAdjustment(time=1, offset="+1h"),
        lambda: SessionDescription(
            origin=Origin(session_id="1", session_version=1, address="h"), session_name="a\nb"
        ),
        lambda: SessionDescription(
            origin=Origin(session_id="1", session_version=1, address="h"), version=1
        ),
    ],
)
def test_constructors_reject_values_that_cannot_be_serialized(build: object) -> None:
    with pytest.raises(LocalProtocolError):
        build()  # type: ignore[operator]


def test_typed_time_rejects_garbage() -> None:
    with pytest.raises(LocalProtocolError):
        typed_time_seconds("1w")


# --------------------------------------------------------------------------- rejection

HEAD = "v=0\r\no=- 1 1 IN IP4 h\r\ns=-\r\nc=IN IP4 h\r\nt=0 0\r\n"


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("", "empty"),
        ("\r\n\r\n", "empty"),
        ("hello world", "not a <type>=<value>"),
        ("o=- 1 1 IN IP4 h\r\n", "must start with v="),
        ("v=1\r\no=- 1 1 IN IP4 h\r\n", "unsupported SDP version"),
        ("v=0\r\ns=-\r\n", "no o= line"),
        ("v=0\r\nv=0\r\no=- 1 1 IN IP4 h\r\n", "more than one v="),
        ("v=0\r\no=- 1 IN IP4 h\r\n", "o= needs"),
        ("v=0\r\no=- 1 x IN IP4 h\r\n", "session version"),
        ("v=0\r\no=- 1 1 IN IP4 h\r\no=- 1 1 IN IP4 h\r\n", "more than one o="),
        (HEAD + "s=again\r\n", "more than one s="),
        (HEAD + "c=IN IP4 h2\r\n", "more than one session-level c="),
        (HEAD + "i=a\r\ni=b\r\n", "more than one i="),
        (HEAD + "m=audio 70000 RTP/AVP 0\r\n", "out of range"),
        (HEAD + "m=audio x RTP/AVP 0\r\n", "m= port"),
        (HEAD + "m=audio 4000/0 RTP/AVP 0\r\n", "port count"),
        (HEAD + "m=audio 4000/ RTP/AVP 0\r\n", "port count"),
        (HEAD + "m=audio 4000\r\n", "m= needs"),
        (HEAD + "m=audio 4000 RTP/AVP 0\r\nt=0 0\r\n", "not allowed in a media description"),
        (HEAD + "m=audio 4000 RTP/AVP 0\r\ni=a\r\ni=b\r\n", "more than one i="),
        (HEAD + "m =video 3227 RTP/AVP 31\r\n", "not a <type>=<value>"),
        (HEAD + "b=AS\r\n", "b= needs"),
        (HEAD + "b=AS:fast\r\n", "bandwidth"),
        (HEAD + "b=AS:٣\r\n", "bandwidth"),  # a non-ASCII digit
        ("v=0\r\no=- 1 1 IN IP4 h\r\nt=0\r\n", "t= needs"),
        ("v=0\r\no=- 1 1 IN IP4 h\r\nt=now 0\r\n", "start time"),
        ("v=0\r\no=- 1 1 IN IP4 h\r\nr=1d 1h 0\r\n", "before any t="),
        ("v=0\r\no=- 1 1 IN IP4 h\r\nz=1 1h\r\n", "before any t="),
        ("v=0\r\no=- 1 1 IN IP4 h\r\nt=0 0\r\nr=1d 1h\r\n", "r= needs"),
        ("v=0\r\no=- 1 1 IN IP4 h\r\nt=0 0\r\nr=1w 1h 0\r\n", "r= needs"),
        ("v=0\r\no=- 1 1 IN IP4 h\r\nt=0 0\r\nz=1 1h 2\r\n", "z= needs"),
        ("v=0\r\no=- 1 1 IN IP4 h\r\nt=0 0\r\nz=1 +1h\r\n", "z= offset"),
        (HEAD.replace("c=IN IP4 h", "c=IN IP4"), "c= needs"),
        (HEAD.replace("c=IN IP4 h", "c=IN IP4 h extra"), "c= needs"),
        (HEAD.replace("c=IN IP4 h", "c=IN IP4 224.1.1.1/300"), "ttl"),
        (HEAD.replace("c=IN IP4 h", "c=IN IP4 224.1.1.1/1/0"), "count"),
        (HEAD.replace("c=IN IP4 h", "c=IN IP4 224.1.1.1/1/2/3"), "suffixes"),
        (HEAD.replace("c=IN IP4 h", "c=IN IP6 ff02::1/2/3"), "suffixes"),
        (HEAD.replace("c=IN IP4 h", "c=IN IP4 <script>"), "not an IP address"),
        (HEAD + "a=\r\n", "attribute name"),
        (HEAD + "a=:value\r\n", "attribute name"),
        (HEAD + "a=bad name:value\r\n", "attribute name"),
        (HEAD + "a=x\ry\r\n", "bare CR"),
        (HEAD + "a=x\x00\r\n", "NUL"),
    ],
)
def test_malformed_documents_raise_remote_protocol_error(text: str, fragment: str) -> None:
    with pytest.raises(RemoteProtocolError) as info:
        parse(text)
    assert info.value.status_hint == 400
    assert fragment in info.value.reason


def test_error_names_the_line() -> None:
    with pytest.raises(RemoteProtocolError, match=r"SDP line 6: .*m= port"):
        parse(HEAD + "m=audio x RTP/AVP 0\r\n")


def test_bounds() -> None:
    limits = SdpLimits(max_size=200, max_lines=10, max_media=2, max_attributes=3)
    with pytest.raises(RemoteProtocolError, match="larger than 200 octets"):
        parse(b"v=0\r\n" + b"a=x\r\n" * 50, limits=limits)
    with pytest.raises(RemoteProtocolError, match="larger than 200 characters"):
        parse("v=0\r\n" + "a=x\r\n" * 50, limits=limits)
    with pytest.raises(RemoteProtocolError, match="more than 10 lines"):
        parse("\n" * 12, limits=limits)
    with pytest.raises(RemoteProtocolError, match="more than 2 m= lines"):
        parse(HEAD + "m=audio 1 RTP/AVP 0\r\n" * 3, limits=limits)
    with pytest.raises(RemoteProtocolError, match="more than 3 a= lines"):
        parse(HEAD + "a=x\r\n" * 4, limits=limits)
    assert len(parse(HEAD + "m=audio 1 RTP/AVP 0\r\n" * 2, limits=limits).media) == 2


def test_default_bounds_accept_a_large_offer_and_refuse_a_huge_one() -> None:
    big = HEAD + "m=audio 1 RTP/AVP 0\r\n" + "a=candidate:1 1 UDP 1 192.0.2.1 9 typ host\r\n" * 300
    assert len(parse(big).media[0].attributes) == 300
    with pytest.raises(RemoteProtocolError):
        parse(HEAD + "a=x\r\n" * 20000)


def test_huge_numbers_are_refused_not_crashing() -> None:
    for text in (
        HEAD + "m=audio " + "9" * 5000 + " RTP/AVP 0\r\n",
        "v=0\r\no=- 1 " + "9" * 5000 + " IN IP4 h\r\n",
        HEAD + "b=AS:" + "9" * 5000 + "\r\n",
        HEAD.replace("t=0 0", "t=" + "9" * 5000 + " 0"),
    ):
        with pytest.raises(RemoteProtocolError):
            parse(text)
    sd = parse(HEAD.replace("c=IN IP4 h", "c=IN IP4 " + "9" * 5000 + ".1.1.1"))
    assert sd.connection is not None
    assert not sd.connection.is_multicast


# --------------------------------------------------------------------------- property tests

_TOKEN_CHARS = string.ascii_letters + string.digits + "!#$%&'*+-.^_`{|}~"
tokens = st.text(_TOKEN_CHARS, min_size=1, max_size=8)
ip_hosts = st.text(string.ascii_letters + string.digits + ".:%-_", min_size=1, max_size=20)
texts = st.text(st.characters(codec="utf-8", blacklist_characters="\r\n\x00"), max_size=16)
typed_times = st.builds(
    lambda n, unit: f"{n}{unit}", st.integers(0, 10**6), st.sampled_from(["", "d", "h", "m", "s"])
)
numbers = st.integers(0, 10**15)


@st.composite
def connections(draw: st.DrawFn) -> Connection:
    kind = draw(st.sampled_from(["IP4", "IP6", "ip6", "NSAP"]))
    if kind == "NSAP":
        return Connection(
            nettype="ATM", addrtype=kind, address=draw(tokens.map(lambda t: t + "/1"))
        )
    address = draw(ip_hosts)
    if kind == "IP4":
        ttl = draw(st.none() | st.integers(0, 255))
        count = None if ttl is None else draw(st.none() | st.integers(1, 99))
        return Connection(address=address, ttl=ttl, address_count=count)
    count = draw(st.none() | st.integers(1, 99))
    return Connection(addrtype=kind, address=address, address_count=count)


attributes = st.builds(Attribute, tokens, st.none() | texts)
bandwidths = st.builds(Bandwidth, bwtype=tokens, bandwidth=numbers)
timings = st.builds(
    Timing,
    start=numbers,
    stop=numbers,
    repeats=st.lists(
        st.builds(
            RepeatTime,
            interval=typed_times,
            duration=typed_times,
            offsets=st.lists(typed_times, min_size=1, max_size=3).map(tuple),
        ),
        max_size=2,
    ).map(tuple),
    zone_adjustments=st.lists(
        st.builds(
            ZoneAdjustment,
            time=numbers,
            offset=st.builds(lambda sign, t: sign + t, st.sampled_from(["", "-"]), typed_times),
        ),
        max_size=3,
    ).map(tuple),
)
media_descriptions = st.builds(
    MediaDescription,
    media=tokens,
    port=st.integers(0, 65535),
    port_count=st.none() | st.integers(1, 8),
    proto=tokens,
    formats=st.lists(tokens, max_size=5).map(tuple),
    information=st.none() | texts,
    connections=st.lists(connections(), max_size=2).map(tuple),
    bandwidths=st.lists(bandwidths, max_size=2).map(tuple),
    attributes=st.lists(attributes, max_size=6).map(tuple),
)
origins = st.builds(
    Origin,
    username=st.lists(tokens, min_size=1, max_size=2).map(" ".join),
    session_id=tokens,
    session_version=st.integers(0, 2**64),
    nettype=tokens,
    addrtype=tokens,
    address=tokens,
)
session_descriptions = st.builds(
    SessionDescription,
    origin=origins,
    session_name=st.none() | texts,
    information=st.none() | texts,
    uri=st.none() | texts,
    emails=st.lists(texts, max_size=2).map(tuple),
    phones=st.lists(texts, max_size=2).map(tuple),
    connection=st.none() | connections(),
    bandwidths=st.lists(bandwidths, max_size=2).map(tuple),
    timings=st.lists(timings, max_size=3).map(tuple),
    attributes=st.lists(attributes, max_size=4).map(tuple),
    media=st.lists(media_descriptions, max_size=4).map(tuple),
)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(session_descriptions)
def test_round_trip_parse_serialize(sd: SessionDescription) -> None:
    text = sd.serialize()
    assert parse(text) == sd
    assert parse(sd.to_bytes()) == sd
    assert parse(text).serialize() == text


@settings(max_examples=500)
@given(st.text(max_size=300))
def test_fuzz_any_text_parses_or_raises_remote_protocol_error(text: str) -> None:
    _parse_or_reject(text)


@settings(max_examples=500)
@given(st.binary(max_size=300))
def test_fuzz_any_bytes_parses_or_raises_remote_protocol_error(data: bytes) -> None:
    _parse_or_reject(data)


_LINES = [line for doc in REAL_WORLD.values() for line in doc.split("\r\n") if line] + [
    "c=IN IP4 224.2.1.1/127/3",
    "c=IN IP6 ff00::1/2",
    "r=7d 1h 0 25h",
    "z=3730928400 -1h",
    "t=3724394400 3754123200",
    "m=video 49170/2 RTP/AVP 31",
    "b=AS:",
    "k=prompt",
]


@settings(max_examples=500)
@given(
    st.lists(st.sampled_from(_LINES), max_size=25),
    st.lists(st.tuples(st.integers(0, 400), st.characters()), max_size=4),
)
def test_fuzz_mutated_documents(lines: list[str], edits: list[tuple[int, str]]) -> None:
    text = "v=0\r\no=- 1 1 IN IP4 h\r\ns=-\r\n" + "".join(line + "\r\n" for line in lines)
    for position, char in edits:
        text = text[:position] + char + text[position + 1 :]
    _parse_or_reject(text)


def _parse_or_reject(data: str | bytes) -> None:
    try:
        sd = parse(data)
    except RemoteProtocolError as exc:
        assert exc.status_hint == 400
        return
    # Whatever parses re-parses to the same value, and the accessors never raise.
    assert parse(sd.serialize()) == sd
    for index, media in enumerate(sd.media):
        media.rtpmaps()
        media.rtcp  # noqa: B018
        media.ptime  # noqa: B018
        for pt in media.payload_types:
            media.rtpmap(pt)
            media.fmtp_params(pt)
        sd.direction_of(index)
        sd.rtcp_address(index)
        for connection in media.connections:
            connection.is_multicast  # noqa: B018
