"""Every exception intentd raises on purpose, in one place.

Messages are one sentence: the rule that was broken, the offending value (with ``!r``), where,
and the fix when there is one.
"""


class IntentdError(Exception):
    """Base class of every error intentd raises on purpose."""


class ConfigError(IntentdError):
    """A configuration file or value breaks the configuration schema."""


class EventNameError(IntentdError, ValueError):
    """An event type is not an UPPER_SNAKE_CASE name."""


class EventOwnedError(IntentdError):
    """An outside source tried to publish an event type only the daemon publishes."""


class EventDataError(IntentdError, ValueError):
    """A handler refuses event data it cannot act on; the message names the field, not its value."""


class BusFullError(IntentdError):
    """The message bus queue is at its limit; the event was not accepted."""


class BusClosedError(IntentdError):
    """The message bus is stopping and accepts no new events."""


class JournalFullError(IntentdError):
    """The event journal's backlog is at ``journal.max_backlog``; the event was not accepted."""


class WrongThreadError(IntentdError, RuntimeError):
    """An object bound to the daemon's event loop was used from another thread."""


class RoleContractError(IntentdError):
    """A role file breaks the role contract."""


class IntentHandlingError(IntentdError):
    """An intent could not be carried out."""


class StoreError(IntentdError):
    """The durable store cannot be opened or written."""


class IllegalTransition(IntentdError):
    """A durable record was asked to move to a state its transition table does not allow."""


class TimerError(IntentdError):
    """A timer request is invalid (unknown id, already fired, bad duration...)."""


class DeliveryError(IntentdError):
    """A channel could not deliver a notification; says whether a retry may succeed."""

    def __init__(
        self,
        message: str,
        *,
        permanent: bool = False,
        retry_after: float | None = None,
        unknown: bool = False,
    ) -> None:
        super().__init__(message)
        self.permanent = permanent
        self.retry_after = retry_after
        self.unknown = unknown  # the request may have been carried out: check before re-sending


class SlackAuthError(IntentdError):
    """Slack refused a configured token."""


class WorkflowError(IntentdError):
    """A workflow cannot run: no request, an unknown role, no model for its llm_type..."""


class UnknownToolError(IntentdError):
    """A call names a role that is not loaded or a tool its role does not have."""


class RequestRejected(IntentdError):
    """An HTTP request was refused; ``status`` is the HTTP status to answer with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class DaemonUnreachableError(IntentdError):
    """The command line could not reach a running daemon's HTTP API."""
