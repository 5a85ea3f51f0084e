"""Trial imports: a role file is first imported in a short-lived forked child, within a bound.

Rules kept here:
- The daemon has one thread and one loop, so a role file that sleeps or loops at import would
  stall everything if it were imported in-process first. ``trial_import`` forks: the child
  imports the file's bytes and calls ``register_role()`` (role_contract.check_role), writes one
  byte on a pipe and exits; the parent waits for that pipe on its loop (``add_reader``), never
  blocking. Only bytes whose trial finished are imported in the daemon, and they are the same
  bytes, so an edit landing in between cannot slip untried code in.
- Forking, not starting a new interpreter: the child already has Python, common and strands
  imported, so a trial costs milliseconds and the bound measures the file alone. (asyncio's
  subprocesses would also start a child-watcher thread on Python 3.11.)
- A child that does not finish within the bound is killed (SIGKILL) and reaped; one that dies
  before writing (``os._exit``, a crash) is reported with its exit code. A child that finished,
  whatever the import raised, passes: the in-process import then reports the file's problems.
- The child never returns to the loop: its stdout and stderr go to /dev/null, the parent's
  signal wake-up fd is dropped, and it leaves with ``os._exit``. Bytes that passed once pass
  again at once.
"""

import asyncio
import contextlib
import os
import signal
from pathlib import Path
from typing import NoReturn

from common.role_import import source_digest

_passed: set[str] = set()  # digests of sources whose trial finished
_PASSED_LIMIT = 1024


async def trial_import(path: Path, source: bytes, bound: float) -> str | None:
    """Import ``source`` as ``path`` in a forked child; None if it finished within ``bound`` s."""
    digest = source_digest(source)
    if digest in _passed:
        return None
    if b"strands" in source:
        import strands  # noqa: F401 - imported here once, so its ~1 s is not the file's to pay

    read_end, write_end = os.pipe()
    try:
        pid = os.fork()
    except OSError as err:
        os.close(read_end)
        os.close(write_end)
        return f"the trial import could not fork ({err.strerror}); free some memory or processes"
    if pid == 0:  # the child: import, report, leave
        os.close(read_end)
        _child(path, source, write_end)
    os.close(write_end)
    try:
        finished = await _readable(read_end, bound)
        if not finished:
            return (
                f"import did not finish within {bound:g} s; a role file must do no work at "
                "import (no sleep, loop or network call): move it into a handler or raise "
                "roles.import_timeout"
            )
        if os.read(read_end, 1) != b"1":
            code, pid = _reap(pid, kill=False), 0
            return (
                f"importing the file ended its process (exit code {code}); a role file must not "
                "exit or crash the interpreter at import"
            )
    finally:
        os.close(read_end)
        if pid:
            _reap(pid, kill=True)
    if len(_passed) < _PASSED_LIMIT:
        _passed.add(digest)
    return None


async def _readable(fd: int, bound: float) -> bool:
    """Return True once ``fd`` is readable (data or end of file), False after ``bound`` s."""
    loop = asyncio.get_running_loop()
    ready: asyncio.Future[None] = loop.create_future()

    def wake() -> None:
        if not ready.done():
            ready.set_result(None)

    loop.add_reader(fd, wake)
    try:
        async with asyncio.timeout(bound):
            await ready
        return True
    except TimeoutError:
        return False
    finally:
        loop.remove_reader(fd)


def _reap(pid: int, *, kill: bool) -> int:
    """Reap the child (killing it first if asked); return its exit code.

    The child has closed its pipe end, so it has exited or is exiting (or was just sent SIGKILL):
    ``waitpid`` returns at once and does not hold up the loop.
    """
    if kill:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])


def _child(path: Path, source: bytes, report: int) -> NoReturn:
    """Run in the forked child: check the role, write b"1", exit without touching the loop."""
    code = 0
    try:
        signal.set_wakeup_fd(-1)  # the parent's loop owns that fd
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, signal.SIG_DFL)
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
        from llm_provider.role_contract import check_role

        check_role(path, fresh=True, source=source)
        os.write(report, b"1")
    except BaseException:
        code = 70  # the check itself broke: the parent reports the exit code
    finally:
        os._exit(code)
