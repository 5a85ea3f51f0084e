"""config.yaml: read within bounds (config_yaml.py), checked with pydantic, ``${VAR:-default}``
expanded.

Unknown keys are errors, and every error names the file, the key path and what was expected; a
value under a secret key (``SECRET_KEYS``, ``llm.params``) is never quoted. Relative paths are
relative to the config file's folder.
"""

import os
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterBadDateError, croniter
from pydantic import (
    AliasChoices,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from common.errors import ConfigError
from common.events import check_event_type
from llm_provider.config import ConfigSection, LLMConfig, RouterConfig
from supervisor.config_yaml import read_yaml

Seconds = Annotated[float, Field(gt=0)]
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-(.*?))?\}")
_URL_PASSWORD = re.compile(r"^([a-z]+://[^:/@]*:)[^@]*@")


class SupervisorConfig(ConfigSection):
    heartbeat_interval: Seconds = 30.0
    fast_heartbeat_interval: Seconds = 5.0
    shutdown_timeout: Seconds = 10.0


class RolesConfig(ConfigSection):
    directory: Path = Path("roles")
    settings: dict[str, dict[str, Any]] = {}
    allowed_imports: list[str] = []  # modules role files may import besides common and strands
    handler_timeout: Seconds = 1.0
    intent_timeout: Seconds = 5.0
    block_threshold: Seconds = 0.1
    quarantine_failures: Annotated[int, Field(ge=1)] = 5
    quarantine_window: Seconds = 60.0
    import_timeout: Seconds = 5.0  # a role file's trial import must finish within this
    strict: bool = False


class BusConfig(ConfigSection):
    max_queue: Annotated[int, Field(ge=1)] = 10_000


class ChannelsConfig(ConfigSection):
    default: str = "console"
    admin: str | None = None
    aliases: dict[str, str] = {}
    mention_on_high: str = "<!here>"


class LoggingConfig(ConfigSection):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    format: Literal["auto", "console", "json"] = "auto"

    @field_validator("level", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value


class StorageConfig(ConfigSection):
    path: Path = Path("var/intentd.db")  # SQLite, the embedded default
    synchronous: Literal["normal", "full"] = "normal"
    url: str | None = None  # postgresql://user@host:port/db: the store several processes share
    pool_size: Annotated[int, Field(ge=1, le=100)] = 10
    statement_timeout: Seconds = 10.0
    connect_timeout: Seconds = 5.0

    @field_validator("url")
    @classmethod
    def _postgresql_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("postgresql://", "postgres://")):
            raise ValueError(
                f"storage.url {redact_url(value)!r} is not a PostgreSQL URL; write "
                "postgresql://user@host:5432/database (the password from ${PGPASSWORD})"
            )
        return value

    @model_validator(mode="after")
    def _one_backend(self) -> "StorageConfig":
        if self.url is not None and "path" in self.model_fields_set:
            raise ValueError(
                "storage.path and storage.url are both set; keep storage.path for one process "
                "on SQLite or storage.url for PostgreSQL, not both"
            )
        return self


class ClusterConfig(ConfigSection):
    instance: str | None = None  # this process's name among several; host name + pid by default
    lease: Seconds = 5.0  # a claim not renewed for this long is taken over by another process
    sweep: Seconds = 30.0  # the safety net behind LISTEN/NOTIFY: look for work this often
    heartbeat: Seconds = 5.0  # how often a process says it is alive and checks the database


class ScheduleConfig(ConfigSection):
    name: str
    event: str
    cron: str | None = None
    interval: Seconds | None = Field(
        default=None, validation_alias=AliasChoices("interval", "every")
    )
    timezone: str = "UTC"
    misfire: Literal["skip", "once", "all"] = "once"
    grace: Seconds = 3600.0
    jitter: Annotated[float, Field(ge=0)] = 0.0
    data: dict[str, Any] = {}

    @field_validator("event")
    @classmethod
    def _event_name(cls, value: str) -> str:
        return check_event_type(value, "schedule event")

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as err:
            raise ValueError(
                f"unknown time zone {value!r}; use an IANA name such as 'Europe/Berlin'"
            ) from err
        return value

    @model_validator(mode="after")
    def _one_timing(self) -> "ScheduleConfig":
        if (self.cron is None) == (self.interval is None):
            raise ValueError(f"schedule {self.name!r} needs exactly one of 'cron' or 'every'")
        if self.cron is not None and not croniter.is_valid(self.cron):
            raise ValueError(
                f"schedule {self.name!r} has cron {self.cron!r}, which is not a valid cron "
                "expression such as '0 9 * * 1-5'"
            )
        if self.cron is not None:
            try:
                croniter(self.cron, datetime.now(UTC)).get_next(datetime)
            except CroniterBadDateError as err:
                raise ValueError(
                    f"schedule {self.name!r} has cron {self.cron!r}, which matches no date; "
                    "check its day-of-month and month fields"
                ) from err
        return self


