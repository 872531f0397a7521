#!/usr/bin/env bash
# Run the test suite on a fresh Debian machine: installs what is missing, then ruff + pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
. .venv/bin/activate
ruff check .
ruff format --check .
python -m pytest -q "$@"
