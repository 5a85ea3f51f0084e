"""The contract checks, against a corpus of broken role files: each gives its one-line message."""

import json
import re
from pathlib import Path

import pytest

from common.intent_processor import IntentProcessor
from common.role_import import import_role_module
from llm_provider.role_contract import Problem, check_paths, check_role
from llm_provider.role_events import check_with_events
from llm_provider.role_template import render_role

BROKEN = Path(__file__).resolve().parents[1] / "roles" / "broken"
ROLE_KEYS = "{'config': ..., 'event_handlers': ..., 'tools': ..., 'intents': ...}"
EXPECTED = {
    "syntax_error.py": [
        "6: the file has a syntax error (invalid syntax); fix it so that "
        "'python -m py_compile syntax_error.py' passes",
    ],
    "import_error.py": [
        "3: importing the file raised ModuleNotFoundError: No module named "
        "'common.no_such_module_for_intentd'; roles may import only common, strands and the "
        "standard library, and do no work at import",
    ],
    "no_register_role.py": [
        "1: the file has no register_role() function; add 'def register_role()' returning "
        "{'config': ROLE_CONFIG, 'event_handlers': {...}, 'tools': [...], 'intents': {...}}",
    ],
    "register_raises.py": [
        "8: register_role() raised KeyError: 'missing'; it must only return a literal dict",
    ],
    "returns_list.py": [
        f"6: register_role() returned a list, not a dict; return {ROLE_KEYS}",
    ],
    "missing_and_unknown_keys.py": [
        "6: register_role() result lacks key(s) 'tools'; return all of 'config', "
        "'event_handlers', 'tools', 'intents' (empty if unused)",
        "6: register_role() result has unknown key(s) 'handlers'; remove them (allowed: "
        "'config', 'event_handlers', 'tools', 'intents')",
    ],
    "bad_config_values.py": [
        "3: ROLE_CONFIG['version'] is '1.0'; use a semantic version such as '1.0.0'",
        "3: ROLE_CONFIG lacks required key 'description'; add it",
        "3: ROLE_CONFIG['llm_type'] is 'SMART'; use one of 'WEAK', 'DEFAULT', 'STRONG'",
        "3: ROLE_CONFIG['fast_reply'] is 'yes'; use True or False",
        "3: ROLE_CONFIG has unknown key 'colour'; remove it or use one of name, version, "
        "description, llm_type, fast_reply, when_to_use, parameters, system_prompt, "
        "external_events",
    ],
    "duplicate_name.py": [
        "3: ROLE_CONFIG['name'] is 'greeter' but the file is 'duplicate_name.py'; the name must "
        "equal the file name, so set 'name': 'duplicate_name' or rename the file",
    ],
    "lowercase_event.py": [
        "10: event_handlers key 'workflow_completed' is not an UPPER_SNAKE_CASE name; "
        "use 'WORKFLOW_COMPLETED'",
    ],
    "event_typo.py": [
        "10: event_handlers key 'TIMER_EXPIERD' is not a known event name but is close to one; "
        "did you mean 'TIMER_EXPIRED'?",
    ],
    "handler_not_callable.py": [
        "6: event handler for 'TIMER_EXPIRED' is str 'handle_timer_expired', not callable; "
        "map the event to a function 'def handle_x(event_data, context)'",
    ],
    "handler_wrong_arity.py": [
        "6: event handler 'handle_timer_expired' for 'TIMER_EXPIRED' has signature (event_data); "
        "it must accept (event_data, context)",
    ],
    "tool_not_strands.py": [
        "6: tool 'set_alarm' is function, not a strands tool; decorate it with '@tool' from "
        "strands",
    ],
    "intent_not_intent.py": [
        "8: intents key 'AlarmIntent' is not a subclass of common.intents.Intent; declare "
        "'@dataclass class XIntent(Intent)'",
    ],
    "intent_core.py": [
        "12: intents key 'NotificationIntent' is a core intent, carried out by intentd for every "
        "role; handle only intents this file defines, e.g. '@dataclass class XIntent(Intent)'",
    ],
    "intent_without_validate.py": [
        "10: intent 'AlarmIntent' does not implement validate(); add 'def validate(self) -> bool'",
    ],
    "intent_handler_sync.py": [
        "18: intent handler 'process_alarm' is not an async function; write "
        "'async def process_x(intent, services)'",
    ],
    "many_problems.py": [
        "3: ROLE_CONFIG['version'] is 'one'; use a semantic version such as '1.0.0'",
        "6: event handler 'handle_tick' for 'fast-tick' has signature (event_data); it must "
        "accept (event_data, context)",
        "10: event_handlers key 'fast-tick' is not an UPPER_SNAKE_CASE name; use 'FAST_TICK'",
    ],
    # the mistakes that once passed silently
    "returns_none_sync.py": [
        "8: warning: event handler 'handle_tick' can reach its end without 'return', so it "
        "returns None and asks for nothing; end every path with 'return [...]' ('return []' when "
        "there is nothing to do)",
    ],
    "returns_none_async.py": [
        "10: warning: event handler 'handle_tick' can reach its end without 'return', so it "
        "returns None and asks for nothing; end every path with 'return [...]' ('return []' when "
        "there is nothing to do)",
    ],
    "event_unpublished.py": [
        "21: warning: event_handlers key 'DEPLOY_FINSHED' is published by nothing intentd knows "
        "of (common/events.py, a schedule, a role's EventIntent or external_events); did you "
        "mean 'DEPLOY_FINISHED'?",
    ],
    "clock_time.py": [
        "11: warning: event handler 'handle_tick' reads the wall clock with time.time(), so a "
        "replayed event asks for different intents; use context.timestamp (epoch seconds) instead",
    ],
    "clock_datetime.py": [
        "15: warning: '_stamp', called by event handler 'handle_tick', reads the wall clock with "
        "datetime.now(), so a replayed event asks for different intents; use context.timestamp "
        "(epoch seconds) instead",
    ],
    "print_in_handler.py": [
        "7: warning: event handler 'handle_tick' calls print(), whose output is mixed into the "
        "console channel's stdout; return a NotificationIntent, or log with services.log in an "
        "intent handler",
    ],
    "network_httpx.py": [
        "3: the file imports 'httpx', which is not common, strands, the standard library or in "
        "roles.allowed_imports; remove the import, or add 'httpx' to roles.allowed_imports in "
        "config.yaml",
        "9: event handler 'handle_tick' calls httpx.get() (network I/O), which blocks the "
        "daemon's one event loop; event handlers are pure, so return an intent and do the I/O in "
        "its intent handler",
    ],
    "network_urllib.py": [
        "9: event handler 'handle_tick' calls urlopen() (network I/O), which blocks the daemon's "
        "one event loop; event handlers are pure, so return an intent and do the I/O in its "
        "intent handler",
    ],
    "module_state.py": [
        "10: event handler 'handle_disk_alert' declares 'global ALERTS'; handlers keep no state "
        "between events (a reload loses it), so keep it in services.kv from an intent handler",
        "12: event handler 'handle_disk_alert' changes the module-level dict 'LAST_ALERT' "
        "(assigns LAST_ALERT[event_data['host']]); module state is lost on reload and makes the "
        "handler impure, so keep it in services.kv from an intent handler",
    ],
    "imports_other_role.py": [
        "3: the file imports 'roles.timer', another role; roles never import each other, so "
        "define what you need in this file or talk to the other role through an event "
        "(EventIntent)",
    ],
    "tool_without_args.py": [
        "9: warning: tool 'summarise' does not describe argument(s) 'text', 'words' in its "
        "docstring's 'Args:' section, so the model gets no description of them; add 'Args:' with "
        "a line 'text: what it is' for each",
    ],
    "kv_not_awaited.py": [
        "23: intent handler 'process_note' calls services.kv.get() without 'await', so nothing "
        "happens and it gets a coroutine, not the result; services.kv and services.timers are "
        "async, so write 'await services.kv.get(...)'",
    ],
}


