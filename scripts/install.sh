#!/usr/bin/env bash
# Install lomas (core, plugins, client) into a virtual environment.
#
#   bash scripts/install.sh [VENV_DIR]        # default VENV_DIR: <repo>/.venv
#
# Creates the venv when missing, then installs the core, every plugin distribution under
# plugins/*/*/ and lomas_client/, with their test/dev extras, pinning opendp[polars]==0.14.2,
# smartnoise-sql==1.0.10, diffprivlib==0.6.6 and scikit-learn==1.6.1. A second run with nothing
# changed takes a second (an install stamp in the venv records what was installed).
#
# Environment:
#   LOMAS_PLUGINS="engines/opendp adapters/s3"  only these plugin dirs (default: all that exist);
#                                               with a selection, the engines' libraries are pinned
#                                               but only installed if a selected plugin needs them
#   LOMAS_EDITABLE=0        regular (non-editable) installs, e.g. for container images
#   LOMAS_EXTRAS=0          no test/dev extras (default: install them)
#   LOMAS_CLIENT=0          skip lomas_client/
#   PYTHON=python3.11       interpreter used to create the venv (3.11 or newer)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${1:-$ROOT/.venv}"
PYTHON="${PYTHON:-python3}"
EDITABLE="${LOMAS_EDITABLE:-1}"
EXTRAS="${LOMAS_EXTRAS:-1}"
WITH_CLIENT="${LOMAS_CLIENT:-1}"
SELECTION="${LOMAS_PLUGINS:-}"

log() { printf 'install.sh: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

if [ ! -x "$VENV/bin/python" ]; then
    command -v "$PYTHON" >/dev/null 2>&1 || die "$PYTHON not found (set PYTHON=/path/to/python3.11+)"
    "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
        || die "lomas needs Python 3.11 or newer; $PYTHON is $("$PYTHON" -V 2>&1)"
    log "creating virtual environment $VENV"
    "$PYTHON" -m venv "$VENV" || die "cannot create a venv (Debian/Ubuntu: apt-get install python3-venv)"
fi
PY="$VENV/bin/python"
"$PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
    || die "$VENV has $("$PY" -V 2>&1); lomas needs Python 3.11 or newer"

# -- what to install --------------------------------------------------------------------------------
plugin_dirs=()
if [ -n "$SELECTION" ]; then
    for rel in $SELECTION; do
        rel="${rel#plugins/}"; rel="${rel%/}"
        [ -f "$ROOT/plugins/$rel/pyproject.toml" ] || die "LOMAS_PLUGINS: no plugin distribution at plugins/$rel"
        plugin_dirs+=("$ROOT/plugins/$rel")
    done
else
    for pyproject in "$ROOT"/plugins/*/*/pyproject.toml; do
        [ -f "$pyproject" ] && plugin_dirs+=("$(dirname "$pyproject")")
    done
fi

# Extras a distribution declares among the wanted ones, as "[a,b]" (empty when none).
extras_of() {
    [ "$EXTRAS" = "0" ] && return 0
    "$PY" - "$1/pyproject.toml" "$2" <<'PYEOF'
import sys, tomllib
with open(sys.argv[1], "rb") as handle:
    declared = tomllib.load(handle).get("project", {}).get("optional-dependencies", {})
wanted = [e for e in sys.argv[2].split(",") if e in declared]
print(f"[{','.join(wanted)}]" if wanted else "")
PYEOF
}

targets=()
add_target() {  # dir, wanted extras
    local spec="$1$(extras_of "$1" "$2")"
    if [ "$EDITABLE" = "0" ]; then targets+=("$spec"); else targets+=("-e" "$spec"); fi
}
add_target "$ROOT" "test,dev"
for dir in "${plugin_dirs[@]}"; do add_target "$dir" "test"; done
[ "$WITH_CLIENT" = "0" ] || [ ! -f "$ROOT/lomas_client/pyproject.toml" ] \
    || add_target "$ROOT/lomas_client" "opendp,polars,test"

constraints="$VENV/lomas-constraints.txt"
printf 'opendp==0.14.2\nsmartnoise-sql==1.0.10\ndiffprivlib==0.6.6\nscikit-learn==1.6.1\n' > "$constraints"
extra_reqs=()
if [ -z "$SELECTION" ]; then
    extra_reqs+=("opendp[polars]==0.14.2" "smartnoise-sql==1.0.10")
fi
if [ "$EXTRAS" != "0" ]; then
    extra_reqs+=("pytest-xdist>=3")
fi

# -- skip when nothing changed ---------------------------------------------------------------------
stamp_file="$VENV/.lomas-install-stamp"
stamp="$({
    "$PY" -V 2>&1
    echo "$EDITABLE $EXTRAS $WITH_CLIENT ${targets[*]} ${extra_reqs[*]}"
    cat "$constraints" "$ROOT/pyproject.toml"
    for dir in "${plugin_dirs[@]}"; do cat "$dir/pyproject.toml"; done
    [ ! -f "$ROOT/lomas_client/pyproject.toml" ] || cat "$ROOT/lomas_client/pyproject.toml"
} | "$PY" -c 'import hashlib, sys; print(hashlib.sha256(sys.stdin.buffer.read()).hexdigest())')"
if [ -f "$stamp_file" ] && [ "$(cat "$stamp_file")" = "$stamp" ] \
        && "$PY" -c 'import lomas_core.cli' >/dev/null 2>&1; then
    log "already installed in $VENV (nothing changed)"
    exit 0
fi

# -- install -------------------------------------------------------------------------------------------
# pip's own output (build-backend chatter included) goes to a log file; each step prints one line,
# and a failing step prints the end of the log.
install_log="$VENV/lomas-install.log"
: > "$install_log"
step() {  # "n/N what" command...
    local label="$1"; shift
    log "step $label"
    if ! "$@" >>"$install_log" 2>&1; then
        tail -n 40 "$install_log" >&2
        die "step $label failed (full log: $install_log)"
    fi
}
log "installing into $VENV: core, ${#plugin_dirs[@]} plugin(s)$([ "$WITH_CLIENT" = "0" ] || echo ", client")"
export PIP_DISABLE_PIP_VERSION_CHECK=1
step "1/4: pip, setuptools, wheel" \
    "$PY" -m pip install --quiet --upgrade pip "setuptools>=77" wheel
step "2/4: core, plugins, client and their libraries (the longest step: a few minutes)" \
    "$PY" -m pip install --quiet --no-build-isolation -c "$constraints" "${targets[@]}" "${extra_reqs[@]}"
# The local adapter moved into the core: an old separate install would claim its name twice.
if "$PY" -m pip show --quiet lomas-adapter-local >/dev/null 2>&1; then
    step "2b/4: removing lomas-adapter-local (now built into lomas-core)" \
        "$PY" -m pip uninstall --quiet --yes lomas-adapter-local
fi
step "3/4: checking that lomas imports" "$PY" -c 'import lomas_core.cli'
if [ "$WITH_CLIENT" != "0" ] && [ -f "$ROOT/lomas_client/pyproject.toml" ]; then
    # The client as a wheel, for researchers' machines: pip install dist/lomas_client-*.whl
    # ("pip install lomas-client" from PyPI is a different project).
    step "4/4: client wheel in $ROOT/dist" \
        "$PY" -m pip wheel --quiet --no-deps --no-build-isolation -w "$ROOT/dist" "$ROOT/lomas_client"
fi
echo "$stamp" > "$stamp_file"
log "done: $("$VENV/bin/lomas" --version)"
