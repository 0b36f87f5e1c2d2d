#!/usr/bin/env bash
# The main job, end to end on this machine (SQLite): start the local Signal Sciences simulator,
# import the corp, request a joiner and a mover, run the retry job, and show the result.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
# SIGSCI_IGA_DEMO_PORT names the simulator's port; the demo refuses to start if it is taken.
# Unset, the demo takes 8765 when it is free and any free port otherwise, so it never talks to
# whatever else already listens on 8765.
IGA=.venv/bin/sigsci-iga
# SIGSCI_IGA_DEMO_DIR: where the demo keeps its database and the simulator's log (default .demo).
DEMO_DIR="${SIGSCI_IGA_DEMO_DIR:-.demo}"
rm -rf "$DEMO_DIR" && mkdir -p "$DEMO_DIR"
SIM_PID=""
trap '[ -z "$SIM_PID" ] || { kill $SIM_PID 2>/dev/null; wait $SIM_PID 2>/dev/null; } || true' EXIT

# Start the simulator on port $1 and set SIM to its URL once it answers; fail if it exits.
start_sim() {
    $IGA sim serve --host 127.0.0.1 --port "$1" --seed 1 --users 200 --sites 20 \
        > "$DEMO_DIR/sim.log" 2>&1 &
    SIM_PID=$!
    SIM=""
    for _ in $(seq 1 300); do
        if ! kill -0 "$SIM_PID" 2>/dev/null; then
            SIM_PID=""
            return 1
        fi
        # The simulator prints its URL once it holds the port.
        SIM="$(sed -n 's/^  export SIGSCI_API_URL=//p' "$DEMO_DIR/sim.log")"
        if [ -n "$SIM" ] && .venv/bin/python -c \
            "import httpx,sys; sys.exit(httpx.get('$SIM/_sim/health').status_code != 200)" \
            2>/dev/null; then
            return 0
        fi
        sleep 0.1
    done
    echo "the simulator did not answer in 30 s" >&2
    return 1
}

if ! start_sim "${SIGSCI_IGA_DEMO_PORT:-8765}"; then
    if [ -n "${SIGSCI_IGA_DEMO_PORT:-}" ] || ! grep -q "cannot listen" "$DEMO_DIR/sim.log"; then
        echo "the simulator did not start:" >&2
        cat "$DEMO_DIR/sim.log" >&2
        exit 1
    fi
    echo "port 8765 is taken; the simulator takes a free port instead" >&2
    if ! start_sim 0; then
        cat "$DEMO_DIR/sim.log" >&2
        exit 1
    fi
fi
echo "simulator: $SIM"

# The simulator's documented demo credentials (fake; see README).
export SIGSCI_API_URL="$SIM"
export SIGSCI_EMAIL="owner@testcorp.example"
export SIGSCI_TOKEN="sim-demo-token"
export SIGSCI_CORP="testcorp"
export SIGSCI_IGA_DATABASE_URL="sqlite:///$DEMO_DIR/sigsci-iga.db"
export SIGSCI_IGA_RETRY_BASE_SECONDS=1
export COLUMNS="${COLUMNS:-120}"

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "sigsci-iga check"
$IGA check

step "sigsci-iga import   (full: the users list with memberships, then the site pages)"
$IGA import

read -r SITE_A SITE_B < <($IGA entitlements list --type Site --json \
    | .venv/bin/python -c "import json,sys; s=[e['value'] for e in json.load(sys.stdin)]; print(s[0], s[1])")
JOINER="new.hire@example.com"

step "sigsci-iga request create-account   (joiner: role user, site $SITE_A)"
$IGA request create-account --email "$JOINER" --role user --site "$SITE_A" \
    --justification "joins the $SITE_A team"

step "the simulator fails the next site-members call once (a 500), to show the retry job"
.venv/bin/python -c "import httpx; httpx.post('$SIM/_sim/faults', json={'kind': 'error_500', 'method': 'POST', 'path': '/members$', 'count': 1}).raise_for_status()"

step "sigsci-iga request add-access   (mover: also $SITE_B)"
$IGA request add-access --email "$JOINER" --site "$SITE_B" --justification "moves to $SITE_B"

step "sigsci-iga request remove-access   (mover: no longer $SITE_A; queued behind the add)"
$IGA request remove-access --email "$JOINER" --site "$SITE_A" --justification "left $SITE_A"

step "sigsci-iga provision run --dry-run"
# Exit 7 is the documented "changes pending" outcome of a dry run that has calls to send.
status=0
$IGA provision run --dry-run || status=$?
[ "$status" -eq 0 ] || [ "$status" -eq 7 ] || exit "$status"

step "sigsci-iga provision run --until-done   (the retry job)"
$IGA provision run --until-done --max-wait 30

step "sigsci-iga tasks list"
$IGA tasks list

step "sigsci-iga accounts show $JOINER"
$IGA accounts show "$JOINER"

step "sigsci-iga import   (incremental: only what the activity feed names; no drift expected)"
$IGA import

step "sigsci-iga accounts list --site $SITE_B --status pending   (invitees, the joiner among them)"
$IGA accounts list --site "$SITE_B" --status pending

step "sigsci-iga journal list --email $JOINER"
$IGA journal list --email "$JOINER"
