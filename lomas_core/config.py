"""The server configuration: one YAML file, validated by :class:`Config`.

Example::

    server: {host: 127.0.0.1, port: 8000, workers: 1}
    store: {name: sqlite, options: {path: ./lomas.db}}
    engines: {smartnoise_sql: {}, opendp: {honest_but_curious: false}}
    adapters: {local: {allowed_dirs: [./data]}}
    limits: {max_body_bytes: 1048576, query_timeout_seconds: 60, max_inflight_per_user: 4}
    cache: {max_bytes: 2147483648, revalidate_seconds: 30}
    execution: {workers: 4, memory_mb: 4096, cpu_seconds: 300}
    secrets:
      s3_readonly: {env: S3_CREDENTIALS, adapters: [s3], endpoints: [https://s3.example.org],
                    buckets: [research-data]}
      admin_token: {file: /run/secrets/admin-token}
    bootstrap_admin: {user: admin, token: admin_token}
    authenticators: [token]          # or {oidc: {issuer: ..., audience: ...}, token: {}}

Plugin sections map a plugin's short name to its options; enabling a third-party plugin is one line.
Secrets are never inline: they name an environment variable or a file. A secret is usable by an
adapter only when its entry names that adapter under ``adapters`` (and says where it may be sent);
an unscoped secret is for the core and the store only (``bootstrap_admin``, a store URI).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from lomas_core.errors import ConfigError
from lomas_core.validation import validation_message

__all__ = [
    "BootstrapAdmin",
    "CacheConfig",
    "Config",
    "ExecutionConfig",
    "LimitsConfig",
    "LoggingConfig",
    "MetricsConfig",
    "ObservabilityConfig",
    "PluginConfig",
    "SecretRef",
    "ServerConfig",
    "TracingConfig",
    "config_path_from_env",
    "load_config",
    "resolve_secret",
]


class SecretRef(BaseModel):
    """Where a secret lives (an environment variable or a file, exactly one) and who may use it.

    Without ``adapters`` a secret is for the core and the store only: no adapter may read it. A
    secret scoped to an adapter also says where that adapter may send it: hosts or URL prefixes
    (``http``), endpoints and buckets (``s3``). Adapters check these before any network I/O.
    """

    model_config = ConfigDict(extra="forbid")

    env: str | None = None
    file: str | None = None
    #: Adapters that may use this secret (by short name); none when unset.
    adapters: list[str] | None = None
    #: Hosts a network adapter may send the secret to (``http``: exact host names).
    allowed_hosts: list[str] | None = None
    #: URL prefixes (folders) a network adapter may send the secret to (``http``).
    allowed_prefixes: list[str] | None = None
    #: S3 endpoint URLs the credentials may be used with; ``aws`` stands for AWS's own endpoints.
    endpoints: list[str] | None = None
    #: Buckets the credentials may be used with (``s3``).
    buckets: list[str] | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> SecretRef:
        if (self.env is None) == (self.file is None):
            raise ValueError("a secret names exactly one of 'env' or 'file'")
        scoped = (self.allowed_hosts, self.allowed_prefixes, self.endpoints, self.buckets)
        if not self.adapters and any(v is not None for v in scoped):
            raise ValueError("a secret that says where it may be sent must also name the "
                             "adapters that may use it ('adapters: [...]')")
        return self

    def usable_by(self, adapter: str) -> bool:
        """Whether the adapter called ``adapter`` may read this secret at all."""
        return adapter in (self.adapters or [])


class ServerConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    workers: int = Field(default=1, ge=1, le=64)
    log_level: str = "info"


class PluginConfig(BaseModel):
    """A plugin chosen by short name with its options."""

    model_config = ConfigDict(extra="forbid")

    name: str
    options: dict[str, Any] = Field(default_factory=dict)


class LimitsConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    max_body_bytes: int = Field(default=1_048_576, ge=1024)
    query_timeout_seconds: float = Field(default=120.0, gt=0)
    #: Cost estimation is refused (422, nothing charged) past this; some SQL makes a library's
    #: accountant search for minutes, which would otherwise tie up a worker for free.
    cost_timeout_seconds: float = Field(default=30.0, gt=0)
    max_inflight_per_user: int | None = Field(default=None, ge=1)
    max_dummy_rows: int = Field(default=100_000, ge=1)
    #: Largest table read into memory from a push-down source for an engine that cannot run
    #: there (OpenDP, DiffPrivLib); ``None``: no limit. A dataset whose metadata declares more
    #: ``rows`` is refused before any charge; otherwise the source's row count is checked after.
    max_load_rows: int | None = Field(default=10_000_000, ge=1)
    #: Largest such table in Arrow bytes, checked while it streams in (``None``: no limit).
    max_load_bytes: int | None = Field(default=2 * 1024**3, ge=1)


class CacheConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    max_bytes: int = Field(default=4 * 1024**3, ge=0)
    revalidate_seconds: float = Field(default=30.0, ge=0)


class ExecutionConfig(BaseModel):
    """Where engine code runs: a pool of isolated worker processes (per HTTP process).

    ``workers: 0`` runs engines in threads of the server process (tests and development only: a
    query can then take the server down). ``None`` means one worker per core.
    """

    model_config = ConfigDict(extra="forbid")

    workers: int | None = Field(default=None, ge=0, le=256)
    #: Address-space limit of each worker (RLIMIT_AS); a query past it fails, the worker is replaced.
    memory_mb: int = Field(default=4096, ge=256)
    #: CPU seconds one task may use in a worker (RLIMIT_CPU, a backstop behind the wall-clock
    #: timeouts in ``limits``).
    cpu_seconds: int = Field(default=300, ge=1)
    #: Threads each worker's engines may use (DuckDB's ``threads``, polars' pool); ``None``
    #: divides the cores of this HTTP process among its workers (see :meth:`thread_count`).
    #: Engines in the server process (``workers: 0``) keep their libraries' defaults.
    threads_per_worker: int | None = Field(default=None, ge=1, le=256)
    #: Seconds a new worker may take to import and warm up its engines.
    start_timeout_seconds: float = Field(default=120.0, gt=0)
    #: Where loaded datasets are written once as Arrow IPC files that workers memory-map;
    #: default a per-user folder in the system temporary directory (shared by the HTTP processes).
    data_dir: str | None = None

    @staticmethod
    def cores() -> int:
        """The usable cores shared among the HTTP processes ``lomas serve`` started
        (``$LOMAS_HTTP_PROCESSES``): this HTTP process's share, at least 1."""
        try:
            cores = len(os.sched_getaffinity(0))
        except AttributeError:  # not Linux
            cores = os.cpu_count() or 1
        http = os.environ.get("LOMAS_HTTP_PROCESSES", "1")
        return max(1, cores // max(1, int(http) if http.isdigit() else 1))

    def worker_count(self) -> int:
        """Worker processes of this HTTP process: ``workers``, or its share of the cores."""
        if self.workers is not None:
            return self.workers
        return self.cores()

    def thread_count(self) -> int:
        """Threads each worker's engines may use: ``threads_per_worker``, or this HTTP process's
        share of the cores divided among its workers (at least 1), so that busy workers together
        do not start more threads than there are cores."""
        if self.threads_per_worker is not None:
            return self.threads_per_worker
        return max(1, self.cores() // max(1, self.worker_count()))


class MetricsConfig(BaseModel):
    """Prometheus metrics. Served without auth on the API port at ``path`` by default (see
    docs/observability.md); ``port`` moves them to a listener of their own, ``enabled: false``
    turns them off."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    path: str = Field(default="/metrics", pattern=r"^/[A-Za-z0-9_./-]*$")
    #: A separate port for the metrics (on ``host``); then the API port does not serve them.
    port: int | None = Field(default=None, ge=1, le=65535)
    host: str = "0.0.0.0"


class LoggingConfig(BaseModel):
    """``format: json`` writes one JSON object per log line (see docs/observability.md)."""

    model_config = ConfigDict(extra="forbid")

    format: Literal["text", "json"] = "text"


class TracingConfig(BaseModel):
    """OpenTelemetry traces over OTLP/HTTP (needs ``lomas[otel]``); nothing is exported unless
    ``enabled``."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = False
    #: The collector's traces URL, e.g. ``http://otel-collector:4318/v1/traces``; unset: the
    #: exporter's default (``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` or localhost:4318).
    endpoint: str | None = None
    service_name: str = "lomas"
    #: A secret holding ``name=value[,name=value]`` headers for the collector (e.g. an API key).
    headers_secret: str | None = None
    timeout_seconds: float = Field(default=10.0, gt=0)


class ObservabilityConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    metrics: MetricsConfig = Field(default_factory=MetricsConfig)
    tracing: TracingConfig = Field(default_factory=TracingConfig)
    #: Label the budget counters with dataset names (off: one aggregate, ``dataset="_all"``).
    label_datasets: bool = False


class BootstrapAdmin(BaseModel):
    """Create ``user`` as admin at start-up with the token held in the named secret, if absent."""

    model_config = ConfigDict(extra="forbid")

    user: str = "admin"
    token: str


class Config(BaseModel):
    """The whole server configuration."""

    model_config = ConfigDict(extra="forbid")

    server: ServerConfig = Field(default_factory=ServerConfig)
    store: PluginConfig = Field(
        default_factory=lambda: PluginConfig(name="sqlite", options={"path": "lomas.db"}))
    engines: dict[str, dict[str, Any]] = Field(default_factory=dict)
    adapters: dict[str, dict[str, Any]] = Field(default_factory=lambda: {"local": dict[str, Any]()})
    #: Observer plugins (entry-point group ``lomas.plugins``) to enable, with their options.
    plugins: dict[str, dict[str, Any]] = Field(default_factory=dict)
    limits: LimitsConfig = Field(default_factory=LimitsConfig)
    cache: CacheConfig = Field(default_factory=CacheConfig)
    execution: ExecutionConfig = Field(default_factory=ExecutionConfig)
    secrets: dict[str, SecretRef] = Field(default_factory=dict)
    bootstrap_admin: BootstrapAdmin | None = None
    observability: ObservabilityConfig = Field(default_factory=ObservabilityConfig)
    #: Authenticators tried in order on every request, by short name with their options; a list of
    #: names (``[token]``, the default) or of one-entry mappings (``[{oidc: {...}}, token]``) too.
    authenticators: dict[str, dict[str, Any]] = Field(
        default_factory=lambda: {"token": dict[str, Any]()}, min_length=1)
    logging: LoggingConfig = Field(default_factory=LoggingConfig)
    #: Directory that relative paths in options are resolved against (the config file's folder).
    base_dir: str = "."

    @model_validator(mode="before")
    @classmethod
    def _none_sections(cls, data: Any) -> Any:
        # `engines:` with nothing under it parses as None in YAML; treat it as empty.
        if isinstance(data, dict):
            for key in ("engines", "adapters", "plugins", "secrets"):
                if key in data and data[key] is None:
                    data[key] = {}
            auth = data.get("authenticators")
            if isinstance(auth, list) and all(
                    isinstance(i, str) or (isinstance(i, dict) and len(i) == 1) for i in auth):
                # [token] or [{oidc: {...}}, token]: names, or one-entry mappings with options
                data["authenticators"] = dict(
                    (i, {}) if isinstance(i, str) else next(iter(i.items())) for i in auth)
            for section in ("engines", "adapters", "authenticators", "plugins"):
                value = data.get(section)
                if isinstance(value, dict):
                    data[section] = {k: (v or {}) for k, v in value.items()}
        return data

    def resolve_path(self, path: str | os.PathLike[str]) -> Path:
        """A path from the config, relative to the config file's directory."""
        p = Path(path).expanduser()
        return p if p.is_absolute() else (Path(self.base_dir) / p).resolve()

    def secret_ref(self, name: str, *, adapter: str | None = None) -> SecretRef:
        """The named secret's entry (never its value).

        With ``adapter``, only when the entry names that adapter under ``adapters``; otherwise
        ConfigError says how to scope it. Messages name the secret, never its value.
        """
        ref = self.secrets.get(name)
        if ref is None:
            known = ", ".join(sorted(self.secrets)) or "none"
            raise ConfigError(f"secret '{name}' is not defined in the config; defined: {known}")
        if adapter is not None and not ref.usable_by(adapter):
            if not ref.adapters:
                raise ConfigError(
                    f"secret '{name}' is not scoped to any adapter, so no adapter may use it; "
                    f"add 'adapters: [{adapter}]' and where it may be sent to its entry under "
                    "secrets (see docs/admin.md)")
            raise ConfigError(f"secret '{name}' is scoped to the adapters "
                              f"{', '.join(ref.adapters)}, not to '{adapter}'")
        return ref

    def secret(self, name: str, *, adapter: str | None = None) -> str:
        """The value of the named secret (with ``adapter``: only if scoped to it, see
        :meth:`secret_ref`). ConfigError names the secret, never its value."""
        return resolve_secret(self.secret_ref(name, adapter=adapter), name=name, base=self)


def resolve_secret(ref: SecretRef, *, name: str = "?", base: Config | None = None) -> str:
    """Read a secret's value from its environment variable or file."""
    if ref.env is not None:
        value = os.environ.get(ref.env)
        if value is None:
            raise ConfigError(f"secret '{name}': environment variable {ref.env} is not set")
        return value
    assert ref.file is not None
    path = base.resolve_path(ref.file) if base else Path(ref.file)
    try:
        return path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError(f"secret '{name}': cannot read file {path}: {exc.strerror}") from None


def config_path_from_env() -> str | None:
    return os.environ.get("LOMAS_CONFIG")


def load_config(path: str | os.PathLike[str] | None) -> Config:
    """Read and validate a YAML config. ``None`` gives the embedded defaults.

    Raises:
        ConfigError: unreadable file, bad YAML, or values the model refuses (with the field path).
    """
    if path is None:
        return Config()
    p = Path(path)
    try:
        raw = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
    except OSError as exc:
        raise ConfigError(f"cannot read config {p}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"config {p} is not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"config {p} must be a mapping")
    raw.setdefault("base_dir", str(p.resolve().parent))
    try:
        return Config.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(f"config {p} is invalid:\n  "
                          + validation_message(exc, limit=None, default="", separator="\n  ")) from None
