#!/usr/bin/env bash
# The main job, end to end on this machine: start the local Signal Sciences simulator and point
# sigsci-iga at it.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
PORT="${SIGSCI_IGA_DEMO_PORT:-8765}"
mkdir -p .demo
.venv/bin/sigsci-iga sim serve --host 127.0.0.1 --port "$PORT" --seed 1 --users 200 --sites 20 \
    > .demo/sim.log 2>&1 &
SIM_PID=$!
trap 'kill $SIM_PID 2>/dev/null || true; wait $SIM_PID 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do
    if .venv/bin/python -c "import httpx,sys; sys.exit(httpx.get('http://127.0.0.1:$PORT/_sim/health').status_code != 200)" 2>/dev/null; then
        break
    fi
    sleep 0.1
done

# The simulator's documented demo credentials (fake; see README).
export SIGSCI_API_URL="http://127.0.0.1:$PORT"
export SIGSCI_EMAIL="owner@testcorp.example"
export SIGSCI_TOKEN="sim-demo-token"
export SIGSCI_CORP="testcorp"
export SIGSCI_IGA_DATABASE_URL="sqlite:///.demo/sigsci-iga.db"

echo "== sigsci-iga check"
.venv/bin/sigsci-iga check
