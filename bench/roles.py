"""Role loading figures: daemon start to ready with 1, 20 and 100 roles; one role's hot reload.

Roles are generated from the ``intentd new-role`` template (each has an event handler, a strands
tool and an intent). strands is imported once before timing, as a daemon does at start.
Run: .venv/bin/python bench/roles.py
"""

import asyncio
import io
import os
import statistics
import tempfile
import time
from pathlib import Path

import strands  # noqa: F401  (its import cost is not the registry's)

from llm_provider.role_registry import RoleRegistry
from llm_provider.role_template import render_role
from supervisor.config import Config, HTTPConfig, RolesConfig, StorageConfig
from supervisor.logs import configure_logging
from supervisor.supervisor import Supervisor

REPEATS = 5


def generate(folder: Path, prefix: str, count: int) -> list[Path]:
    """Write ``count`` template roles into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        path = folder / f"{prefix}_{i}.py"
        path.write_text(render_role(f"{prefix}_{i}"))
        paths.append(path)
    return paths


async def start_to_ready(root: Path, count: int, run: int) -> float:
    """Return seconds from Supervisor.run() to ready with ``count`` fresh roles."""
    generate(root / "roles", f"r{count}x{run}", count)
    config = Config(
        roles=RolesConfig(directory=root / "roles"),
        storage=StorageConfig(path=root / "i.db"),
        http=HTTPConfig(port=0),
    )
    supervisor = Supervisor(config=config, stdout=io.StringIO())
    started = time.perf_counter()
    task = asyncio.get_running_loop().create_task(supervisor.run())
    await supervisor.wait_ready()
    elapsed = time.perf_counter() - started
    loaded = len(supervisor.role_registry.roles)
    supervisor.stop()
    await task
    assert loaded == count, (loaded, count)
    return elapsed


def reload_figures(root: Path) -> tuple[float, float]:
    """Return (median s to reload one edited role, median s of a tick with no change), 100 roles."""
    paths = generate(root / "reload", "hot", 100)
    registry = RoleRegistry(root / "reload")
    registry.discover_roles()
    registry.check_for_changes()
    reloads, idle = [], []
    for n in range(20):
        paths[0].write_text(render_role("hot_0") + f"\n# edit {n}\n")
        stamp = time.time_ns() + n * 1_000_000_000
        os.utime(paths[0], ns=(stamp, stamp))
        started = time.perf_counter()
        assert registry.check_for_changes() == ["hot_0.py"]
        reloads.append(time.perf_counter() - started)
        started = time.perf_counter()
        assert registry.check_for_changes() == []
        idle.append(time.perf_counter() - started)
    return statistics.median(reloads), statistics.median(idle)


async def main() -> None:
    configure_logging("CRITICAL", stream=io.StringIO())
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        figures = {}
        for count in (1, 20, 100):
            runs = [await start_to_ready(root / f"n{count}-{r}", count, r) for r in range(REPEATS)]
            figures[count] = statistics.median(runs)
            print(
                f"start to ready, {count:>3} roles: {figures[count] * 1000:8.1f} ms "
                f"(median of {REPEATS}; {figures[count] / count * 1000:.2f} ms per role)"
            )
        print(f"ratio 100 roles / 1 role: {figures[100] / figures[1]:.1f}x")
        reload_s, idle_s = reload_figures(root)
        print(f"reload one edited role among 100: {reload_s * 1000:8.2f} ms (median of 20)")
        print(f"fast-heartbeat change check, 100 unchanged roles: {idle_s * 1000:8.3f} ms")


if __name__ == "__main__":
    asyncio.run(main())
