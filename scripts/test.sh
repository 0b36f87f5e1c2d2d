#!/usr/bin/env bash
# Run the whole test suite (SQLite and the local PostgreSQL on 127.0.0.1:5432).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh dev
export SIGSCI_IGA_TEST_POSTGRES_URL="${SIGSCI_IGA_TEST_POSTGRES_URL:-postgresql+psycopg://postgres@127.0.0.1:5432/test}"
exec .venv/bin/python -m pytest "$@"
