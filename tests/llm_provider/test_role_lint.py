"""The static role checks on small sources: what they find, and what they rightly leave alone."""

import textwrap

import pytest

from llm_provider.role_lint import lint_role

REGISTER = """

def register_role():
    return {"config": {}, "event_handlers": {"PING": handle_ping}, "tools": [], "intents": {}}
"""


def found(body: str, allowed: tuple[str, ...] = ()) -> list[tuple[int, bool, str]]:
    """Return (line, warning, first words) of each finding in ``body`` plus a registration."""
    findings = lint_role(textwrap.dedent(body) + REGISTER, allowed)
    return [(f.line, f.warning, " ".join(f.message.split()[:4])) for f in findings]


@pytest.mark.parametrize(
    "body",
    [
        "def handle_ping(event_data, context):\n    return []\n",
        "def handle_ping(e, c):\n    if e:\n        return [1]\n    else:\n        return []\n",
        "def handle_ping(e, c):\n    try:\n        return [e['x']]\n    except KeyError:\n"
        "        return []\n",
        "def handle_ping(e, c):\n    try:\n        pass\n    finally:\n        return []\n",
        "def handle_ping(e, c):\n    while True:\n        for x in e:\n            break\n"
        "        return []\n",
        "def handle_ping(e, c):\n    match e:\n        case {'x': x}:\n            return [x]\n"
        "        case _:\n            raise ValueError(e)\n",
        "def handle_ping(e, c):\n    with open_lock(e):\n        return []\n",
    ],
    ids=["plain", "if-else", "try-except", "finally", "while-true", "match", "with"],
)
def test_handler_that_returns_on_every_path_is_not_reported(body):
    assert found(body.replace("open_lock", "context_of")) == []


@pytest.mark.parametrize(
    "body",
    [
        "def handle_ping(e, c):\n    if e:\n        return []\n",
        "def handle_ping(e, c):\n    while True:\n        break\n    \n",
        "def handle_ping(e, c):\n    match e:\n        case {'x': x}:\n            return [x]\n",
        "def handle_ping(e, c):\n    try:\n        return []\n    except KeyError:\n        pass\n",
        "async def handle_ping(e, c):\n    '''Only a docstring.'''\n",
    ],
    ids=["if-only", "while-break", "match-no-wildcard", "except-pass", "docstring"],
)
def test_handler_with_a_path_off_its_end_is_a_warning(body):
    assert found(body) == [(1, True, "event handler 'handle_ping' can")]


def test_registered_handler_with_any_name_is_checked_and_unregistered_handle_is_not():
    source = (
        "import time\n\ndef on_ping(e, c):\n    return [time.time()]\n\n"
        "def handle_other(e, c):\n    return [time.time()]\n\n"
        "def register_role():\n    return {'event_handlers': {'PING': on_ping}}\n"
    )
    assert [(f.line, f.warning) for f in lint_role(source)] == [(4, True)]


def test_without_a_readable_registration_every_handle_function_is_checked():
    source = (
        "import time\n\ndef handle_ping(e, c):\n    return [time.time()]\n\n"
        "HANDLERS = {'PING': handle_ping}\n\n"
        "def register_role():\n    return {'event_handlers': HANDLERS}\n"
    )
    assert [(f.line, f.warning) for f in lint_role(source)] == [(4, True)]


def test_clock_reads_through_any_import_spelling_are_found():
    body = """\
    import datetime as dt
    from time import time_ns

    def handle_ping(e, c):
        return [dt.datetime.now(), dt.date.today(), time_ns()]
    """
    assert [line for line, warning, _ in found(body)] == [5, 5, 5]


def test_local_name_that_shadows_a_builtin_or_container_is_not_reported():
    body = """\
    SEEN = {}

    def handle_ping(e, c):
        print = str
        SEEN = {}
        SEEN["x"] = print(e)
        return [SEEN]
    """
    assert found(body) == []


def test_pure_reads_of_time_and_module_containers_are_not_reported():
    body = """\
    from datetime import UTC, datetime

    LIMITS = {"disk": 90}

    def handle_ping(e, c):
        when = datetime.fromtimestamp(c.timestamp, UTC)
        return [LIMITS.get("disk"), when, sorted(LIMITS)]
    """
    assert found(body) == []


