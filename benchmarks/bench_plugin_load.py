"""Start-up cost of the plugin seam: checking, importing and building the enabled plugins.

Each measurement runs in a fresh interpreter (imports included), so it is what a server, a worker
process or a ``lomas admin`` command pays. Prints the median of ``--runs`` runs per config.

    python benchmarks/bench_plugin_load.py --runs 5
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys

CONFIGS = {
    "core only (local, no engines)": {"adapters": {"local": {}}},
    "listing (no import)": None,
    "3 engines + local/http/s3": {"engines": {"opendp": {}, "smartnoise_sql": {}, "diffprivlib": {}},
                                  "adapters": {"local": {}, "http": {}, "s3": {}}},
}

_CODE = """
import json, sys, time
t0 = time.perf_counter()
from lomas_core.config import Config
from lomas_core.plugins import installed_plugins, load_plugins
raw = json.loads(sys.argv[1])
if raw is None:
    installed_plugins()
else:
    load_plugins(Config.model_validate(raw), with_store=False).close()
print((time.perf_counter() - t0) * 1000)
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args(argv)
    print(f"{'config':<32} {'median ms':>10} {'min ms':>8}")
    for label, config in CONFIGS.items():
        times = [float(subprocess.run([sys.executable, "-c", _CODE, json.dumps(config)], check=True,
                                      capture_output=True, text=True).stdout.strip())
                 for _ in range(args.runs)]
        print(f"{label:<32} {statistics.median(times):>10.0f} {min(times):>8.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
