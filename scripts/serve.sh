#!/usr/bin/env bash
# Install core-connectors with the sleep, webhook and sensor connectors into .venv (from this checkout) and start
# the service on port 8000 (metrics on 9090). Extra arguments go to `core-connectors serve`, e.g.
# `scripts/serve.sh --port 8001`.
set -euo pipefail
cd "$(dirname "$0")/.."
PACKAGES=(./core ./connectors/sleep ./connectors/webhook ./connectors/sensor)
if ! .venv/bin/python -c "import core_connectors_sleep, core_connectors_webhook, core_connectors_sensor" 2>/dev/null; then
  [ -x .venv/bin/python ] || python3 -m venv .venv
  .venv/bin/pip install --quiet "${PACKAGES[@]}"
fi
exec .venv/bin/core-connectors serve "$@"
