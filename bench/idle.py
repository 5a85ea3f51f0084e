"""Idle row: CPU time and wake-ups of the daemon sitting idle with the default config.

The daemon (``intentd run`` on a copy of config.yaml, the shipped roles, its own store and port)
and the anchor (a bare asyncio loop with the same 30 s and 5 s heartbeats) run side by side as
child processes; after a warm-up each window reads both processes' CPU time (schedstat, in
nanoseconds) and voluntary context switches (one per wake-up from an idle wait).
Run: .venv/bin/python bench/idle.py [window_seconds] [windows]
"""

import os
import re
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _rounds import median, median_ratio, row

ROOT = Path(__file__).resolve().parents[1]
ANCHOR = """
import asyncio


async def beat(interval):
    while True:
        await asyncio.sleep(interval)

async def main():
    async with asyncio.TaskGroup() as tasks:
        tasks.create_task(beat(30))
        tasks.create_task(beat(5))

asyncio.run(main())
"""


def cpu_and_wakeups(pid: int) -> tuple[float, int]:
    """Return the process's CPU seconds and voluntary context switches, over all its threads."""
    cpu, switches = 0.0, 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        cpu += int((task / "schedstat").read_text().split()[0]) / 1e9
        status = (task / "status").read_text()
        switches += int(re.search(r"^voluntary_ctxt_switches:\s+(\d+)", status, re.M).group(1))
    return cpu, switches


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def daemon_config(folder: Path) -> Path:
    text = (ROOT / "config.yaml").read_text()
    text = text.replace("directory: roles", f"directory: {ROOT / 'roles'}")
    text = text.replace("path: var/intentd.db", f"path: {folder / 'intentd.db'}")
    path = folder / "config.yaml"
    path.write_text(text + f"http:\n  port: {free_port()}\n")
    return path


def main(window: float, windows: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "INTENTD_LOG_LEVEL": "INFO"}
        daemon = subprocess.Popen(
            [str(ROOT / ".venv/bin/intentd"), "run", "--config", str(daemon_config(Path(tmp)))],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=env,
        )
        anchor = subprocess.Popen([sys.executable, "-c", ANCHOR])
        try:
            time.sleep(8)  # start-up (imports, migrations, role loading) is not idling
            assert daemon.poll() is None, "the daemon did not start"
            assert anchor.poll() is None, "the anchor loop did not start"
            cpu: dict[str, list[float]] = {"intentd": [], "anchor": []}
            wakes: dict[str, list[float]] = {"intentd": [], "anchor": []}
            for _ in range(windows):
                before = {
                    n: cpu_and_wakeups(p.pid) for n, p in (("intentd", daemon), ("anchor", anchor))
                }
                time.sleep(window)
                for name, proc in (("intentd", daemon), ("anchor", anchor)):
                    used, woke = cpu_and_wakeups(proc.pid)
                    cpu[name].append((used - before[name][0]) * 30 / window)
                    wakes[name].append((woke - before[name][1]) * 30 / window)
        finally:
            for proc in (daemon, anchor):
                proc.terminate()
                proc.wait(timeout=20)
    ratio = median_ratio(cpu["intentd"], cpu["anchor"])
    row(
        "idle CPU over 30 s (default config)",
        f"{median(cpu['intentd']) * 1e3:.1f} ms, {median(wakes['intentd']):.0f} wake-ups",
        f"a loop with the 30 s and 5 s heartbeats: {median(cpu['anchor']) * 1e3:.1f} ms, "
        f"{median(wakes['anchor']):.0f} wake-ups",
        ratio,
        "<= 3x",
        ratio <= 3,
    )


if __name__ == "__main__":
    main(
        float(sys.argv[1]) if len(sys.argv) > 1 else 30.0,
        int(sys.argv[2]) if len(sys.argv) > 2 else 3,
    )
