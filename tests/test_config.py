"""`sipwire serve` configuration: TOML, defaults, validation with clear messages."""

from __future__ import annotations

from pathlib import Path

import pytest

from sipwire.apps.config import ConfigError, ServerConfig, load_config


def test_defaults_are_the_documented_ones() -> None:
    c = load_config(None).validate()
    assert c.listen == ["udp:127.0.0.1:5060", "tcp:127.0.0.1:5060"]
    assert c.domains == ["localhost"] and c.db == "sipwire.db" and c.mode == "proxy"
    assert not c.no_auth and c.auth.algorithms == ["SHA-256", "MD5"]


def test_toml_file(tmp_path: Path) -> None:
    path = tmp_path / "sipwire.toml"
    path.write_text(
        'listen = ["udp:0.0.0.0:5070"]\ndomains = ["Example.TEST"]\nmode = "redirect"\n'
        'routes = ["^sip:\\\\+1.*=sip:gw.example.test"]\n[registrar]\nmax_bindings = 3\n'
    )
    c = load_config(path).validate()
    assert c.listen == ["udp:0.0.0.0:5070"] and c.domains == ["example.test"]
    assert c.mode == "redirect" and c.registrar.max_bindings == 3
    assert c.routes == ["^sip:\\+1.*=sip:gw.example.test"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("lisen = []", "lisen: unknown setting"),
        ("mode = 'fork'", "mode: 'fork' must be"),
        ("listen = ['udp127.0.0.1']", "is not TRANSPORT:HOST:PORT"),
        ("listen = ['tls:127.0.0.1:5061']", "needs [tls] cert and key"),
        ("no_auth = 'yes'", "no_auth: must be true or false"),
        ("[registrar]\nmin_expires = 0", "registrar: need 0 < min_expires"),
        ("[auth]\nalgorithms = ['SHA-1']", "unknown algorithm"),
        ("this is = not toml", "invalid TOML"),
    ],
)
def test_bad_config_says_why(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("(", r"\(")):
        load_config(path).validate()


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such file"):
        load_config(tmp_path / "nope.toml")


def test_validate_lowercases_domains() -> None:
    assert ServerConfig(domains=["LOCALHOST"]).validate().domains == ["localhost"]
