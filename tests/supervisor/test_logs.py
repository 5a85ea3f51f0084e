"""configure_logging: one renderer for our logs and stdlib logs, JSON off a TTY, secrets hidden."""

import io
import json
import logging
import shutil
from pathlib import Path

import pytest
import structlog

from llm_provider.tool_runner import run_tool
from supervisor.logs import configure_logging
from supervisor.supervisor import Supervisor
from tests.role_files import make_config

TOKEN = "xoxb-1234-5678-abcdefSECRET"
ROLES = Path(__file__).resolve().parents[2] / "roles"


pytestmark = pytest.mark.usefixtures("restore_logging")


def records(stream: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_auto_format_writes_json_lines_to_a_stream_that_is_not_a_tty():
    stream = io.StringIO()
    configure_logging("INFO", "auto", stream)
    structlog.get_logger("intentd.test").info("timer_created", timer_id="tmr-1")
    [record] = records(stream)
    assert (record["event"], record["timer_id"], record["level"], record["logger"]) == (
        "timer_created",
        "tmr-1",
        "info",
        "intentd.test",
    )


def test_level_filters_out_lower_events():
    stream = io.StringIO()
    configure_logging("WARNING", "json", stream)
    log = structlog.get_logger("intentd.test")
    log.info("quiet")
    log.warning("loud")
    assert [record["event"] for record in records(stream)] == ["loud"]


def test_a_line_under_the_level_runs_no_processor():
    stream = io.StringIO()
    configure_logging("INFO", "json", stream)
    seen = []
    structlog.get_config()["processors"].insert(
        0, lambda _l, _m, event: seen.append(event) or event
    )
    log = structlog.get_logger("intentd.test")
    log.debug("dropped")
    log.info("kept")
    assert [event["event"] for event in seen] == ["kept"]


def test_a_new_level_reaches_a_logger_already_used():
    stream = io.StringIO()
    log = structlog.get_logger("intentd.test")
    configure_logging("INFO", "json", stream)
    log.debug("before")
    configure_logging("DEBUG", "json", stream)  # what a reload does
    log.debug("after")
    assert [record["event"] for record in records(stream)] == ["after"]


def test_a_secret_field_and_a_token_inside_a_stdlib_message_are_redacted():
    stream = io.StringIO()
    configure_logging("INFO", "json", stream)
    structlog.get_logger("intentd.slack").info("slack_connecting", bot_token=TOKEN)
    logging.getLogger("slack_sdk.socket_mode").warning("connecting with %s now", TOKEN)
    assert TOKEN not in stream.getvalue()
    ours, theirs = records(stream)
    assert ours["bot_token"] == "[redacted]"
    assert theirs["event"] == "connecting with [redacted] now"


def test_token_usage_counts_stay_visible_while_secret_names_are_redacted():
    stream = io.StringIO()
    configure_logging("INFO", "json", stream)
    structlog.get_logger("intentd.workflows").info(
        "workflow_finished", inputTokens=140, outputTokens=10, totalTokens=150, api_key="k1",
        Authorization="Bearer abcdefgh12345678", app_token="xapp-1-A1-secret",
    )  # fmt: skip
    (record,) = records(stream)
    counts = (record["inputTokens"], record["outputTokens"], record["totalTokens"])
    assert counts == (140, 10, 150)
    assert [record[k] for k in ("api_key", "Authorization", "app_token")] == ["[redacted]"] * 3


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("key sk-ant-api03-abcdEFGH1234", "key [redacted]"),
        ("aws AKIAABCDEFGHIJKLMNOP here", "aws [redacted] here"),
        ("header Bearer abc.def-ghi_jkl", "header Bearer [redacted]"),
        ("10 tokens used", "10 tokens used"),
    ],
)
def test_token_shaped_strings_are_redacted_anywhere(text, shown):
    stream = io.StringIO()
    configure_logging("INFO", "json", stream)
    logging.getLogger("openai").warning(text)
    assert records(stream)[0]["event"] == shown


@pytest.mark.parametrize("fmt", ["json", "console"])
def test_a_logged_exception_shows_no_frame_locals(fmt):
    stream = io.StringIO()
    configure_logging("INFO", fmt, stream)

    def connect():
        password_in_a_local = "hunter2-" + "local-secret"
        raise ConnectionError(f"refused after {len(password_in_a_local)} characters")

    try:
        connect()
    except ConnectionError as err:
        structlog.get_logger("intentd.test").error("connect_failed", exc_info=err)
    output = stream.getvalue()
    assert "ConnectionError" in output and "refused" in output
    assert "local-secret" not in output


def test_third_party_stdlib_logs_go_through_the_same_renderer():
    stream = io.StringIO()
    configure_logging("INFO", "json", stream)
    logging.getLogger("urllib3.connectionpool").warning("retrying %d", 3)
    [record] = records(stream)
    assert (record["event"], record["level"], record["logger"]) == (
        "retrying 3",
        "warning",
        "urllib3.connectionpool",
    )
    assert "timestamp" in record


MARKER = "MARKER-7f3a9c-user-text"


def test_values_that_may_carry_user_text_are_cut_to_a_marked_prefix():
    stream = io.StringIO()
    configure_logging("INFO", "json", stream)
    log = structlog.get_logger("intentd.test")
    log.info("timer_created", timer_id="tmr-1", label=MARKER, details={"note": MARKER})
    log.info("short_label", label="tea")
    [created, short] = records(stream)
    assert (created["label"], created["details"], created["timer_id"]) == (
        f"MARKER-7…[{len(MARKER)} chars]",
        "[dict not logged]",
        "tmr-1",
    )
    assert short["label"] == "tea"


def test_quoted_values_in_errors_and_exception_texts_are_masked():
    stream = io.StringIO()
    configure_logging("INFO", "json", stream)
    log = structlog.get_logger("intentd.test")
    log.warning("intent_failed", error=f"no timer has id '{MARKER}'; get one from list_timers")
    try:
        raise ValueError(f"bad input {MARKER!r}")
    except ValueError as err:
        log.error("handler_failed", error=f"handler raised ValueError: {err}", exc_info=err)
    failed, handler = records(stream)
    assert failed["error"] == "no timer has id '…'; get one from list_timers"
    assert handler["error"] == "handler raised ValueError: bad input '…'"
    assert MARKER not in stream.getvalue()


def test_the_log_channel_notification_keeps_its_text():
    stream = io.StringIO()
    configure_logging("INFO", "json", stream)
    structlog.get_logger("intentd.channels").info("notification", message=MARKER)
    assert records(stream)[0]["message"] == MARKER


async def test_a_failed_tool_call_does_not_log_its_argument(tmp_path):
    (tmp_path / "roles").mkdir()
    shutil.copy(ROLES / "timer.py", tmp_path / "roles" / "timer.py")
    stream = io.StringIO()
    configure_logging("DEBUG", "json", stream)
    supervisor = Supervisor(config=make_config(tmp_path))
    async with supervisor.running():
        cancel = supervisor.role_registry.roles["timer"].module.cancel_timer
        reply = await run_tool(
            cancel, {"timer_id": MARKER}, supervisor.intent_processor, "timer", {}
        )
    assert not reply["success"] and MARKER in reply["message"]  # the caller is told
    assert MARKER not in stream.getvalue()
    assert [r["event"] for r in records(stream) if r["event"] == "intent_failed"]
