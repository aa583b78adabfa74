#!/usr/bin/env bash
# Install the test tools and run the whole matrix (every package on Python 3.10-3.13, cross-package tests,
# lint). Extra arguments go to nox, e.g. `scripts/test.sh -s tests-core-3.12`.
set -euo pipefail
cd "$(dirname "$0")/.."

# Python 3.10-3.13 for the matrix: pyenv's builds when present, else whatever is on PATH.
for version in 3.10 3.11 3.12 3.13; do
  for dir in "${PYENV_ROOT:-$HOME/.pyenv}"/versions/"$version".*/bin; do
    [ -x "$dir/python$version" ] && PATH="$PATH:$dir" && break
  done
done
export PATH

TOOLS=.nox/.tools
if [ ! -x "$TOOLS/bin/nox" ]; then
  python3 -m venv "$TOOLS"
  "$TOOLS/bin/pip" install --quiet "nox>=2024.10" "uv>=0.4"
fi
export PATH="$PWD/$TOOLS/bin:$PATH"
exec nox "$@"
