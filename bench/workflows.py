"""Workflow engine cost: a scripted model, so only intentd's own work is measured.

Each workflow is one tool call (the timer role's set_timer) and one answer. Compared, in the same
run, with a bare strands Agent on the same scripted model whose tool returns a dict and does
nothing else. The engine's run adds: routing by role name, the per-run tool binding, argument
checks, carrying out the TimerIntent (a SQLite commit), the answer as a notification, the audit
record (a SQLite commit) and three WORKFLOW_* events. Prints per-workflow times, the overhead,
and workflows per second with 50 running concurrently.
Run: .venv/bin/python bench/workflows.py [workflows]
"""

import asyncio
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # for tests.fakes

import structlog
from strands import Agent, tool

from common.intents import WorkflowIntent
from llm_provider.scripted_model import ScriptedModel, Turn
from tests.workflow_parts import WorkflowParts

CONCURRENT = 50


def script(messages: Any, tool_specs: Any, system_prompt: Any) -> Turn:
    """Call set_timer once, then answer."""
    if "toolResult" in messages[-1]["content"][0]:
        return Turn.text("Timer set.")
    return Turn.tool("set_timer", {"duration": "20 minutes", "label": "check the deploy"})


@tool
async def set_timer(duration: str, label: str = "") -> dict[str, Any]:
    """Pretend to set a timer.

    Args:
        duration: How long.
        label: What for.
    """
    return {"success": True, "message": f"Timer set for {duration}."}


def model(workflows: int) -> ScriptedModel:
    return ScriptedModel([script] * (2 * workflows))


async def bare(workflows: int, concurrent: int) -> float:
    """Return seconds per workflow for bare Agents, ``concurrent`` at a time."""
    scripted = model(workflows)

    async def one() -> None:
        agent = Agent(model=scripted, tools=[set_timer], callback_handler=None,
                      retry_strategy=None)  # fmt: skip
        await agent.invoke_async("remind me in 20 minutes to check the deploy")

    started = time.perf_counter()
    for _ in range(workflows // concurrent):
        await asyncio.gather(*(one() for _ in range(concurrent)))
    return (time.perf_counter() - started) / workflows


async def engine(workflows: int, concurrent: int, folder: Path) -> float:
    """Return seconds per workflow through the WorkflowEngine, ``concurrent`` at a time."""
    scripted = model(workflows)
    models = {"WEAK": scripted, "DEFAULT": scripted, "STRONG": scripted}
    path = folder / f"bench-{time.perf_counter_ns()}.db"
    parts = WorkflowParts(models, path, max_concurrent=concurrent)
    intent = WorkflowIntent(workflow_type="timer", parameters={
        "request": "remind me in 20 minutes to check the deploy",
        "channel_id": "slack:C1/1.1", "user_id": "U1"})  # fmt: skip
    async with parts.running():
        started = time.perf_counter()
        for _ in range(workflows // concurrent):
            ids = [await parts.engine.start_workflow_intent(intent) for _ in range(concurrent)]
            runs = [await parts.engine.wait(run_id) for run_id in ids]
            assert all(run.state == "completed" for run in runs), runs[0].error
        elapsed = time.perf_counter() - started
        await parts.bus.drain()
    assert len(await parts.timers.list()) == workflows
    return elapsed / workflows


async def main(workflows: int) -> None:
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(40))
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        await bare(50, 1)  # warm up strands (first Agent, imports)
        one_bare = min([await bare(workflows, 1) for _ in range(3)])
        one_engine = min([await engine(workflows, 1, folder) for _ in range(3)])
        many_bare = min([await bare(workflows, CONCURRENT) for _ in range(3)])
        many_engine = min([await engine(workflows, CONCURRENT, folder) for _ in range(3)])
    print(f"workflows per measurement        {workflows} (one tool call + one answer each)")
    print(f"bare Agent, one at a time        {one_bare * 1e3:.2f} ms/workflow")
    print(f"WorkflowEngine, one at a time    {one_engine * 1e3:.2f} ms/workflow")
    print(f"engine overhead per workflow     {(one_engine - one_bare) * 1e3:.2f} ms "
          f"({one_engine / one_bare:.2f}x the bare Agent)")  # fmt: skip
    print(f"bare Agent, {CONCURRENT} concurrent          {1 / many_bare:,.0f} workflows/s")
    print(f"WorkflowEngine, {CONCURRENT} concurrent      {1 / many_engine:,.0f} workflows/s "
          f"({many_bare / many_engine:.2f}x the bare Agent's rate)")  # fmt: skip


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 500))
