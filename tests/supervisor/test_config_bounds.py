"""Hostile config files: each is refused in one line naming the file (and line), quickly, with
no secret echoed and no traceback."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from common.errors import ConfigError
from supervisor.config import load_config

TOKEN = "98765432123"


def alias_bomb() -> bytes:
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for n in range(1, 10):
        lines.append(f"a{n}: &a{n} [" + ", ".join([f"*a{n - 1}"] * 10) + "]")
    return ("\n".join(lines) + "\n").encode()


CASES = {
    "alias bomb": (
        alias_bomb(),
        "{path}:4: YAML aliases (*name) expand the file past 10000 values or 50 levels; write "
        "the values out instead of repeating them",
    ),
    "50 MB": (
        b"# padding\n" * (5 * 1024 * 1024),
        "{path}: the file is over the 1048576-byte (1 MiB) limit for a config file; a config "
        "file is a few kilobytes, so check that this is the right file",
    ),
    "binary": (
        b"http:\n  port: 8080\n\x89PNG\r\n\x1a\n\xff\xd8\xff",
        "{path}:3: the file is not UTF-8 text (byte 19); save it as UTF-8",
    ),
    "deep nesting": (  # libyaml's own limit answers first here
        b"roles:\n  settings: " + b"[" * 2000 + b"]" * 2000 + b"\n",
        "{path}:2: the file is not valid YAML (exceeded maximum nesting depth)",
    ),
    "deep nesting within libyaml's limit": (
        b"roles:\n  settings: " + b"[" * 500 + b"]" * 500 + b"\n",
        "{path}:2: the YAML nests deeper than 50 levels; a config file needs a handful, so "
        "flatten it",
    ),
    "deep mapping nesting": (
        b"".join(b"  " * n + b"k:\n" for n in range(200)),
        "{path}:51: the YAML nests deeper than 50 levels; a config file needs a handful, so "
        "flatten it",
    ),
    "NUL byte": (
        b"http:\n  host: 127.0.0.1\n  port: 80\x0080\n",
        "{path}:3: the file holds a NUL byte at column 11, which YAML does not allow; remove it",
    ),
    "typed token": (
        f"http:\n  token: {TOKEN}\n".encode(),
        "{path}: http.token: Input should be a valid string (the value is a secret, so it is "
        "not shown)",
    ),
    "typed api key": (
        f"llm:\n  provider: openai\n  api_key: {{key: {TOKEN}}}\n".encode(),
        "{path}: llm.api_key: Input should be a valid string",
    ),
    "self-referencing alias": (
        b"roles: &r {settings: *r}\n",
        "{path}:1: alias *r refers to a node that is not complete yet (or not defined); "
        "define &anchor before using it, outside itself",
    ),
}


def write(tmp_path: Path, data: bytes) -> Path:
    path = tmp_path / "config.yaml"
    path.write_bytes(data)
    return path


@pytest.mark.parametrize(("data", "error"), CASES.values(), ids=CASES.keys())
def test_a_hostile_config_file_is_refused_in_one_sentence(tmp_path, data, error):
    path = write(tmp_path, data)
    with pytest.raises(ConfigError) as refused:
        load_config(path, environ={})
    assert str(refused.value) == error.format(path=path)


@pytest.mark.parametrize(("data", "error"), CASES.values(), ids=CASES.keys())
def test_check_config_prints_one_line_and_exits_2_within_ten_seconds(tmp_path, data, error):
    path = write(tmp_path, data)
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "supervisor", "check-config", str(path)],
        capture_output=True,
        text=True,
        timeout=10,
        env=env,
        check=False,
    )
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == f"intentd: configuration error: {error.format(path=path)}\n"
    assert TOKEN not in done.stderr


def test_aliases_within_the_bounds_still_work(tmp_path):
    path = write(
        tmp_path,
        b"roles:\n  settings:\n    timer: &shared {greeting: hi}\n    router: *shared\n",
    )
    config = load_config(path, environ={})
    assert config.roles.settings == {"timer": {"greeting": "hi"}, "router": {"greeting": "hi"}}


def test_a_file_of_exactly_one_mib_is_read(tmp_path):
    body = b"http:\n  port: 9090\n"
    path = write(tmp_path, body + b"#" * (1024 * 1024 - len(body) - 1) + b"\n")
    assert path.stat().st_size == 1024 * 1024
    assert load_config(path, environ={}).http.port == 9090
