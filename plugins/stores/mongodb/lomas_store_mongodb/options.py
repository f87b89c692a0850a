"""The ``store.options`` of the mongodb store, and the pymongo client they describe.

Example::

    store:
      name: mongodb
      options:
        uri_secret: mongo_uri            # or uri: mongodb://host:27017 (no password inline)
        database: lomas
        server_selection_timeout_ms: 5000
        write_concern: {w: majority, j: true}
        read_concern: majority
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from lomas_core.api import (
    ConfigError,
    PluginContext,
    validation_message,
)

__all__ = ["MongoOptions", "WriteConcernOptions", "describe_hosts", "parse_options"]


class WriteConcernOptions(BaseModel):
    """MongoDB write concern. ``j`` may be set to null for servers that refuse journaling options."""

    model_config = ConfigDict(extra="forbid")

    w: int | str | None = "majority"
    j: bool | None = True
    wtimeout_ms: int | None = Field(default=None, ge=0)

    def kwargs(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.w is not None:
            out["w"] = self.w
        if self.j is not None:
            out["j"] = self.j
        if self.wtimeout_ms is not None:
            out["wtimeout"] = self.wtimeout_ms
        return out


class MongoOptions(BaseModel):
    """Validated options of the ``mongodb`` store."""

    model_config = ConfigDict(extra="forbid")

    uri: str | None = None
    #: Name of a config secret holding the whole URI (use this when it carries credentials).
    uri_secret: str | None = None
    database: str = Field(default="lomas", pattern=r"^[A-Za-z0-9_\-]{1,63}$")
    max_pool_size: int = Field(default=100, ge=1)
    min_pool_size: int = Field(default=0, ge=0)
    server_selection_timeout_ms: int = Field(default=5000, ge=1)
    connect_timeout_ms: int = Field(default=5000, ge=1)
    socket_timeout_ms: int | None = Field(default=30000, ge=1)
    write_concern: WriteConcernOptions = Field(default_factory=WriteConcernOptions)
    #: Read concern for every read (budgets included): majority by default, linearizable possible.
    read_concern: Literal["local", "majority", "linearizable", "available", "snapshot"] | None = \
        "majority"
    #: Digits of one integer unit of epsilon / delta (see ``units.py``). Fixed once data exists.
    epsilon_digits: int = Field(default=12, ge=0, le=18)
    delta_digits: int = Field(default=18, ge=0, le=18)
    #: Pending charges with no registered owner (written by older versions, or by a server that
    #: closed cleanly) younger than this are left alone by recovery.
    recovery_grace_seconds: float = Field(default=600.0, ge=0)
    #: A token's last-used time is written at most this often, off the request path.
    token_last_used_seconds: float = Field(default=60.0, ge=0, lt=10**7)
    #: A server that has not renewed its heartbeat for this long is dead to the others: its
    #: pending queries are archived as failed (charge kept). It renews every third of it.
    lease_seconds: float = Field(default=30.0, ge=0.1, le=3600)
    #: Extra keyword arguments for ``pymongo.MongoClient`` (tls options, appname, ...).
    client_options: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _one_uri(self) -> MongoOptions:
        if (self.uri is None) == (self.uri_secret is None):
            raise ValueError("give exactly one of 'uri' or 'uri_secret'")
        if self.uri is not None and "@" in self.uri.split("://", 1)[-1].split("/", 1)[0]:
            # Secrets are never inline in the config.
            raise ValueError("'uri' carries credentials: put the URI in a secret and name it "
                             "with 'uri_secret'")
        return self

    def resolve_uri(self, context: PluginContext | None) -> str:
        if self.uri is not None:
            return self.uri
        assert self.uri_secret is not None
        if context is None:
            raise ConfigError("mongodb store: 'uri_secret' needs the server config to read secrets")
        return context.secret(self.uri_secret)

    def client_kwargs(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = {
            "maxPoolSize": self.max_pool_size,
            "minPoolSize": self.min_pool_size,
            "serverSelectionTimeoutMS": self.server_selection_timeout_ms,
            "connectTimeoutMS": self.connect_timeout_ms,
            "tz_aware": True,
        }
        if self.socket_timeout_ms is not None:
            kwargs["socketTimeoutMS"] = self.socket_timeout_ms
        kwargs.update(self.client_options)
        return kwargs


def parse_options(options: Mapping[str, Any]) -> MongoOptions:
    """Validate raw options; ConfigError lists the offending fields (never their values)."""
    try:
        return MongoOptions.model_validate(dict(options))
    except ValidationError as exc:
        raise ConfigError("mongodb store options are invalid:\n  " + validation_message(
            exc, limit=None, default="options", separator="\n  ")) from None


def describe_hosts(uri: str) -> str:
    """The host list of a URI for error messages: never the user name or password."""
    try:
        from pymongo.uri_parser import parse_uri

        nodes = parse_uri(uri, validate=False, connect_timeout=1).get("nodelist") or []
        if nodes:
            return ", ".join(f"{host}:{port}" for host, port in nodes)
    except Exception:  # noqa: BLE001 - a bad URI still gets a safe description
        pass
    rest = uri.split("://", 1)[-1]
    rest = rest.rsplit("@", 1)[-1]
    return rest.split("/", 1)[0].split("?", 1)[0] or "?"
