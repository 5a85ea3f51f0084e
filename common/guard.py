"""Which errors raised by role code are the role's, and which are the daemon's own.

Role code (handlers, intent handlers) may raise anything: besides Exception, a SystemExit or a
CancelledError that is not ours. Each of those fails that call only. A CancelledError while our
own task is being cancelled is the daemon stopping, and must go on up.
"""

import asyncio

ROLE_ERRORS = (Exception, SystemExit, asyncio.CancelledError)


def reraise_if_ours(err: BaseException) -> None:
    """Re-raise ``err`` when it is the current task itself being cancelled."""
    task = asyncio.current_task()
    if isinstance(err, asyncio.CancelledError) and task is not None and task.cancelling():
        raise err
