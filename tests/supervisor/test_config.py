from pathlib import Path

import pytest

from common.errors import ConfigError
from supervisor.config import Config, load_config


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return path


def test_no_file_gives_the_embedded_defaults():
    config = load_config(None)
    assert (
        config.supervisor.heartbeat_interval,
        config.supervisor.fast_heartbeat_interval,
        config.supervisor.shutdown_timeout,
        config.roles.directory,
        config.channels.default,
        config.logging.level,
        config.logging.format,
    ) == (30.0, 5.0, 10.0, Path("roles"), "console", "INFO", "auto")


def test_the_shipped_config_file_is_valid():
    config = load_config(Path(__file__).parents[2] / "config.yaml", environ={})
    assert config.channels.default == "console"


def test_values_and_floats_are_read(tmp_path):
    config = load_config(write(tmp_path, "supervisor: {heartbeat_interval: 0.5}\n"), environ={})
    assert config.supervisor.heartbeat_interval == 0.5


def test_relative_paths_resolve_against_the_config_folder(tmp_path):
    config = load_config(write(tmp_path, "roles: {directory: my_roles}\n"), environ={})
    assert config.resolve(config.roles.directory) == tmp_path / "my_roles"


def test_environment_variables_are_expanded_with_defaults(tmp_path):
    path = write(tmp_path, "slack: {bot_token: '${BOT}', app_token: '${APP:-xapp-none}'}\n")
    config = load_config(path, environ={"BOT": "xoxb-1"})
    assert (config.slack.bot_token, config.slack.app_token) == ("xoxb-1", "xapp-none")


def test_a_missing_environment_variable_names_the_key_path(tmp_path):
    path = write(tmp_path, "slack: {bot_token: '${BOT}'}\n")
    with pytest.raises(ConfigError) as err:
        load_config(path, environ={})
    assert str(err.value) == (
        f"{path}: slack.bot_token: environment variable 'BOT' is not set; "
        "set it or write '${BOT:-default}'"
    )


def test_an_unknown_key_is_an_error_naming_its_path(tmp_path):
    path = write(tmp_path, "supervisor: {heartbeat_intervall: 3}\n")
    with pytest.raises(ConfigError) as err:
        load_config(path, environ={})
    assert str(err.value) == (
        f"{path}: supervisor.heartbeat_intervall: unknown key; check the spelling against the "
        "reference"
    )


def test_a_wrong_value_says_what_was_expected(tmp_path):
    path = write(tmp_path, "supervisor: {shutdown_timeout: -1}\nlogging: {format: xml}\n")
    with pytest.raises(ConfigError) as err:
        load_config(path, environ={})
    assert str(err.value) == (
        f"{path}: supervisor.shutdown_timeout: Input should be greater than 0, got -1; "
        "logging.format: Input should be 'auto', 'console' or 'json', got 'xml'"
    )


def test_invalid_yaml_names_the_line(tmp_path):
    path = write(tmp_path, "supervisor:\n  heartbeat_interval: [1,\n")
    with pytest.raises(ConfigError, match=rf"^{path}:3: the file is not valid YAML"):
        load_config(path, environ={})


def test_a_non_mapping_file_is_rejected(tmp_path):
    with pytest.raises(ConfigError, match="the top level must be a mapping"):
        load_config(write(tmp_path, "- a\n- b\n"), environ={})


def test_a_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="cannot read the config file"):
        load_config(tmp_path / "nope.yaml")


def test_an_empty_file_means_defaults(tmp_path):
    assert load_config(write(tmp_path, ""), environ={}).supervisor == Config().supervisor


def test_a_malformed_schedule_event_name_is_rejected(tmp_path):
    path = write(tmp_path, "schedules: [{name: daily, event: daily_report, interval: 60}]\n")
    with pytest.raises(ConfigError, match=r"schedules\.0\.event: Value error, schedule event"):
        load_config(path, environ={})


def test_slack_tokens_come_from_the_environment_when_the_file_has_none(tmp_path):
    path = write(tmp_path, "slack: {enabled: true}\n")
    environ = {"SLACK_BOT_TOKEN": "xoxb-env", "SLACK_APP_TOKEN": "xapp-env"}
    config = load_config(path, environ=environ)
    assert (config.slack.bot_token, config.slack.app_token) == ("xoxb-env", "xapp-env")


