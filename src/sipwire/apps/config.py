"""Configuration of ``sipwire serve``: a TOML file, overridden by command-line flags.

Example ``sipwire.toml`` (every key optional; these are the defaults)::

    listen = ["udp:127.0.0.1:5060", "tcp:127.0.0.1:5060"]
    domains = ["localhost"]
    db = "sipwire.db"
    mode = "proxy"              # or "redirect"
    stateless = false
    no_auth = false
    trusted = []                # networks that skip authentication, e.g. ["10.0.0.0/8"]
    routes = []                 # "REGEX=URI[,URI...]" static routes / dial plan
    hook = ""                   # "module:function" Python routing hook
    fork = "parallel"           # or "sequential" (by q-value)
    record_route = true
    server_header = "sipwire"   # Server/User-Agent value; no version unless you add it
    outbound_proxy = ""
    log_level = "info"
    workers = 1

    [tls]
    cert = ""                   # PEM certificate chain for tls:/wss: listeners
    key = ""

    [registrar]
    default_expires = 3600
    min_expires = 60
    max_expires = 86400
    max_bindings = 10

    [auth]
    algorithms = ["SHA-256", "MD5"]
    md5_only_user_agents = ["baresip", "sipp", "sipsak"]  # they reject SHA-256 challenges
    nonce_lifetime = 300

Unknown keys are an error (a typo must not silently change nothing).
"""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["ConfigError", "ServerConfig", "load_config"]


class ConfigError(Exception):
    """The configuration is invalid; the message says where and why."""


@dataclass(slots=True, kw_only=True)
class RegistrarSection:
    default_expires: int = 3600
    min_expires: int = 60
    max_expires: int = 86400
    max_bindings: int = 10


@dataclass(slots=True, kw_only=True)
class AuthSection:
    algorithms: list[str] = field(default_factory=lambda: ["SHA-256", "MD5"])
    md5_only_user_agents: list[str] = field(default_factory=lambda: ["baresip", "sipp", "sipsak"])
    nonce_lifetime: int = 300


@dataclass(slots=True, kw_only=True)
class TlsSection:
    cert: str = ""
    key: str = ""


@dataclass(slots=True, kw_only=True)
class ServerConfig:
    """Everything ``sipwire serve`` needs; see the module docstring for the TOML form."""

    listen: list[str] = field(default_factory=lambda: ["udp:127.0.0.1:5060", "tcp:127.0.0.1:5060"])
    domains: list[str] = field(default_factory=lambda: ["localhost"])
    db: str = "sipwire.db"
    mode: str = "proxy"
    stateless: bool = False
    no_auth: bool = False
    trusted: list[str] = field(default_factory=list)
    routes: list[str] = field(default_factory=list)
    hook: str = ""
    fork: str = "parallel"
    record_route: bool = True
    server_header: str = "sipwire"
    outbound_proxy: str = ""
    log_level: str = "info"
    workers: int = 1
    tls: TlsSection = field(default_factory=TlsSection)
    registrar: RegistrarSection = field(default_factory=RegistrarSection)
    auth: AuthSection = field(default_factory=AuthSection)

    def validate(self) -> ServerConfig:
        if not self.listen:
            raise ConfigError("listen: at least one listener is needed")
        for spec in self.listen:
            scheme = spec.split(":", 1)[0].lower()
            if scheme not in ("udp", "tcp", "tls", "ws", "wss") or ":" not in spec:
                raise ConfigError(
                    f"listen: {spec!r} is not TRANSPORT:HOST:PORT "
                    "(transport udp, tcp, tls, ws or wss)"
                )
            if scheme in ("tls", "wss") and not (self.tls.cert and self.tls.key):
                raise ConfigError(f"listen: {spec!r} needs [tls] cert and key")
        if not self.domains:
            raise ConfigError("domains: at least one domain is needed")
        self.domains = [d.lower() for d in self.domains]
        if self.mode not in ("proxy", "redirect"):
            raise ConfigError(f"mode: {self.mode!r} must be 'proxy' or 'redirect'")
        if self.fork not in ("parallel", "sequential"):
            raise ConfigError(f"fork: {self.fork!r} must be 'parallel' or 'sequential'")
        if self.workers < 1:
            raise ConfigError("workers: must be at least 1")
        if self.log_level.lower() not in ("debug", "info", "warning", "error"):
            raise ConfigError(f"log_level: {self.log_level!r} must be debug/info/warning/error")
        for route in self.routes:
            if "=" not in route:
                raise ConfigError(f"routes: {route!r} is not REGEX=URI[,URI...]")
        if self.hook and ":" not in self.hook:
            raise ConfigError(f"hook: {self.hook!r} must be 'module:function'")
        r = self.registrar
        if not 0 < r.min_expires <= r.default_expires <= r.max_expires:
            raise ConfigError("registrar: need 0 < min_expires <= default_expires <= max_expires")
        if r.max_bindings < 1:
            raise ConfigError("registrar: max_bindings must be at least 1")
        for name in self.auth.algorithms:
            if name.upper() not in ("MD5", "SHA-256", "SHA-512-256"):
                raise ConfigError(f"auth.algorithms: unknown algorithm {name!r}")
        if not self.auth.algorithms:
            raise ConfigError("auth.algorithms: offer at least one algorithm")
        return self


def _build(cls: type[Any], data: dict[str, Any], where: str) -> Any:
    fields = {f.name: f for f in dataclasses.fields(cls)}
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        name = key.replace("-", "_")
        if name not in fields:
            raise ConfigError(f"{where}{key}: unknown setting")
        default = getattr(cls(), name)
        if dataclasses.is_dataclass(default):
            if not isinstance(value, dict):
                raise ConfigError(f"{where}{key}: must be a table")
            kwargs[name] = _build(type(default), value, f"{where}{key}.")
            continue
        expected = type(default)
        if expected is list:
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise ConfigError(f"{where}{key}: must be a list of strings")
        elif expected is bool:
            if not isinstance(value, bool):
                raise ConfigError(f"{where}{key}: must be true or false")
        elif expected is int:
            if not isinstance(value, int) or isinstance(value, bool):
                raise ConfigError(f"{where}{key}: must be an integer")
        elif not isinstance(value, expected):
            raise ConfigError(f"{where}{key}: must be a {expected.__name__}")
        kwargs[name] = value
    return cls(**kwargs)


def load_config(path: str | Path | None) -> ServerConfig:
    """Read a TOML file (``None``: the defaults). Raises ConfigError with the reason."""
    if path is None:
        return ServerConfig()
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    config: ServerConfig = _build(ServerConfig, data, "")
    return config
