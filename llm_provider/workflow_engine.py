"""The workflow engine: carries out WorkflowIntent with one strands Agent per run.

Rules kept here:
- ``start_workflow_intent`` returns the run id at once; the run is a task in ``run()``'s
  TaskGroup, which cancels and awaits every run when it is cancelled (at shutdown). The bus never
  waits for a model.
- A run picks its role (the ``role`` parameter, a workflow_type naming a role, or the router on
  the WEAK model), runs an Agent with that role's system prompt, tools and llm_type through
  ``invoke_async`` (never the sync call), and posts the answer to the originating channel (a
  Slack thread is part of the channel address).
- A tool call is carried out with ``run_tool`` for this run's channel and user before the model
  reads the reply; calls are recorded on the run, never in shared state.
- At most ``max_concurrent`` runs talk to models at once, each bounded by ``timeout``. Every run
  ends in WORKFLOW_COMPLETED or WORKFLOW_FAILED and an audit record with its token usage (None
  when a server did not report it).
- Every request gets exactly one reply: the answer, "not understood", or one sentence saying why
  it failed (llm_provider/failures.py), after what the run's tools already did; the detail goes
  to the log and the audit record. A run cancelled at shutdown tells its user that intentd
  stopped. An empty answer is a failure, never silence; a router answer cut at max_tokens is "not
  the expected JSON".
- Each Agent gets its own ThrottleRetry (llm_provider/retries.py), so concurrent runs never share
  an attempt count.
- Without models (``llm.provider: none``) a workflow fails at once, and its channel is told how to
  configure a model.
"""

import asyncio
import contextlib
import json
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import structlog
from strands import Agent
from strands.models import Model
from strands.tools import PythonAgentTool
from strands.types.exceptions import MaxTokensReachedException
from strands.types.tools import ToolResult

from common.errors import BusClosedError, BusFullError, IntentHandlingError, WorkflowError
from common.events import WORKFLOW_COMPLETED, WORKFLOW_FAILED, WORKFLOW_STARTED
from common.ids import new_id
from common.intent_processor import IntentProcessor
from common.intents import AuditIntent, NotificationIntent, WorkflowIntent
from llm_provider.failures import EmptyAnswerError, Failure, describe_failure, stopped
from llm_provider.retries import ThrottleRetry, causes
from llm_provider.role_contract import LoadedRole
from llm_provider.routing import choose_route, not_understood, parse_route, routable, router_prompt
from llm_provider.tool_runner import run_tool

log = structlog.get_logger("intentd.workflows")

ROUTE = "route"
USAGE_KEYS = ("inputTokens", "outputTokens", "totalTokens")
RUN_KEYS = ("request", "role", "channel_id", "user_id")  # the rest go to the model as parameters
NO_MODEL = (
    "No language model is configured, so I cannot answer this; set llm.provider and "
    "llm.models.DEFAULT in config.yaml (see 'LLM workflows' in the README), or run a role's tool "
    "directly with 'intentd call ROLE.TOOL key=value'."
)
DEFAULT_PROMPT = (
    "You are the {name} role of intentd: {description} Use your tools to act. A tool's reply "
    "says what really happened (ids, times, errors): report it truthfully and briefly."
)


@dataclass
class WorkflowRun:
    """One workflow run: where it came from, what it did, how it ended."""

    run_id: str
    workflow_type: str
    parameters: dict[str, Any]
    channel_id: str
    user_id: str | None
    parent_id: str | None
    state: str = "queued"  # queued, running, completed, failed, cancelled
    role: str | None = None
    answer: str | None = None
    error: str | None = None  # the detail, for operators
    failure: str | None = None  # the Failure kind: throttled, server_error, timeout, ...
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    usage: dict[str, int | None] = field(default_factory=lambda: dict.fromkeys(USAGE_KEYS, 0))
    retries: int = 0
    created_at: float = 0.0
    finished_at: float | None = None

    def to_json(self) -> dict[str, Any]:
        """Return the run as JSON-ready data (for the audit log and the API)."""
        return {
            "run_id": self.run_id, "workflow_type": self.workflow_type, "role": self.role,
            "state": self.state, "channel_id": self.channel_id, "user_id": self.user_id,
            "error": self.error, "failure": self.failure, "tool_calls": self.tool_calls,
            "usage": dict(self.usage), "retries": self.retries,
        }  # fmt: skip


