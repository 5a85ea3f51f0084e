"""docs/ROLES.md stays true: every snippet runs or passes the checks, and its messages are exact."""

import inspect
import re
from dataclasses import dataclass
from pathlib import Path

from common.intents import Intent
from common.testing import RecordingServices
from llm_provider.role_events import check_with_events
from supervisor.cli.main import role_settings_warnings
from supervisor.config import load_config

REPO = Path(__file__).resolve().parents[2]
GUIDE = (REPO / "docs" / "ROLES.md").read_text()
BROKEN = REPO / "tests" / "roles" / "broken"
PYTHON = re.findall(r"```python\n(.*?)```", GUIDE, re.S)
ROLES = [block for block in PYTHON if "def register_role" in block]
TESTS = [block for block in PYTHON if "def test_" in block]
IDEMPOTENT = [block for block in PYTHON if "async def process_note" in block]
OTHERS = [
    block
    for block in PYTHON
    if block not in ROLES and block not in TESTS and block not in IDEMPOTENT
]
(CONFIG,) = re.findall(r"```yaml\n(.*?)```", GUIDE, re.S)


def write_project(folder: Path) -> Path:
    """Write the guide's roles into ``folder/roles`` and its config; return the config file."""
    (folder / "roles").mkdir()
    for block in ROLES:
        name = re.search(r'"name": "(\w+)"', block).group(1)
        (folder / "roles" / f"{name}.py").write_text(block)
    (folder / "config.yaml").write_text(CONFIG)
    return folder / "config.yaml"


def test_every_python_snippet_is_a_role_a_test_or_a_runnable_example():
    assert (len(ROLES), len(TESTS), len(IDEMPOTENT), len(OTHERS)) == (2, 1, 1, 1)


def test_the_example_roles_pass_every_check_without_a_warning_given_the_example_config(tmp_path):
    config = load_config(write_project(tmp_path))
    roles, problems = check_with_events(
        [tmp_path / "roles"], schedule_events=[schedule.event for schedule in config.schedules]
    )
    assert (sorted(role.name for role in roles), problems) == (["disk_alerts", "standup"], [])


def test_the_example_config_is_valid_and_its_settings_name_a_role(tmp_path):
    config = load_config(write_project(tmp_path))
    (schedule,) = config.schedules
    assert (schedule.event, schedule.cron, schedule.data["channel"]) == (
        "STANDUP_DUE",
        "25 9 * * 1-5",
        "team",
    )
    assert role_settings_warnings(config) == []


async def test_the_test_snippet_passes(tmp_path, monkeypatch):
    write_project(tmp_path)
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(TESTS[0], "docs/ROLES.md", "exec"), namespace)
    tests = {name: test for name, test in namespace.items() if name.startswith("test_")}
    for test in tests.values():
        result = test()
        if inspect.isawaitable(result):
            await result
    assert len(tests) == 3


async def test_the_services_snippet_builds_real_services():
    namespace: dict = {}
    exec(compile(OTHERS[0], "docs/ROLES.md", "exec"), namespace)
    services = namespace["services"]
    await services.kv.set("notes", ["x"])
    assert (await services.kv.get("notes"), await services.timers.list(), services.settings) == (
        ["x"],
        [],
        {"channel": "team"},
    )
    namespace["store"].close()


async def test_the_idempotent_intent_handler_snippet_acts_once_per_intent_id():
    @dataclass
    class NoteIntent(Intent):
        text: str

        def validate(self) -> bool:
            return True

    namespace: dict = {}
    exec(compile(IDEMPOTENT[0], "docs/ROLES.md", "exec"), namespace)
    services = RecordingServices("notes")
    note = NoteIntent("db is back", intent_id="evt-1:notes:0")
    for _ in range(2):  # the second call is a replay after a crash
        await namespace["process_note"](note, services)
    await namespace["process_note"](NoteIntent("db is down", intent_id="evt-2:notes:0"), services)
    assert await services.kv.get("notes") == ["db is back", "db is down"]


def test_guide_quotes_the_exact_message_of_every_broken_file():
    quoted = []
    for path in sorted(BROKEN.glob("*.py")):
        if path.name == "many_problems.py":
            continue
        for problem in check_with_events([path])[1]:
            marker = "warning: " if problem.warning else ""
            line = f"roles/{path.name}:{problem.line}: {marker}{problem.message}"
            quoted.append((line in GUIDE, line))
    assert [line for found, line in quoted if not found] == []
    assert len(quoted) == 36