def lines(problems: list[Problem]) -> list[str]:
    return [f"{p.line}: {'warning: ' if p.warning else ''}{p.message}" for p in problems]


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_broken_file_gives_its_one_line_messages(name):
    roles, problems = check_with_events([BROKEN / name])
    loads = all(line.split(": ", 2)[1] == "warning" for line in EXPECTED[name])
    assert (len(roles), lines(problems)) == (int(loads), EXPECTED[name])


def test_every_broken_file_has_an_expected_message():
    assert sorted(p.name for p in BROKEN.glob("*.py")) == sorted(EXPECTED)


def test_problem_reads_path_line_message_relative_to_the_working_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    problem = Problem(tmp_path / "roles" / "foo.py", 41, "rule broken")
    assert (str(problem), problem.to_json()) == (
        "roles/foo.py:41: rule broken",
        {"path": "roles/foo.py", "line": 41, "severity": "error", "message": "rule broken"},
    )


def test_warning_reads_path_line_warning_message(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    problem = Problem(tmp_path / "roles" / "foo.py", 7, "rule bent", warning=True)
    assert (str(problem), problem.to_json()["severity"]) == (
        "roles/foo.py:7: warning: rule bent",
        "warning",
    )


def write_role(folder: Path, name: str, text: str | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.py"
    path.write_text(text if text is not None else render_role(name))
    return path


def test_template_role_passes_every_check(tmp_path):
    role, problems = check_role(write_role(tmp_path, "greeter"), fresh=True)
    assert (problems, role.name, list(role.event_handlers)) == (
        [],
        "greeter",
        ["GREETER_REQUESTED"],
    )


def test_role_name_must_be_unique_across_checked_files(tmp_path):
    good = write_role(tmp_path, "greeter")
    roles, problems = check_paths([good, BROKEN / "duplicate" / "greeter.py"])
    assert ([role.path for role in roles], lines(problems)) == (
        [good],
        [
            f"3: role name 'greeter' is already used by {good}; role names must be unique, "
            "so rename one of them"
        ],
    )


def test_folder_is_expanded_to_its_role_files_skipping_underscored(tmp_path):
    write_role(tmp_path, "greeter")
    write_role(tmp_path, "_draft", "this is not python")
    roles, problems = check_paths([tmp_path])
    assert ([role.name for role in roles], problems) == (["greeter"], [])


def test_file_name_that_is_not_snake_case_is_reported(tmp_path):
    path = write_role(tmp_path, "My-Role", render_role("greeter"))
    assert lines(check_role(path, fresh=True)[1])[0] == (
        "1: role file name 'My-Role.py' is not lowercase snake_case; rename it, e.g. my_role.py"
    )


def test_tool_without_docstring_is_reported(tmp_path):
    source = re.sub(
        r'(async def greeter_note.*?\n)    """.*?"""\n', r"\1", render_role("greeter"), flags=re.S
    )
    problems = check_role(write_role(tmp_path, "greeter", source), fresh=True)[1]
    assert [p.message for p in problems] == [
        "tool 'greeter_note' has no description; give the function a docstring (the model reads it)"
    ]


def test_bad_parameter_spec_is_reported_with_its_key_path(tmp_path):
    source = render_role("greeter").replace(
        '    "fast_reply": True,',
        '    "fast_reply": True,\n    "parameters": {"key": {"type": "str", "description": "k"}},',
    )
    problems = check_role(write_role(tmp_path, "greeter", source), fresh=True)[1]
    assert [p.message for p in problems] == [
        "ROLE_CONFIG['parameters']['key']['type'] is 'str'; Input should be 'string', 'integer', "
        "'number', 'boolean', 'array' or 'object'"
    ]


def test_problem_json_is_plain_data():
    problem = Problem(BROKEN / "x.py", 1, "m")
    assert json.loads(json.dumps(problem.to_json()))["line"] == 1


def test_missing_file_is_one_problem(tmp_path):
    assert lines(check_role(tmp_path / "ghost.py")[1]) == [
        "1: the file cannot be read (No such file or directory); check that it exists and is "
        "readable"
    ]


def test_role_calling_sys_exit_at_import_is_reported_not_fatal(tmp_path):
    path = write_role(tmp_path, "quitter", "import sys\n\nsys.exit(3)\n")
    assert lines(check_role(path, fresh=True)[1]) == [
        "3: importing the file raised SystemExit: 3; roles may import only common, strands and "
        "the standard library, and do no work at import"
    ]


def test_intent_handler_with_three_parameters_is_reported(tmp_path):
    source = render_role("greeter").replace(
        "async def process_greeter_note(intent, services):",
        "async def process_greeter_note(intent, services, extra):",
    )
    problems = check_role(write_role(tmp_path, "greeter", source), fresh=True)[1]
    assert [p.message for p in problems] == [
        "intent handler 'process_greeter_note' has signature (intent, services, extra); it must "
        "accept (intent) or (intent, services)"
    ]


def test_full_parameter_spec_is_accepted(tmp_path):
    spec = (
        '"parameters": {"key": {"type": "string", "description": "k", "required": True, '
        '"enum": ["a", "b"], "examples": ["a"]}},'
    )
    source = render_role("greeter").replace('    "fast_reply": True,', f"    {spec}")
    assert check_role(write_role(tmp_path, "greeter", source), fresh=True)[1] == []


def test_intent_defined_in_another_module_is_reported(tmp_path):
    source = render_role("greeter").replace(
        '"intents": {GreeterNoteIntent: process_greeter_note}',
        '"intents": {FarIntent: process_greeter_note}',
    )
    source = source.replace(
        "\nROLE_CONFIG",
        "\nfrom tests.common.test_intent_processor import PingIntent as FarIntent\n\nROLE_CONFIG",
        1,
    )
    path = write_role(tmp_path, "greeter", source)
    problems = check_role(path, fresh=True, allowed_imports=["tests.common"])[1]
    assert [p.message for p in problems] == [
        "intents key 'PingIntent' is defined in module 'tests.common.test_intent_processor', not "
        "in this file; handle only intents this file defines, e.g. '@dataclass class "
        "XIntent(Intent)'"
    ]


def test_custom_event_name_far_from_every_known_one_is_accepted(tmp_path):
    source = render_role("greeter").replace("GREETER_REQUESTED", "TIMER_SNOOZED")
    assert check_role(write_role(tmp_path, "greeter", source), fresh=True)[1] == []


SIGNATURES = [
    "(intent)",
    "(intent, services)",
    "(intent, services=None, extra=None)",
    "(intent, *args)",
    "(*args)",
    "(intent, *, key)",
    "(intent, *, key=1)",
    "(intent, services, extra)",
    "()",
]


@pytest.mark.parametrize("signature", SIGNATURES)
def test_contract_and_processor_agree_on_intent_handler_signatures(tmp_path, signature):
    source = render_role("greeter").replace(
        "async def process_greeter_note(intent, services):",
        f"async def process_greeter_note{signature}:",
    )
    path = write_role(tmp_path, "greeter", source)
    module = import_role_module(path, fresh=True)
    problems = check_role(path, fresh=True)[1]
    try:
        IntentProcessor().register_role_intent_handler(
            module.GreeterNoteIntent, module.process_greeter_note, role="greeter"
        )
    except TypeError:
        accepted = False
    else:
        accepted = True
    assert accepted == (problems == [])


def test_a_nul_byte_is_reported_at_its_own_line(tmp_path):
    source = render_role("nul_byte").split("\n")
    source[6] += "\0"
    path = tmp_path / "nul_byte.py"
    path.write_text("\n".join(source))
    role, problems = check_role(path)
    assert role is None
    assert [(p.line, p.message) for p in problems] == [
        (7, "the file holds a NUL byte; remove it (a bad copy or an editor put it there)")
    ]


def test_a_role_file_over_300_lines_is_a_problem(tmp_path):
    path = tmp_path / "long_role.py"
    source = render_role("long_role")
    padding = 301 - source.count("\n")
    path.write_text(source + "# padding\n" * padding)
    role, problems = check_role(path)
    assert role is None
    assert [(p.line, p.message) for p in problems] == [
        (
            301,
            "the file has 301 lines, over the 300-line limit for a role file; split it into "
            "two roles or move a helper into common/",
        )
    ]


def test_a_role_file_of_300_lines_passes(tmp_path):
    path = tmp_path / "long_role.py"
    source = render_role("long_role")
    path.write_text(source + "# padding\n" * (300 - source.count("\n")))
    assert path.read_text().count("\n") == 300
    role, problems = check_role(path)
    assert (role is not None, problems) == (True, [])


def test_a_problem_about_the_whole_file_has_no_line_number(tmp_path):
    problem = Problem(tmp_path / "slow.py", 0, "import did not finish within 2 s")
    assert str(problem) == f"{tmp_path / 'slow.py'}: import did not finish within 2 s"
