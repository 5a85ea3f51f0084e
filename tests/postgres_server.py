"""A real PostgreSQL server for the test suite: initdb in a temp dir, pg_ctl start, fsync off.

The server listens on 127.0.0.1 at a free port, with password login (scram) for TCP, so tests
can check a refused login. As root the server runs as the ``postgres`` user (PostgreSQL refuses
to run as root). Missing binaries are an error naming what to install, never a skip.
"""

import os
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

SUPERUSER = "intentd_test"
PASSWORD = "test-pw-8c41"
INSTALL_HINT = (
    "PostgreSQL server binaries (initdb, pg_ctl) were not found in /usr/lib/postgresql/*/bin "
    "or $INTENTD_PG_BIN; install them (Debian: apt-get install -y postgresql)"
)


def find_bin_dir() -> Path:
    """Return the folder holding initdb and pg_ctl, newest version first."""
    configured = os.environ.get("INTENTD_PG_BIN")
    candidates = [Path(configured)] if configured else []
    root = Path("/usr/lib/postgresql")
    if root.is_dir():
        versions = sorted(
            (p for p in root.iterdir() if p.name.isdigit()), key=lambda p: int(p.name), reverse=True
        )
        candidates += [version / "bin" for version in versions]
    for candidate in candidates:
        if (candidate / "initdb").is_file() and (candidate / "pg_ctl").is_file():
            return candidate
    raise RuntimeError(INSTALL_HINT)


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class PostgresServer:
    """One running server; ``url(db)`` is how a client reaches database ``db``."""

    bin_dir: Path
    folder: Path
    port: int

    def url(self, database: str = "postgres", *, password: str = PASSWORD) -> str:
        """Return the postgresql:// URL of ``database`` on this server."""
        return f"postgresql://{SUPERUSER}:{password}@127.0.0.1:{self.port}/{database}"

    def pg_ctl(self, *args: str) -> None:
        """Run pg_ctl on this server's data folder."""
        _run(self.bin_dir / "pg_ctl", "-D", str(self.folder / "data"), *args)

    def stop(self) -> None:
        """Stop the server (immediately) and remove its folder."""
        try:
            self.pg_ctl("stop", "-m", "immediate", "-w")
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)


def start_server() -> PostgresServer:
    """Create a cluster in a new temp folder and start it; return once it accepts connections."""
    bin_dir = find_bin_dir()
    folder = Path(tempfile.mkdtemp(prefix="intentd-pg-"))
    try:
        pwfile = folder / "pw"
        pwfile.write_text(PASSWORD + "\n")
        if os.geteuid() == 0:
            shutil.chown(folder, "postgres", "postgres")
            shutil.chown(pwfile, "postgres", "postgres")
        data = folder / "data"
        _run(
            bin_dir / "initdb",
            "-D", str(data),
            "-U", SUPERUSER,
            f"--pwfile={pwfile}",
            "--auth-host=scram-sha-256",
            "--auth-local=trust",
            "--no-sync",
            "-E", "UTF8",
            "--locale=C",
        )  # fmt: skip
        last_error: Exception | None = None
        for _ in range(5):  # a free port can be taken between the probe and the start
            port = free_port()
            options = (
                f"-c listen_addresses=127.0.0.1 -c port={port} -c fsync=off "
                "-c synchronous_commit=off -c full_page_writes=off -c max_connections=300 "
                f"-c unix_socket_directories={folder} -c log_min_messages=fatal"
            )
            try:
                _run(
                    bin_dir / "pg_ctl", "-D", str(data), "-o", options,
                    "-l", str(folder / "server.log"), "-w", "-t", "30", "start",
                )  # fmt: skip
            except RuntimeError as err:
                last_error = err
                continue
            return PostgresServer(bin_dir, folder, port)
        raise RuntimeError(f"the test PostgreSQL server did not start: {last_error}")
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise


def _run(*command: str | Path) -> None:
    argv = [str(part) for part in command]
    if os.geteuid() == 0:
        argv = ["runuser", "-u", "postgres", "--", *argv]
    done = subprocess.run(argv, capture_output=True, text=True, cwd="/", check=False)
    if done.returncode != 0:
        raise RuntimeError(
            f"{Path(argv[4 if argv[0] == 'runuser' else 0]).name} failed "
            f"({done.returncode}): {(done.stderr or done.stdout).strip()[-500:]}"
        )
