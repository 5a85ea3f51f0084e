"""docs/ROLES.md stays true: its example role passes the checks and its messages are exact."""

import re
from pathlib import Path

from common.context import EventContext
from common.intents import AuditIntent, NotificationIntent
from llm_provider.role_contract import check_role
from tests.role_files import write_role

REPO = Path(__file__).resolve().parents[2]
GUIDE = (REPO / "docs" / "ROLES.md").read_text()
BROKEN = REPO / "tests" / "roles" / "broken"


def example_role() -> str:
    section = GUIDE.split("## One complete example", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_example_role_passes_every_check_and_reminds_the_channel(tmp_path):
    role, problems = check_role(write_role(tmp_path, "standup", example_role()), fresh=True)
    context = EventContext("evt-1", "STANDUP_DUE", "schedule", 0.0)
    assert problems == []
    assert role.module.handle_standup_due({"minutes": 5, "channel": "team"}, context) == [
        NotificationIntent(message="Standup starts in 5 minutes.", channel="team"),
        AuditIntent(action="standup_reminded", details={"channel": "team", "minutes": 5}),
    ]


def test_guide_quotes_the_exact_message_of_every_broken_file():
    quoted = []
    for path in sorted(BROKEN.glob("*.py")):
        if path.name == "many_problems.py":
            continue
        for problem in check_role(path, fresh=True)[1]:
            quoted.append(f"roles/{path.name}:{problem.line}: {problem.message}" in GUIDE)
    assert quoted == [True] * len(quoted) and len(quoted) == 22
