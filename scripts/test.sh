#!/usr/bin/env bash
# Run the whole test suite (SQLite and the local PostgreSQL on 127.0.0.1:5432).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh dev
export SIGSCI_IGA_TEST_POSTGRES_URL="${SIGSCI_IGA_TEST_POSTGRES_URL:-postgresql+psycopg://postgres@127.0.0.1:5432/test}"
# One pytest worker per core (pytest-xdist): the suite is mostly waiting on subprocesses,
# servers and databases. SIGSCI_IGA_TEST_WORKERS=0 runs it in this process (e.g. for --pdb).
exec .venv/bin/python -m pytest -n "${SIGSCI_IGA_TEST_WORKERS:-auto}" "$@"