class SlackConfig(ConfigSection):
    enabled: bool = False
    bot_token: str | None = None
    app_token: str | None = None
    signing_secret: str | None = None
    base_url: str = "https://slack.com/api/"
    default_channel: str | None = None
    mode: Literal["socket", "http", "none"] = "socket"  # how messages come in; none: out only
    request_timeout: Seconds = 10.0
    reconnect_interval: Seconds = 5.0  # the first wait before re-opening Socket Mode; it doubles
    reconnect_max: Seconds = 300.0  # up to this, and starts over once a connection opens

    @model_validator(mode="before")
    @classmethod
    def _renamed_keys(cls, data: Any) -> Any:
        if isinstance(data, dict) and "socket_mode" in data:
            raise ValueError(
                "slack.socket_mode is replaced by slack.mode; write mode: socket (Socket Mode), "
                "mode: http (the Events API over HTTP) or mode: none (Slack out only)"
            )
        return data

    @model_validator(mode="after")
    def _tokens_when_enabled(self) -> "SlackConfig":
        if self.enabled and not self.bot_token:
            raise ValueError(
                "slack.enabled is true but no bot token is set; set SLACK_BOT_TOKEN or "
                "slack.bot_token to the app's xoxb-... token"
            )
        if self.enabled and self.mode == "socket" and not self.app_token:
            raise ValueError(
                "slack.mode is socket but no app token is set; set SLACK_APP_TOKEN or "
                "slack.app_token to the app's xapp-... token, or set slack.mode: http or none"
            )
        if self.enabled and self.mode == "http" and not self.signing_secret:
            raise ValueError(
                "slack.mode is http but no signing secret is set; set SLACK_SIGNING_SECRET or "
                "slack.signing_secret to the app's signing secret (Basic Information page)"
            )
        if self.reconnect_max < self.reconnect_interval:
            raise ValueError(
                f"slack.reconnect_max ({self.reconnect_max!r}) is shorter than "
                f"slack.reconnect_interval ({self.reconnect_interval!r}); set it to at least that"
            )
        return self


class TimersConfig(ConfigSection):
    retry_initial: Seconds = 5.0  # seconds before a timer whose delivery failed fires again
    retry_max: Seconds = 300.0  # the retry delay doubles up to this
    alert_after_attempts: Annotated[int, Field(ge=1)] = 5  # then the admin channel is told, once


class JournalConfig(ConfigSection):
    max_backlog: Annotated[int, Field(ge=1)] = 100_000  # then POST /events answers 503
    max_attempts: Annotated[int, Field(ge=1)] = 5  # deliveries of a failing event, then dead
    retry_initial: Seconds = 1.0  # seconds before a failed event is delivered again
    retry_max: Seconds = 300.0  # the retry delay doubles up to this
    lease: Seconds = 60.0  # how long a claim holds an entry before another process may take it
    retention: Seconds = 86_400.0  # done entries, and so Idempotency-Keys, are kept this long
    recheck_interval: Seconds = 30.0  # how soon an event retried from the CLI is picked up


class OutboxConfig(ConfigSection):
    max_attempts: Annotated[int, Field(ge=1)] = 8
    backoff_initial: Seconds = 1.0
    backoff_max: Seconds = 300.0
    per_channel_rate: Annotated[float, Field(ge=0)] = 1.0  # seconds between posts to one channel
    recheck_interval: Seconds = 30.0  # how soon a dead letter retried from the CLI is picked up


class HTTPConfig(ConfigSection):
    enabled: bool = True
    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=0, le=65535)] = 8080
    token: str | None = None


class Config(ConfigSection):
    """The whole of config.yaml; every section is optional and has embedded defaults."""

    supervisor: SupervisorConfig = SupervisorConfig()
    roles: RolesConfig = RolesConfig()
    bus: BusConfig = BusConfig()
    channels: ChannelsConfig = ChannelsConfig()
    logging: LoggingConfig = LoggingConfig()
    storage: StorageConfig = StorageConfig()
    cluster: ClusterConfig = ClusterConfig()
    schedules: list[ScheduleConfig] = []
    timers: TimersConfig = TimersConfig()
    journal: JournalConfig = JournalConfig()
    slack: SlackConfig = SlackConfig()
    outbox: OutboxConfig = OutboxConfig()
    llm: LLMConfig = LLMConfig()
    router: RouterConfig = RouterConfig()
    http: HTTPConfig = HTTPConfig()
    base_dir: Path = Field(default=Path("."), exclude=True)

    @model_validator(mode="after")
    def _http_for_slack_events(self) -> "Config":
        if self.slack.enabled and self.slack.mode == "http" and not self.http.enabled:
            raise ValueError(
                "slack.mode is http but http.enabled is false; Slack posts events to the "
                "daemon's HTTP API, so set http.enabled: true"
            )
        return self

    @field_validator("schedules")
    @classmethod
    def _unique_schedule_names(cls, schedules: list[ScheduleConfig]) -> list[ScheduleConfig]:
        first: dict[str, int] = {}
        for index, schedule in enumerate(schedules):
            if schedule.name in first:
                raise ValueError(
                    f"schedule name {schedule.name!r} is used by schedules.{first[schedule.name]} "
                    f"and schedules.{index}; give each schedule its own name"
                )
            first[schedule.name] = index
        return schedules

    def resolve(self, path: Path) -> Path:
        """Return ``path`` made absolute against the config file's folder."""
        return path if path.is_absolute() else (self.base_dir / path).resolve()


