"""intentd check, new-role, roles and run --strict, run as a user runs them."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from supervisor.cli.main import main
from tests.role_files import echo_role, write_role

REPO = Path(__file__).resolve().parents[3]
BROKEN = REPO / "tests" / "roles" / "broken"
INTENTD = [sys.executable, "-m", "supervisor"]


@pytest.fixture
def project(tmp_path, monkeypatch):
    (tmp_path / "config.yaml").write_text(
        "roles:\n  directory: roles\nstorage:\n  path: var/i.db\n"
    )
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_new_role_writes_a_role_and_a_test_that_pass_outside_the_checkout(
    project, capsys, tmp_path_factory
):
    assert main(["new-role", "memo"]) == 0
    assert capsys.readouterr().out == "wrote roles/memo.py\nwrote tests/roles/test_memo.py\n"
    assert main(["check"]) == 0
    assert capsys.readouterr().out == "1 role(s) ok, 0 problem(s)\n"
    copy = tmp_path_factory.mktemp("elsewhere") / "project"
    shutil.copytree(project / "roles", copy / "roles")
    shutil.copytree(project / "tests", copy / "tests")
    environment = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
    environment.pop("PYTHONPATH", None)
    generated = subprocess.run(
        [sys.executable, "-m", "pytest", "-q"],
        cwd=copy,
        env=environment,
        capture_output=True,
        text=True,
        check=False,
    )
    assert (generated.returncode, generated.stdout.splitlines()[-1].split(" in ")[0]) == (
        0,
        "5 passed",
    ), generated.stdout
    assert "supervisor" not in (copy / "tests" / "roles" / "test_memo.py").read_text()


def test_new_role_refuses_to_overwrite_and_writes_nothing(project, capsys):
    write_role(project / "roles", "memo", echo_role())
    before = (project / "roles" / "memo.py").read_text()
    assert main(["new-role", "memo"]) == 1
    assert capsys.readouterr().err == (
        "intentd: roles/memo.py already exists; pick another name or edit that file\n"
    )
    assert ((project / "roles" / "memo.py").read_text(), (project / "tests").exists()) == (
        before,
        False,
    )


def test_new_role_refuses_a_name_that_is_not_snake_case(project, capsys):
    assert main(["new-role", "Stand-Up"]) == 1
    assert capsys.readouterr().err == (
        "intentd: role name 'Stand-Up' is not lowercase snake_case; use a name such as 'stand_up'\n"
    )


def test_check_prints_one_line_per_problem_and_fails(project, capsys):
    assert main(["check", str(BROKEN / "many_problems.py"), str(BROKEN / "returns_list.py")]) == 1
    out = capsys.readouterr().out.splitlines()
    assert [line.split(": ", 1)[0].rsplit("/", 1)[1] for line in out[:-1]] == [
        "many_problems.py:3",
        "many_problems.py:6",
        "many_problems.py:10",
        "returns_list.py:6",
    ]
    assert out[-1] == "0 role(s) ok, 4 problem(s)"


def test_check_applies_the_import_bound_and_names_each_stalling_file(project, capsys):
    (project / "config.yaml").write_text("roles:\n  directory: roles\n  import_timeout: 1\n")
    write_role(project / "roles", "asleep", "import time\ntime.sleep(60)\n")
    write_role(project / "roles", "busy", "while True:\n    pass\n")
    write_role(project / "roles", "echo", echo_role())
    assert main(["check"]) == 1
    hint = (
        "import did not finish within 1 s; a role file must do no work at import (no sleep, "
        "loop or network call): move it into a handler or raise roles.import_timeout"
    )
    out = capsys.readouterr().out.splitlines()
    assert out[:2] == [f"roles/asleep.py: {hint}", f"roles/busy.py: {hint}"]
    assert out[-1] == "1 role(s) ok, 2 problem(s), 1 warning(s)"  # echo's PING: no publisher


def test_check_reports_a_role_file_over_300_lines(project, capsys):
    write_role(project / "roles", "echo", echo_role() + "# more\n" * 300)
    assert main(["check"]) == 1
    assert capsys.readouterr().out.splitlines()[0].startswith("roles/echo.py:301: the file has 3")


def test_check_json_is_machine_readable(project, capsys):
    write_role(project / "roles", "echo", echo_role())
    assert main(["check", "roles", str(BROKEN / "returns_list.py"), "--json"]) == 1
    result = json.loads(capsys.readouterr().out)
    found = [(p["path"].rsplit("/", 1)[1], p["line"], p["severity"]) for p in result["problems"]]
    assert (result["ok"], result["roles"], found) == (
        False,
        ["echo"],
        [("returns_list.py", 6, "error"), ("echo.py", 15, "warning")],
    )


def test_check_warns_of_a_subscription_nothing_publishes_unless_a_schedule_does(project, capsys):
    write_role(project / "roles", "echo", echo_role())
    assert main(["check"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "roles/echo.py:15: warning: event_handlers key 'PING' is published by nothing intentd "
        "knows of (common/events.py, a schedule, a role's EventIntent or external_events); if it "
        "is posted from outside (POST /events, intentd emit), list it in "
        "ROLE_CONFIG['external_events'], else check its spelling",
        "1 role(s) ok, 0 problem(s), 1 warning(s)",
    ]
    with (project / "config.yaml").open("a") as config:
        config.write("schedules:\n  - {name: pinger, event: PING, every: 60}\n")
    assert main(["check"]) == 0
    assert capsys.readouterr().out == "1 role(s) ok, 0 problem(s)\n"


def test_roles_lists_loaded_roles_and_skipped_files(project):
    write_role(project / "roles", "echo", echo_role())
    (project / "roles" / "returns_list.py").write_text((BROKEN / "returns_list.py").read_text())
    listed = subprocess.run([*INTENTD, "roles"], capture_output=True, text=True, check=True)
    assert listed.stdout.splitlines() == [
        "echo 1.0.0  events: PING  tools: -  intents: -",
        "failed  roles/returns_list.py:6: register_role() returned a list, not a dict; return "
        "{'config': ..., 'event_handlers': ..., 'tools': ..., 'intents': ...}",
    ]


def test_roles_json_shows_routing_fields_and_tool_names(project, capsys):
    assert main(["new-role", "memo"]) == 0
    (project / "roles" / "returns_list.py").write_text((BROKEN / "returns_list.py").read_text())
    capsys.readouterr()
    assert main(["roles", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    (memo,) = listed["roles"]
    assert {key: memo[key] for key in ("llm_type", "fast_reply", "when_to_use", "tools")} == {
        "llm_type": "WEAK",
        "fast_reply": True,
        "when_to_use": "When the user asks to note something for later.",
        "tools": ["memo_note"],
    }
    assert [(p["path"], p["line"]) for p in listed["failed"]] == [("roles/returns_list.py", 6)]


def test_run_strict_refuses_to_start_with_a_broken_role(project):
    write_role(project / "roles", "echo", echo_role())
    (project / "roles" / "returns_list.py").write_text((BROKEN / "returns_list.py").read_text())
    run = subprocess.run(
        [*INTENTD, "run", "--strict"], capture_output=True, text=True, check=False, timeout=60
    )
    assert (run.returncode, run.stderr.splitlines()[-1]) == (
        1,
        "intentd: roles.strict is on and 1 role file(s) fail their checks, first "
        "roles/returns_list.py:6: register_role() returned a list, not a dict; return "
        "{'config': ..., 'event_handlers': ..., 'tools': ..., 'intents': ...}; fix them (see "
        "'intentd check') or start without --strict",
    )
