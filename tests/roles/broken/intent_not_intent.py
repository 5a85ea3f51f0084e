"""Broken on purpose: an intents key that is not an Intent subclass."""

from dataclasses import dataclass

ROLE_CONFIG = {"name": "intent_not_intent", "version": "1.0.0", "description": "x", "llm_type": "WEAK"}


@dataclass
class AlarmIntent:
    when: str

    def validate(self) -> bool:
        return bool(self.when)


async def process_alarm(intent, services):
    return None


def register_role():
    return {"config": ROLE_CONFIG, "event_handlers": {}, "tools": [], "intents": {AlarmIntent: process_alarm}}