def redact_url(url: str) -> str:
    """Return ``url`` with the password of its user replaced by ``***``, for messages and logs."""
    return _URL_PASSWORD.sub(r"\1***@", url)


def expand_env(value: Any, environ: dict[str, str], where: str = "") -> Any:
    """Replace ``${VAR}`` and ``${VAR:-default}`` in every string of ``value``."""
    if isinstance(value, dict):
        return {
            k: expand_env(v, environ, f"{where}.{k}" if where else str(k)) for k, v in value.items()
        }
    if isinstance(value, list):
        return [expand_env(v, environ, f"{where}[{i}]") for i, v in enumerate(value)]
    if not isinstance(value, str):
        return value

    def substitute(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        if name in environ:
            return environ[name]
        if default is not None:
            return default
        raise ConfigError(
            f"{where}: environment variable {name!r} is not set; set it or write "
            f"'${{{name}:-default}}'"
        )

    return _ENV_REF.sub(substitute, value)


SLACK_TOKEN_VARIABLES = {
    "bot_token": "SLACK_BOT_TOKEN",
    "app_token": "SLACK_APP_TOKEN",
    "signing_secret": "SLACK_SIGNING_SECRET",
}


def _slack_tokens_from_env(raw: dict[str, Any], environ: dict[str, str]) -> dict[str, Any]:
    """Fill slack secrets missing from the file from the SLACK_* variables above."""
    slack = raw.get("slack")
    if slack is not None and not isinstance(slack, dict):
        return raw
    section = dict(slack or {})
    for key, variable in SLACK_TOKEN_VARIABLES.items():
        if not section.get(key) and environ.get(variable):
            section[key] = environ[variable]
    return {**raw, "slack": section} if section else raw


def load_config(path: str | Path | None = None, environ: dict[str, str] | None = None) -> Config:
    """Read, expand and check a config file; ``None`` gives the embedded defaults."""
    environ = dict(os.environ) if environ is None else environ
    if path is None:
        try:
            return Config.model_validate(_slack_tokens_from_env({}, environ))
        except ValidationError as err:
            raise ConfigError(_describe(Path("(defaults)"), err)) from err
    path = Path(path)
    raw = read_yaml(path)
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(
            f"{path}: the top level must be a mapping of sections, got a {type(raw).__name__}"
        )
    try:
        raw = _slack_tokens_from_env(expand_env(raw, environ), environ)
    except ConfigError as err:
        raise ConfigError(f"{path}: {err}") from err
    try:
        return Config.model_validate({**raw, "base_dir": path.resolve().parent})
    except ValidationError as err:
        raise ConfigError(_describe(path, err)) from err


SECRET_KEYS = frozenset({"token", "bot_token", "app_token", "api_key", "password", "secret"})


def _is_secret(loc: tuple[int | str, ...]) -> bool:
    """Say whether a value at ``loc`` may be a secret: a secret key, or under ``llm.params``."""
    return any(part in SECRET_KEYS for part in loc) or tuple(loc[:2]) == ("llm", "params")


def _describe(path: Path, err: ValidationError) -> str:
    problems = []
    for item in err.errors():
        where = ".".join(str(part) for part in item["loc"]) or "(top level)"
        if item["type"] == "extra_forbidden":
            problems.append(f"{where}: unknown key; check the spelling against the reference")
        elif isinstance(item.get("input"), (dict, list)) or where == "storage.url":
            # a section, a list or a database URL may hold secrets: the message alone
            problems.append(f"{where}: {item['msg'].removeprefix('Value error, ')}")
        elif _is_secret(item["loc"]):
            problems.append(f"{where}: {item['msg']} (the value is a secret, so it is not shown)")
        else:
            problems.append(f"{where}: {item['msg']}, got {item.get('input')!r:.60}")
    return f"{path}: " + "; ".join(problems)
