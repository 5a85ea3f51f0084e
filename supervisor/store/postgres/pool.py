"""Open the bounded asyncpg pool ``storage.url`` names, with each failure told in one sentence.

Rules kept here:
- The password never reaches a message or a log: URLs are shown with ``***`` in its place.
- Every statement runs under the server-side ``statement_timeout`` (``storage.statement_timeout``),
  so a stuck query fails instead of holding a pooled connection for ever.
- A server that is down, a refused login and a missing database each raise a StoreError naming
  ``storage.url`` and the fix.
"""

import asyncpg
import structlog

from common.errors import StoreError
from supervisor.config import StorageConfig, redact_url

log = structlog.get_logger("intentd.postgres")

# What a call raises when the server is down, restarting or unreachable (asyncpg raises
# InternalClientError for a statement sent on a connection the server has just closed).
DOWN_ERRORS = (
    OSError,
    TimeoutError,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
)


async def open_pool(config: StorageConfig) -> asyncpg.Pool:
    """Connect to ``config.url``; return a pool of at most ``config.pool_size`` connections."""
    assert config.url is not None
    shown = redact_url(config.url)
    timeout_ms = str(int(config.statement_timeout * 1000))
    try:
        pool = await asyncpg.create_pool(
            config.url,
            min_size=1,
            max_size=config.pool_size,
            timeout=config.connect_timeout,
            command_timeout=config.statement_timeout + 1,  # the server's own timeout comes first
            server_settings={"statement_timeout": timeout_ms, "application_name": "intentd"},
        )
    except (asyncpg.InvalidPasswordError, asyncpg.InvalidAuthorizationSpecificationError) as err:
        raise StoreError(
            f"storage.url {shown!r}: the PostgreSQL server refused the login ({err}); check the "
            "user and its password (in the URL through ${VAR}, or in PGPASSWORD)"
        ) from err
    except asyncpg.InvalidCatalogNameError as err:
        raise StoreError(
            f"storage.url {shown!r}: {err}; create it (createdb) or fix the database name"
        ) from err
    except (OSError, TimeoutError) as err:
        reason = err.strerror or str(err) if isinstance(err, OSError) else "no answer in time"
        raise StoreError(
            f"storage.url {shown!r}: cannot reach the PostgreSQL server ({reason}); start it or "
            "fix the host and port"
        ) from err
    except asyncpg.PostgresError as err:
        raise StoreError(
            f"storage.url {shown!r}: the server refused the connection ({err})"
        ) from err
    log.debug("postgres_connected", url=shown, pool_size=config.pool_size)
    return pool


async def pool_not_ready(pool: asyncpg.Pool, shown: str) -> str | None:
    """Return why the database cannot be used now, or None when it answers (for ``/readyz``)."""
    try:
        await pool.fetchval("SELECT 1", timeout=2.0)
    except DOWN_ERRORS as err:
        return f"the PostgreSQL store at {shown!r} does not answer ({type(err).__name__})"
    return None
