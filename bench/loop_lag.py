"""Idle CPU cost of the loop-lag monitor, against the same loop without it.

Run: .venv/bin/python bench/loop_lag.py
"""

import asyncio
import contextlib
import time

from supervisor.ops.loop_lag import LoopLagMonitor

SECONDS = 3.0


async def idle_cpu(interval: float | None) -> float:
    """Return CPU seconds used per 30 s of idling, with a monitor at ``interval`` (None: none)."""
    task = None
    if interval is not None:
        task = asyncio.get_running_loop().create_task(LoopLagMonitor(interval=interval).run())
    started = time.process_time()
    await asyncio.sleep(SECONDS)
    used = time.process_time() - started
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    return used / SECONDS * 30


async def main() -> None:
    bare = await idle_cpu(None)
    print(f"idle loop, no monitor:        {bare * 1000:7.2f} ms CPU per 30 s")
    for interval in (0.25, 0.1):
        used = await idle_cpu(interval)
        print(
            f"idle loop, monitor every {interval:.2f} s: {used * 1000:7.2f} ms CPU per 30 s "
            f"({used / max(bare, 1e-9):.1f}x the bare loop)"
        )


if __name__ == "__main__":
    asyncio.run(main())
