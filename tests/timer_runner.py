"""Run a TimerService on the test's loop as the Supervisor does: ``start()``, then ``run()``."""

import asyncio

from supervisor.scheduling.timers import TimerService


class TimerRunner:
    """Own the task that starts and runs ``service``; ``stop()`` cancels and awaits it."""

    def __init__(self, service: TimerService) -> None:
        self.service = service
        self.task = asyncio.get_running_loop().create_task(self._serve())

    async def _serve(self) -> None:
        await self.service.start()
        await self.service.run()

    async def stop(self) -> None:
        """Disarm the timers and end the task (what is in flight stays pending on disk)."""
        self.service.stop()
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)