def test_a_slack_token_in_the_file_wins_over_the_environment(tmp_path):
    path = write(tmp_path, "slack: {bot_token: xoxb-file, mode: none}\n")
    config = load_config(path, environ={"SLACK_BOT_TOKEN": "xoxb-env"})
    assert (config.slack.bot_token, config.slack.mode) == ("xoxb-file", "none")


def test_slack_enabled_without_an_app_token_is_a_clear_error_that_echoes_no_token(tmp_path):
    path = write(tmp_path, "slack: {enabled: true, bot_token: xoxb-secret}\n")
    with pytest.raises(ConfigError) as err:
        load_config(path, environ={})
    assert str(err.value) == (
        f"{path}: slack: slack.mode is socket but no app token is set; set SLACK_APP_TOKEN "
        "or slack.app_token to the app's xapp-... token, or set slack.mode: http or none"
    )


def test_an_old_file_naming_socket_mode_gets_one_line_naming_the_new_key(tmp_path):
    path = write(tmp_path, "slack: {enabled: true, bot_token: xoxb-secret, socket_mode: true}\n")
    with pytest.raises(ConfigError) as err:
        load_config(path, environ={})
    assert str(err.value) == (
        f"{path}: slack: slack.socket_mode is replaced by slack.mode; write mode: socket (Socket "
        "Mode), mode: http (the Events API over HTTP) or mode: none (Slack out only)"
    )


def test_http_mode_takes_its_signing_secret_from_the_environment(tmp_path):
    path = write(tmp_path, "slack: {enabled: true, bot_token: xoxb-file, mode: http}\n")
    config = load_config(path, environ={"SLACK_SIGNING_SECRET": "s3cret"})
    assert (config.slack.mode, config.slack.signing_secret, config.slack.app_token) == (
        "http",
        "s3cret",
        None,
    )


def test_http_mode_without_a_signing_secret_is_a_clear_error(tmp_path):
    path = write(tmp_path, "slack: {enabled: true, bot_token: xoxb-secret, mode: http}\n")
    with pytest.raises(ConfigError) as err:
        load_config(path, environ={})
    assert str(err.value) == (
        f"{path}: slack: slack.mode is http but no signing secret is set; set "
        "SLACK_SIGNING_SECRET or slack.signing_secret to the app's signing secret (Basic "
        "Information page)"
    )


def test_http_mode_needs_the_http_api(tmp_path):
    path = write(
        tmp_path,
        "slack: {enabled: true, bot_token: xoxb-t, mode: http, "
        "signing_secret: s}\nhttp: {enabled: false}\n",
    )
    with pytest.raises(ConfigError, match=r"slack\.mode is http but http\.enabled is false"):
        load_config(path, environ={})


def test_a_reconnect_cap_below_the_first_wait_is_a_clear_error(tmp_path):
    path = write(tmp_path, "slack: {reconnect_interval: 10, reconnect_max: 5}\n")
    with pytest.raises(ConfigError) as err:
        load_config(path, environ={})
    assert str(err.value) == (
        f"{path}: slack: slack.reconnect_max (5.0) is shorter than slack.reconnect_interval "
        "(10.0); set it to at least that"
    )


def test_two_schedules_with_one_name_are_rejected(tmp_path):
    path = write(
        tmp_path,
        "schedules:\n"
        "  - {name: report, event: REPORT_DUE, every: 60}\n"
        "  - {name: cleanup, event: CLEANUP_DUE, every: 60}\n"
        "  - {name: report, event: CLEANUP_DUE, every: 3600}\n",
    )
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ={})
    assert str(caught.value) == (
        f"{path}: schedules: schedule name 'report' is used by schedules.0 and schedules.2; "
        "give each schedule its own name"
    )


def test_a_cron_expression_that_never_matches_is_rejected(tmp_path):
    path = write(tmp_path, "schedules: [{name: leap, event: LEAP_DAY, cron: '0 0 30 2 *'}]\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ={})
    assert str(caught.value) == (
        f"{path}: schedules.0: schedule 'leap' has cron '0 0 30 2 *', which matches no date; "
        "check its day-of-month and month fields"
    )


def test_a_rare_but_real_cron_date_is_accepted(tmp_path):
    path = write(tmp_path, "schedules: [{name: leap, event: LEAP_DAY, cron: '0 0 29 2 *'}]\n")
    assert load_config(path, environ={}).schedules[0].cron == "0 0 29 2 *"
