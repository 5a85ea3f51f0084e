"""The command line's own surface: --version and a --help that lists every command."""

import re
from importlib.metadata import version

import pytest

from supervisor.cli.main import main

COMMANDS = [
    "run", "check-config", "timers", "audit", "kv", "check", "new-role", "roles", "dead-letters",
    "events", "call", "status", "emit",
]  # fmt: skip


def test_version_prints_the_installed_version(capsys):
    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0
    assert capsys.readouterr().out == f"intentd {version('intentd')}\n"


def test_help_exits_0_and_lists_every_command_with_what_it_does(capsys):
    with pytest.raises(SystemExit) as exited:
        main(["--help"])
    assert exited.value.code == 0
    out = capsys.readouterr().out
    listed = re.findall(r"^    (\S+)", out, flags=re.MULTILINE)
    assert listed == COMMANDS
    assert "Start with 'intentd run'" in out


def test_no_command_prints_the_help_and_exits_2(capsys):
    assert main([]) == 2
    assert "usage: intentd" in capsys.readouterr().out


@pytest.mark.parametrize("command", ["timers", "audit", "dead-letters"])
def test_a_command_group_without_its_subcommand_names_what_is_missing(command, capsys):
    with pytest.raises(SystemExit) as stop:
        main([command])
    assert stop.value.code == 2
    assert f"intentd {command}: error: the following arguments are required: COMMAND" in (
        capsys.readouterr().err
    )
