"""An import killed mid-run is closed as abandoned by the next one, never left running."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from sigsci_iga.sim import DEMO_CORP, DEMO_EMAIL, DEMO_TOKEN, SimConfig, serve_in_thread
from sigsci_iga.store import open_repository


def test_an_import_killed_mid_run_is_marked_abandoned_on_the_next_start(tmp_path: Path) -> None:
    database = f"sqlite:///{tmp_path}/iga.db"
    with serve_in_thread(SimConfig(users=20, sites=3, seed=3, latency_ms=1500)) as url:
        env = {k: v for k, v in os.environ.items() if not k.startswith("SIGSCI")}
        env.update(
            SIGSCI_API_URL=url,
            SIGSCI_EMAIL=DEMO_EMAIL,
            SIGSCI_TOKEN=DEMO_TOKEN,
            SIGSCI_CORP=DEMO_CORP,
            SIGSCI_IGA_DATABASE_URL=database,
        )
        command = [sys.executable, "-m", "sigsci_iga", "import", "--full", "--json"]
        victim = subprocess.Popen(  # noqa: S603  # our own module, fixed arguments
            command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        try:
            deadline = time.monotonic() + 60
            running: list[int] = []
            while not running and time.monotonic() < deadline:
                time.sleep(0.2)
                if Path(f"{tmp_path}/iga.db").exists():
                    with open_repository(database) as repo:
                        running = [r.id for r in repo.runs.list() if r.status == "running"]
            assert running, "the import never started its run"
        finally:
            victim.send_signal(signal.SIGKILL)
            victim.wait(timeout=30)

        again = subprocess.run(  # noqa: S603  # our own module, fixed arguments
            command, env=env, capture_output=True, text=True, timeout=120, check=False
        )

    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["run"]["status"] == "succeeded"
    with open_repository(database) as repo:
        killed = repo.runs.get(running[0])
    assert killed.status == "failed"
    assert "abandoned" in (killed.reason or "")
    assert str(victim.pid) in (killed.reason or "")
