#!/usr/bin/env bash
# Install core-connectors with the sleep connector into .venv (from this checkout) and start the service on
# port 8000 (metrics on 9090). Extra arguments go to `core-connectors serve`, e.g. `scripts/serve.sh --port 8001`.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/core-connectors ]; then
  python3 -m venv .venv
  .venv/bin/pip install --quiet ./core ./connectors/sleep
fi
exec .venv/bin/core-connectors serve "$@"
