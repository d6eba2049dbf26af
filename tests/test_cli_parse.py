"""``sipwire parse FILE|-``: pretty-printing, malformed input, unreadable files."""

from __future__ import annotations

import io
import pathlib
import subprocess
import sys

import pytest

from sipwire.cli import main

TORTURE = pathlib.Path(__file__).parent / "torture"
WSINV = TORTURE / "rfc4475" / "wsinv.dat"


def test_pretty_prints_a_valid_request(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["parse", str(WSINV)]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    lines = out.splitlines()
    assert lines[0] == "INVITE sip:vivekg@chair-dnrc.example.com;unknownparam SIP/2.0"
    assert "  Request-URI: sip user=vivekg host=chair-dnrc.example.com unknownparam" in lines
    # Rows as written, decoded values under them.
    assert "  TO: sip:vivekg@chair-dnrc.example.com ;   tag    = 1918181833n" in lines
    assert "      -> <sip:vivekg@chair-dnrc.example.com> tag=1918181833n" in lines
    assert "      -> seq=9 method=INVITE" in lines
    assert "      -> SIP/2.0/TCP sent-by=spindle.example.com branch=z9hG4bK9ikj8" in lines
    assert "      -> SIP/2.0/UDP sent-by=192.168.255.111 branch=z9hG4bK30239" in lines
    assert "  MaX-fOrWaRdS: 0068" in lines and "      -> 68" in lines
    assert any("q=0.33" in line and "newparam=newvalue" in line for line in lines)
    assert "body: 150 octets, application/sdp" in lines
    assert "  | v=0" in lines


def test_contact_expires_and_binary_body(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = (
        b"SIP/2.0 200 OK\r\n"
        b"Via: SIP/2.0/UDP h.example.com:5070;branch=z9hG4bK1;received=192.0.2.1;rport=5071\r\n"
        b"From: <sip:a@example.com>;tag=f\r\nTo: <sip:a@example.com>;tag=t\r\n"
        b"Call-ID: c\r\nCSeq: 2 REGISTER\r\n"
        b"Contact: <sip:a@192.0.2.1>;expires=3600;q=0.7, <sip:a%40b@192.0.2.2>\r\n"
        b"Content-Type: application/octet-stream\r\nContent-Length: 4\r\n\r\n\x00\x01\x02\xff"
    )
    path = tmp_path / "ok.sip"
    path.write_bytes(data)
    assert main(["parse", str(path)]) == 0
    out = capsys.readouterr().out
    assert "SIP/2.0 200 OK" in out
    assert (
        "      -> SIP/2.0/UDP sent-by=h.example.com:5070 branch=z9hG4bK1 received=192.0.2.1"
        " rport=5071" in out
    )
    assert "      -> <sip:a@192.0.2.1> expires=3600s q=0.7" in out
    assert "      -> <sip:a%40b@192.0.2.2> user='a@b'" in out
    assert "body: 4 octets, application/octet-stream" in out
    assert "  binary: 00 01 02 ff" in out


@pytest.mark.parametrize(
    ("name", "reason", "status"),
    [
        ("badvers", "unsupported SIP version 'SIP/7.0'", 505),
        ("mismatch02", "CSeq method 'INVITE' differs from the request method", 501),
        ("ncl", "malformed Content-Length '-999'", 400),
    ],
)
def test_malformed_message_is_one_line_exit_1(
    name: str, reason: str, status: int, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["parse", str(TORTURE / "rfc4475" / f"{name}.dat")]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err == f"sipwire parse: malformed message: {reason} (would answer {status})\n"


def test_no_validate_shows_decoding_errors_inline(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "bad.sip"
    path.write_bytes((TORTURE / "rfc4475" / "scalar02.dat").read_bytes())
    assert main(["parse", str(path)]) == 1
    capsys.readouterr()
    assert main(["parse", "--no-validate", str(path)]) == 0
    out = capsys.readouterr().out
    assert "  CSeq: 36893488147419103232 REGISTER" in out
    assert "      !! CSeq: value '36893488147419103232' out of range (0-2147483647)" in out


def test_missing_file_exit_2(tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nope.sip"
    assert main(["parse", str(missing)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err == f"sipwire parse: cannot read {missing}: No such file or directory\n"


def test_stdin_and_stream_mode(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    stream = (
        b"SIP/2.0 100 Trying\r\nl: 0\r\n\r\n"
        b"\r\n\r\n"
        b"OPTIONS sip:a@example.com SIP/2.0\r\nContent-Length: 0\r\n\r\n"
    )
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(stream)))
    assert main(["parse", "--stream", "--no-validate", "-"]) == 0
    out = capsys.readouterr().out
    assert out.index("SIP/2.0 100 Trying") < out.index("keep-alive PING")
    assert out.index("keep-alive PING") < out.index("OPTIONS sip:a@example.com SIP/2.0")
    # Validated, the OPTIONS (no Via, From...) is malformed.
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(stream)))
    assert main(["parse", "--stream", "-"]) == 1
    assert "malformed message: missing Via header (would answer 400)" in capsys.readouterr().err


def test_raw_octets_and_controls_are_escaped(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "octets.sip"
    path.write_bytes(b"OPTIONS sip:a@b SIP/2.0\r\nX-Raw: \xff\x01ok\r\nContent-Length: 0\r\n\r\n")
    assert main(["parse", "--no-validate", str(path)]) == 0
    assert "  X-Raw: \\xff\\x01ok" in capsys.readouterr().out


def test_as_a_real_command() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "sipwire", "parse", str(TORTURE / "rfc4475" / "trws.dat")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 1
    assert proc.stdout == ""
    assert proc.stderr == (
        "sipwire parse: malformed message: Request-Line must be Method SP Request-URI SP"
        " SIP-Version, single spaces (would answer 400)\n"
    )
