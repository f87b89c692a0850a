#!/usr/bin/env bash
# Install lomas (scripts/install.sh), run the whole test suite with 2 workers, then ruff and mypy.
#
#   bash scripts/test.sh                 # everything (slow statistical tests stay opt-in)
#   bash scripts/test.sh -k cli -x       # extra arguments go to pytest
#   bash scripts/test.sh --run-slow      # include @pytest.mark.slow tests
#
# Tests start the servers they need themselves (uvicorn, moto, the MongoDB wire server); this
# script starts nothing. Exits non-zero when a test fails, no test was collected, or ruff or mypy complains.
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
VENV="${LOMAS_VENV:-$ROOT/.venv}"
WORKERS="${LOMAS_TEST_WORKERS:-2}"

bash scripts/install.sh "$VENV" || { echo "test.sh: install failed" >&2; exit 1; }
PY="$VENV/bin/python"

paths=(tests plugins)
[ -d lomas_client/tests ] && paths+=(lomas_client/tests)

"$PY" -m pytest -n "$WORKERS" "${paths[@]}" "$@"
tests_rc=$?
if [ "$tests_rc" -eq 5 ]; then
    echo "test.sh: pytest collected no tests; treating that as a failure" >&2
    tests_rc=1
fi

"$PY" -m ruff check .
lint_rc=$?
# Test folders are excluded: each plugin has its own tests/conftest.py, which mypy would see as
# duplicate modules.
"$PY" -m mypy --exclude /tests/ lomas_core plugins lomas_client/src || lint_rc=1

if [ "$tests_rc" -ne 0 ] || [ "$lint_rc" -ne 0 ]; then
    echo "test.sh: FAILED (pytest exit $tests_rc, lint/type exit $lint_rc)" >&2
    exit 1
fi
echo "test.sh: all tests, lint and type checks passed"
