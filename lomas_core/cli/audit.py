"""``lomas audit ENGINE``: the privacy audit of an engine, as an admin runs it before enabling it.

::

    lomas audit smartnoise_sql                       # built-in catalogue, built-in audit dataset
    lomas audit myengine --config lomas.yaml --queries my_queries.yaml --samples 5000
    lomas audit myengine --metadata meta.yaml --data table.parquet --queries q.yaml --json

The engine is built from the config's ``engines`` section when it names it (its options are
used), else with no options. D is the built-in audit dataset (the demo penguins table) or
``--metadata`` + ``--data`` (CSV or Parquet); D' adds one extreme individual. Prints a table
(query, charged epsilon, measured lower bound, verdict) on stdout and progress on stderr; exits
1 when any check fails.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from lomas_core.cli.common import UsageError, add_config_option, config_from_args, note

__all__ = ["register", "run_audit"]


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 4:
        raise argparse.ArgumentTypeError(f"invalid sample count {text!r}: use an integer >= 4")
    return int(text)


def _read_table(path: Path, metadata: Any) -> Any:
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    if path.suffix.lower() in (".parquet", ".pq"):
        return pq.read_table(path)
    kinds = {"string": pa.string(), "int": pa.int64(), "float": pa.float64(), "boolean": pa.bool_()}
    types = {n: kinds[c.type] for n, c in metadata.columns.items() if c.type in kinds}
    return pacsv.read_csv(path, convert_options=pacsv.ConvertOptions(
        column_types=types, strings_can_be_null=True))


def run_audit(args: argparse.Namespace) -> int:
    import yaml

    from lomas_core.metadata import Metadata
    from lomas_core.testing.privacy_audit.auditor import PrivacyAudit, Statistical
    from lomas_core.testing.privacy_audit.catalogue import (
        BUILTIN_CATALOGUES,
        builtin_catalogue,
        load_catalogue,
    )
    from lomas_core.testing.privacy_audit.neighbours import audit_dataset

    config = config_from_args(args)
    options = dict(config.engines.get(args.engine) or {})
    if (args.metadata is None) != (args.data is None):
        raise UsageError("give both --metadata and --data, or neither")
    if args.metadata is not None:
        metadata = Metadata.model_validate(yaml.safe_load(Path(args.metadata).read_text()))
        table = _read_table(Path(args.data), metadata)
    else:
        metadata, table = audit_dataset()
    if args.queries is not None:
        queries = load_catalogue(args.queries)
    elif args.engine in BUILTIN_CATALOGUES and args.metadata is None:
        queries = builtin_catalogue(args.engine, metadata)
    else:
        raise UsageError(f"no built-in catalogue for engine '{args.engine}' on this dataset: "
                         "give --queries FILE")
    if not queries:
        raise UsageError("the catalogue is empty")
    started = time.monotonic()

    def progress(message: str) -> None:
        if not args.quiet:
            print(f"[{time.monotonic() - started:6.1f}s] {message}", file=sys.stderr, flush=True)

    mode: Statistical = "all" if args.samples_for == "all" else "marked"
    with tempfile.TemporaryDirectory(prefix="lomas-audit-") as tmp:
        report = PrivacyAudit(args.engine, queries, workdir=Path(tmp), metadata=metadata,
                              table=table, engine_options=options, samples=args.samples,
                              plugin_paths=[Path(p) for p in args.plugin_path],
                              statistical=mode, alpha=args.alpha, progress=progress).run()
    if args.json:
        print(json.dumps(report.as_dict(), indent=2))
    else:
        print(report.table())
    if not report.ok:
        note("lomas audit: the engine failed the privacy audit")
    return 0 if report.ok else 1


def register(sub: Any) -> None:
    p = sub.add_parser("audit", help="measure an engine's privacy claims on neighbouring datasets",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("engine", metavar="ENGINE", help="the engine's configured name")
    p.add_argument("--queries", metavar="FILE", default=None,
                   help="YAML/JSON catalogue of queries (default: the engine's built-in one)")
    p.add_argument("--samples", metavar="N", type=_positive, default=2000,
                   help="releases per dataset for each statistically tested query (default 2000)")
    p.add_argument("--stat", dest="samples_for", choices=("all", "marked"), default="all",
                   help="statistical test for all answered queries (default) or those marked "
                        "'stat: true'")
    p.add_argument("--alpha", type=float, default=1e-3,
                   help="chance that an honest engine fails the statistical tests (default 1e-3)")
    p.add_argument("--metadata", metavar="FILE", default=None, help="metadata YAML of D")
    p.add_argument("--data", metavar="FILE", default=None, help="the table D (CSV or Parquet)")
    p.add_argument("--plugin-path", metavar="DIR", action="append", default=[],
                   help="a directory holding a plugin distribution that is not installed "
                        "(repeatable)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--quiet", action="store_true", help="no progress on stderr")
    add_config_option(p)
    p.set_defaults(func=run_audit)
