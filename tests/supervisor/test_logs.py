"""configure_logging: one renderer for our logs and stdlib logs, JSON off a TTY, secrets hidden."""

import io
import json
import logging

import pytest
import structlog

from supervisor.logs import configure_logging

TOKEN = "xoxb-1234-5678-abcdefSECRET"


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
