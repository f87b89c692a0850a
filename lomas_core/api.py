"""The public facade: everything a plugin may import from lomas, and nothing else.

Plugins (engines, adapters, stores, observers) import from this module only; a test
(``tests/core/test_plugin_imports.py``) scans every plugin's runtime package and refuses any other
``lomas_core`` import. Tests may also use :mod:`lomas_core.testing`. What is here is the contract:
the base class of each kind with its rules (:mod:`lomas_core.engine`, :mod:`lomas_core.adapter`,
:mod:`lomas_core.store`, :mod:`lomas_core.observer`), the broadcast hooks, and the helpers every
plugin of a kind needs (errors, budgets, metadata, results, the shared readers, address checks,
the state format, leases and token bookkeeping of stores, the authenticator contract, push-down SQL sources,
the threads an engine may use in its execution worker).
"""

from __future__ import annotations

from lomas_core import results
from lomas_core.adapter import Adapter, Loaded
from lomas_core.admin_log import note_ids
from lomas_core.authenticator import Authenticator, Identity, reject
from lomas_core.budget import DECIMAL_CONTEXT, Budget, to_decimal
from lomas_core.config import Config, PluginConfig, SecretRef
from lomas_core.context import PluginContext
from lomas_core.data import DataHandle, Memo
from lomas_core.digest import short_digest
from lomas_core.dummy import metadata_hash
from lomas_core.engine import DatasetInfo, Engine
from lomas_core.errors import (
    AccessDenied,
    BudgetExceeded,
    ChargedFailure,
    ConfigError,
    Conflict,
    DatasetUnavailable,
    IdempotencyConflict,
    IdentityProviderUnavailable,
    InvalidQuery,
    InvalidRequest,
    LomasError,
    NotFound,
    PluginError,
    QueryFailed,
    StoreUnavailable,
    Suspended,
)
from lomas_core.execution.threads import worker_threads
from lomas_core.hookspecs import hookimpl
from lomas_core.io import (
    check_format,
    detect_format,
    read_metadata,
    read_metadata_bytes,
    read_table_bytes,
    read_table_from_fs,
)
from lomas_core.metadata import ColumnMetadata, Metadata
from lomas_core.models import (
    NAME_PATTERN,
    AdminEvent,
    ArchiveRecord,
    DatasetDescription,
    Grant,
    QueryStatus,
    TokenInfo,
    User,
    new_dataset_id,
    new_grant_id,
    new_token_id,
    new_user_id,
    utcnow,
)
from lomas_core.network import (
    AddressPolicy,
    AddressRefused,
    Resolver,
    check_proxy_url,
    resolve_checked,
)
from lomas_core.observer import Observer
from lomas_core.paths import (
    AllowedDirs,
    FileDatasetOptions,
    file_format,
    files_version,
    resolve_relative_options,
)
from lomas_core.plugin_base import NoOptions, PluginBase
from lomas_core.reads import note_read
from lomas_core.remote import (
    AWS,
    Credentials,
    HeaderSecret,
    endpoint_key,
    endpoint_problem,
    guarded_resolver,
    header_problems,
    http_secret_problem,
    parse_credentials,
    s3_secret_problem,
    url_under,
)
from lomas_core.source import TABLE_NAME, SourceHandle, SqlSource, SqlTarget, quote, sql_literal
from lomas_core.source_view import bounded_per_person, in_categories
from lomas_core.store import (
    MAX_PAGE,
    ArchiveFilter,
    ArchivePage,
    BudgetStore,
    decode_cursor,
    encode_cursor,
)
from lomas_core.stores.lease import LeaseKeeper, process_gone, this_process
from lomas_core.stores.state import Token, build_state, format_time, parse_state, parse_time
from lomas_core.tokens import LastUsed
from lomas_core.validation import parse_options, validation_message

__all__ = [
    "AWS", "DECIMAL_CONTEXT", "MAX_PAGE", "NAME_PATTERN", "TABLE_NAME", "AccessDenied",
    "Adapter", "AddressPolicy", "AddressRefused", "AdminEvent", "AllowedDirs", "ArchiveFilter",
    "ArchivePage", "ArchiveRecord", "Authenticator", "Budget", "BudgetExceeded", "BudgetStore",
    "ChargedFailure", "ColumnMetadata", "Config", "ConfigError", "Conflict", "Credentials",
    "DataHandle", "DatasetDescription", "DatasetInfo", "DatasetUnavailable", "Engine",
    "FileDatasetOptions", "Grant", "HeaderSecret", "IdempotencyConflict", "Identity",
    "IdentityProviderUnavailable", "InvalidQuery", "InvalidRequest", "LastUsed", "LeaseKeeper",
    "Loaded", "LomasError", "Memo", "Metadata", "NoOptions", "NotFound", "Observer",
    "PluginBase", "PluginConfig", "PluginContext", "PluginError", "QueryFailed", "QueryStatus",
    "Resolver", "SecretRef", "SourceHandle", "SqlSource", "SqlTarget", "StoreUnavailable",
    "Suspended", "Token", "TokenInfo", "User", "bounded_per_person", "build_state",
    "check_format", "check_proxy_url", "decode_cursor", "detect_format", "encode_cursor",
    "endpoint_key", "endpoint_problem", "file_format", "files_version", "format_time",
    "guarded_resolver", "header_problems", "hookimpl", "http_secret_problem", "in_categories",
    "metadata_hash", "new_dataset_id", "new_grant_id", "new_token_id", "new_user_id",
    "note_ids", "note_read", "parse_credentials", "parse_options", "parse_state", "parse_time",
    "process_gone", "quote", "read_metadata", "read_metadata_bytes", "read_table_bytes",
    "read_table_from_fs", "reject", "resolve_checked", "resolve_relative_options", "results",
    "s3_secret_problem", "short_digest", "sql_literal", "this_process", "to_decimal",
    "url_under", "utcnow", "validation_message", "worker_threads",
]