@pytest.mark.parametrize(
    ("line", "what"),
    [
        ("    CACHE.append(e)", "calls CACHE.append()"),
        ("    CACHE[0] += 1", "assigns CACHE[0]"),
        ("    del CACHE[0]", "del CACHE[0]"),
    ],
)
def test_each_kind_of_change_to_a_module_container_is_an_error(line, what):
    source = f"CACHE = list()\n\ndef handle_ping(e, c):\n{line}\n    return []\n" + REGISTER
    (finding,) = lint_role(source)
    assert (finding.line, finding.warning, f"({what})" in finding.message) == (4, False, True)


def test_helper_called_twice_is_reported_once_and_recursion_ends():
    body = """\
    import subprocess

    def handle_ping(e, c):
        return [_run(e), _run(c)]

    def _run(x):
        subprocess.run(["true"])
        return _run(x)
    """
    assert found(body) == [(7, False, "'_run', called by event")]


@pytest.mark.parametrize(
    ("statement", "module"),
    [
        ("from roles import timer", "roles.timer"),
        ("from . import timer", "."),
        ("from .timer import TimerIntent", ".timer"),
        ("import roles.timer", "roles.timer"),
    ],
)
def test_every_spelling_of_importing_another_role_is_an_error(statement, module):
    (finding,) = lint_role(statement + "\n")
    assert (finding.warning, finding.blocks_import, finding.message.split(",")[0]) == (
        False,
        True,
        f"the file imports {module!r}",
    )


def test_allowlisted_module_and_its_submodules_may_be_imported():
    source = "import yaml\nimport yaml.constructor\nfrom pydantic import BaseModel\n"
    assert [f.line for f in lint_role(source, ["yaml"])] == [3]


def test_stdlib_common_and_strands_imports_are_allowed():
    source = "import json\nfrom common.intents import Intent\nfrom strands import tool\n"
    assert lint_role(source) == []


def test_tool_args_section_with_types_and_the_injected_context_are_understood():
    source = '''\
from strands import tool


@tool(context=True)
async def note(text: str, count: int, tool_context) -> dict:
    """Keep a note.

    Args:
        text (str): what to keep
        count: how many times
    """
    return {}


@tool
def other(key: str) -> dict:
    """Read a note.

    Args:
        text: not the argument
    Returns:
        key: not an argument description
    """
    return {}
'''
    assert [(f.line, "'key'" in f.message) for f in lint_role(source)] == [(16, True)]


INTENT_REGISTER = """

def register_role():
    return {"config": {}, "event_handlers": {}, "tools": [], "intents": {NoteIntent: process_note}}
"""


def intent_findings(body: str) -> list[tuple[int, str]]:
    findings = lint_role(textwrap.dedent(body) + INTENT_REGISTER)
    return [(f.line, f.message) for f in findings if f.rule == "unawaited"]


def test_a_services_call_without_await_in_an_intent_handler_is_an_error():
    body = (
        "async def process_note(intent, svc):\n"
        "    notes = svc.kv.get('notes', [])\n"
        "    svc.timers.create(duration=5)\n"
        "    await svc.kv.set('notes', notes)\n"
    )
    assert [(line, msg.split(" without")[0]) for line, msg in intent_findings(body)] == [
        (2, "intent handler 'process_note' calls svc.kv.get()"),
        (3, "intent handler 'process_note' calls svc.timers.create()"),
    ]
    assert not lint_role(textwrap.dedent(body) + INTENT_REGISTER)[0].warning


def test_awaited_gathered_and_unrelated_calls_are_not_reported():
    body = (
        "import asyncio\n\n"
        "async def process_note(intent, services):\n"
        "    await services.kv.get('a')\n"
        "    await asyncio.gather(services.kv.get('b'), services.timers.list())\n"
        "    intent.data.get('x')\n"
        "    services.publish('NOTE_KEPT', {})\n"
    )
    assert intent_findings(body) == []
