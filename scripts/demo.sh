#!/usr/bin/env bash
# Run a demo lomas server on http://127.0.0.1:8000 with a synthetic penguins dataset.
#
#   bash scripts/demo.sh            # LOMAS_DEMO_PORT=8001 to use another port
#
# Installs lomas (scripts/install.sh), writes the demo deployment into .lomas-demo/ (config, data,
# sqlite store, the researcher "alice" with a budget and a fresh token), prints the token and a
# python example, then serves in the foreground (Ctrl+C stops it).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
VENV="${LOMAS_VENV:-$ROOT/.venv}"
PORT="${LOMAS_DEMO_PORT:-8000}"
DIR="${LOMAS_DEMO_DIR:-.lomas-demo}"

bash scripts/install.sh "$VENV"
"$VENV/bin/lomas" demo --dir "$DIR" --port "$PORT"
echo "serving on http://127.0.0.1:$PORT (Ctrl+C to stop); API docs at http://127.0.0.1:$PORT/docs"
exec "$VENV/bin/lomas" serve --config "$DIR/lomas.yaml" --port "$PORT"