class UsageMeter:
    """Add up the token usage servers report for one run's model calls (a strands callback).

    The usage is unknown (None) once a model call ended without reporting it, as llama.cpp-style
    servers do while streaming: 0 would be a lie in the audit and the metrics.
    """

    def __init__(self, run: WorkflowRun) -> None:
        self.run = run
        self.calls = 0
        self.reported = 0
        self.totals: Counter[str] = Counter()

    def __call__(self, **event: Any) -> None:
        """Look at one streamed event of an Agent of this run."""
        chunk = event.get("event")
        if not isinstance(chunk, dict):
            return
        if "messageStop" in chunk:
            self.calls += 1
        usage = (chunk.get("metadata") or {}).get("usage") or {}
        if all(isinstance(usage.get(key), int) for key in USAGE_KEYS[:2]):
            self.reported += 1
            for key in USAGE_KEYS:
                self.totals[key] += usage.get(key) or 0
        known = self.reported >= self.calls
        self.run.usage = {key: self.totals[key] if known else None for key in USAGE_KEYS}


class RoleSource(Protocol):
    """What the engine needs of the role registry: the loaded roles by name."""

    roles: dict[str, LoadedRole]


class WorkflowEngine:
    """Run LLM workflows as tasks on the loop, one Agent per run."""

    def __init__(
        self,
        models: Mapping[str, Model],
        roles: RoleSource,
        processor: IntentProcessor,
        *,
        bus: Any = None,
        clock: Callable[[], float],
        max_concurrent: int = 4,
        timeout: float = 120.0,
        confidence_threshold: float = 0.6,
        default_role: str | None = None,
        keep_finished: float = 3600.0,
        retry_attempts: int = 1,
        retry_delay: float = 0.0,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.models = models
        self.roles = roles
        self.processor = processor
        self.bus = bus
        self.clock = clock
        self.timeout = timeout
        self.confidence_threshold = confidence_threshold
        self.default_role = default_role
        self.keep_finished = keep_finished
        self.retry_attempts = retry_attempts
        self.retry_delay = retry_delay
        self.sleep = sleep
        self.runs: dict[str, WorkflowRun] = {}
        self.max_concurrent = max_concurrent
        self._slots = asyncio.Semaphore(max_concurrent)
        self.finished: Counter[str] = Counter()  # runs by final state, for the metrics
        self.tokens: Counter[tuple[str, str]] = Counter()  # (role, input|output) -> tokens
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._runs: asyncio.TaskGroup | None = None  # owns every run while run() runs

    @property
    def active_count(self) -> int:
        """Return how many runs are queued or running."""
        return len(self._tasks)

    # -- the task that owns the runs --------------------------------------------------------

    async def run(self) -> None:
        """Accept workflows until cancelled; then cancel and await every run (a TaskGroup)."""
        self._slots = asyncio.Semaphore(self.max_concurrent)  # bound to this run's loop
        try:
            async with asyncio.TaskGroup() as runs:
                self._runs = runs
                await asyncio.get_running_loop().create_future()  # until cancelled
        finally:
            self._runs = None

    # -- starting ---------------------------------------------------------------------------

    async def start_workflow_intent(self, intent: WorkflowIntent) -> str:
        """Start a run for ``intent`` and return its id without waiting for it."""
        params = dict(intent.parameters)
        run = WorkflowRun(
            run_id=new_id("wf"),
            workflow_type=intent.workflow_type,
            parameters=params,
            channel_id=str(params.get("channel_id") or "default"),
            user_id=params.get("user_id"),
            parent_id=intent.intent_id,
            created_at=self.clock(),
        )
        if not self.models:
            self.runs[run.run_id] = run
            run.failure, run.error = "no_model", NO_MODEL
            await self._finish(run, "failed", reply=NO_MODEL)
            raise IntentHandlingError(
                f"workflow {intent.workflow_type!r} cannot run: llm.provider is 'none'; set "
                "llm.provider and llm.models in config.yaml"
            )
        if self._runs is None:
            raise IntentHandlingError(
                f"workflow {intent.workflow_type!r} was not started: the workflow engine is not "
                "running (the daemon is starting or stopping)"
            )
        self.runs[run.run_id] = run
        self._publish(WORKFLOW_STARTED, run)
        # The run's task copies this context: every log line of the run, strands' and the SDKs'
        # included, carries the run id and the cause.
        with structlog.contextvars.bound_contextvars(run_id=run.run_id, parent_id=run.parent_id):
            task = self._runs.create_task(self._owned(run), name=run.run_id)
        self._tasks[run.run_id] = task
        return run.run_id

    async def start_workflow(self, request: str, parameters: dict[str, Any] | None = None) -> str:
        """Start a run answering ``request`` (routed unless ``parameters`` names a role)."""
        params = {**(parameters or {}), "request": request}
        intent = WorkflowIntent(workflow_type=ROUTE, parameters=params)
        return await self.start_workflow_intent(intent)

    async def wait(self, run_id: str) -> WorkflowRun:
        """Return run ``run_id`` once it has ended."""
        task = self._tasks.get(run_id)
        if task is not None:
            await asyncio.wait({task})
        return self.runs[run_id]

    def cleanup_old_workflows(self, now: float | None = None) -> int:
        """Forget runs that ended more than ``keep_finished`` seconds ago; return how many."""
        cutoff = (self.clock() if now is None else now) - self.keep_finished
        old = [
            run_id
            for run_id, run in self.runs.items()
            if run.finished_at is not None and run.finished_at < cutoff
        ]
        for run_id in old:
            del self.runs[run_id]
        return len(old)

    # -- one run ----------------------------------------------------------------------------

    async def _owned(self, run: WorkflowRun) -> None:
        try:
            await self._execute(run)
        except Exception as err:  # one run's crash must not cancel the TaskGroup's other runs
            log.error("workflow_run_crashed", run_id=run.run_id, exc_info=err)
        finally:
            self._tasks.pop(run.run_id, None)

    async def _execute(self, run: WorkflowRun) -> None:
        deadline: asyncio.Timeout | None = None
        try:
            async with self._slots:
                run.state = "running"
                deadline = asyncio.timeout(self.timeout)  # the wait for a slot is not counted
                async with deadline:
                    answer = await self._answer(run)
        except asyncio.CancelledError:
            await self._finish(run, "cancelled", stopped())
            raise
        except Exception as err:
            hit = deadline is not None and deadline.expired()
            failure = describe_failure(err, timeout=self.timeout, deadline_hit=hit)
            await self._finish(run, "failed", failure)
        else:
            await self._finish(run, "completed", reply=answer)

    async def _answer(self, run: WorkflowRun) -> str:
        params = run.parameters
        request = params.get("request")
        if not isinstance(request, str) or not request.strip():
            raise WorkflowError(
                f"workflow {run.workflow_type!r} has no 'request' text in its parameters "
                f"{sorted(params)}; pass the user's words as parameters['request']"
            )
        meter = UsageMeter(run)
        named = run.workflow_type if run.workflow_type != ROUTE else None
        role_name = params.get("role") or named
        extra = {k: v for k, v in params.items() if k not in RUN_KEYS}
        if role_name is None:
            configs = {name: role.config for name, role in self.roles.roles.items()}
            try:
                answer = await self._invoke(run, meter, "WEAK", router_prompt(configs), [], request)
            except Exception as err:
                if not any(isinstance(e, MaxTokensReachedException) for e in causes(err)):
                    raise
                answer = ""  # cut at max_tokens: not the expected JSON, whatever it began with
            decision = parse_route(answer)
            choice = choose_route(
                decision, routable(configs), self.confidence_threshold, self.default_role
            )
            log.info("workflow_routed", run_id=run.run_id, role=choice.role, reason=choice.reason)
            if choice.role is None:
                return not_understood(request, routable(configs))
            role_name, extra = choice.role, choice.parameters
        role = self.roles.roles.get(role_name)
        if role is None:
            raise WorkflowError(
                f"no role named {role_name!r} is loaded; loaded roles are "
                f"{sorted(self.roles.roles)}"
            )
        run.role = role.name
        prompt = request + (f"\n\nParameters: {json.dumps(extra, default=str)}" if extra else "")
        tools = [self._bind(run, role, tool) for tool in role.tools]
        system = role.config.get("system_prompt") or DEFAULT_PROMPT.format(
            name=role.name, description=role.config.get("description", "")
        )
        llm_type = role.config.get("llm_type", "DEFAULT")
        answer = await self._invoke(run, meter, llm_type, system, tools, prompt)
        if not answer:
            raise EmptyAnswerError(f"role {role.name!r} ended its turn with no text")
        return answer

    async def _invoke(
        self,
        run: WorkflowRun,
        meter: UsageMeter,
        llm_type: str,
        system: str,
        tools: list[Any],
        prompt: str,
    ) -> str:
        model = self.models.get(llm_type)
        if model is None:
            raise WorkflowError(
                f"no model is configured for llm_type {llm_type!r}; set llm.provider and "
                "llm.models.DEFAULT in config.yaml"
            )
        retry = ThrottleRetry(
            attempts=self.retry_attempts,
            delay=self.retry_delay,
            budget=self.timeout,
            sleep=self.sleep,
            clock=self.clock,
        )
        agent = Agent(
            model=model,
            system_prompt=system,
            tools=tools,
            callback_handler=meter,
            retry_strategy=retry,
        )
        try:
            result = await agent.invoke_async(prompt)
        finally:
            run.retries += len(retry.waits)
        return str(result).strip()

    def _bind(self, run: WorkflowRun, role: LoadedRole, tool: Any) -> PythonAgentTool:
        """Return ``tool`` as a strands tool that carries out its intent for this run."""
        origin = {"channel_id": run.channel_id, "user_id": run.user_id, "parent_id": run.parent_id}

        async def call(tool_use: Any, **invocation_state: Any) -> ToolResult:
            arguments = tool_use.get("input") or {}
            reply = await run_tool(tool, arguments, self.processor, role.name, origin)
            run.tool_calls.append(
                {"tool": tool.tool_name, "input": arguments, "success": reply["success"],
                 "message": reply["message"]}
            )  # fmt: skip
            return {
                "toolUseId": tool_use["toolUseId"],
                "status": "success" if reply["success"] else "error",
                "content": [{"text": json.dumps(reply, default=str)}],
            }

        return PythonAgentTool(tool.tool_name, tool.tool_spec, call)

    async def _finish(
        self,
        run: WorkflowRun,
        state: str,
        failure: Failure | None = None,
        *,
        reply: str | None = None,
    ) -> None:
        if failure is not None:
            run.failure, run.error = failure.kind, failure.detail
            reply = failure.reply(run.tool_calls)
        run.state, run.answer, run.finished_at = state, reply, self.clock()
        self.finished[state] += 1
        for key, name in (("inputTokens", "input"), ("outputTokens", "output")):
            self.tokens[run.role or "", name] += run.usage[key] or 0
        if reply:
            await self.processor.carry_out(
                NotificationIntent(
                    message=reply, channel=run.channel_id, user_id=run.user_id,
                    parent_id=run.parent_id,
                ),
                role=run.role,
            )  # fmt: skip
        action = "workflow_completed" if state == "completed" else "workflow_failed"
        await self.processor.carry_out(
            AuditIntent(action=action, details=run.to_json(), user_id=run.user_id,
                        parent_id=run.parent_id),
            role=run.role,
        )  # fmt: skip
        self._publish(WORKFLOW_COMPLETED if state == "completed" else WORKFLOW_FAILED, run)
        report = log.info if state == "completed" else log.warning
        report("workflow_finished", run_id=run.run_id, state=state, role=run.role,
               failure=run.failure, error=run.error, retries=run.retries,
               **run.usage)  # fmt: skip

    def _publish(self, event_type: str, run: WorkflowRun) -> None:
        if self.bus is None:
            return
        with contextlib.suppress(BusClosedError, BusFullError):
            self.bus.publish(
                "workflow_engine", event_type, run.to_json(), channel_id=run.channel_id,
                user_id=run.user_id, parent_id=run.parent_id, source="workflow_engine",
            )  # fmt: skip
