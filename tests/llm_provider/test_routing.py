"""Routing without a model: the prompt, parsing the answer, and choosing the role."""

from llm_provider.routing import (
    RouteChoice,
    RouteDecision,
    choose_route,
    not_understood,
    parse_route,
    router_prompt,
)

TIMER = {
    "name": "timer",
    "description": "Timers.",
    "fast_reply": True,
    "when_to_use": "The user wants a reminder.",
    "parameters": {"duration": {"type": "string", "description": "how long", "required": True}},
}
NOTES = {"name": "notes", "description": "Long notes.", "fast_reply": False}


def test_the_prompt_lists_fast_reply_roles_with_when_to_use_and_parameters() -> None:
    prompt = router_prompt({"timer": TIMER, "notes": NOTES})
    expected = "- timer: The user wants a reminder.\n    duration (string) (required): how long"
    assert expected in prompt
    assert "notes" not in prompt


def test_a_plain_json_answer_parses() -> None:
    assert parse_route('{"route": "timer", "confidence": 0.9, "parameters": {"d": "5m"}}') == (
        RouteDecision(route="timer", confidence=0.9, parameters={"d": "5m"})
    )


def test_a_fenced_answer_with_prose_parses() -> None:
    text = 'Sure!\n```json\n{"route": "timer", "confidence": 1}\n```'
    assert parse_route(text) == RouteDecision(route="timer", confidence=1.0)


def test_unparseable_answers_give_none() -> None:
    answers = ["timer", "{route: timer}", '{"route": "timer"}', '{"route": "t", "confidence": 7}']
    assert [parse_route(a) for a in answers] == [None, None, None, None]


def test_a_confident_known_route_is_chosen_with_its_parameters() -> None:
    decision = RouteDecision(route="timer", confidence=0.8, parameters={"duration": "5m"})
    assert choose_route(decision, ["timer"], 0.6, None) == RouteChoice(
        "timer", {"duration": "5m"}, "routed"
    )


def test_low_confidence_goes_to_the_default_role() -> None:
    choice = choose_route(RouteDecision(route="timer", confidence=0.3), ["timer"], 0.6, "chat")
    assert (choice.role, choice.parameters) == ("chat", {})
    assert "confidence 0.3, below router.confidence_threshold 0.6" in choice.reason


def test_an_unknown_route_without_default_chooses_no_role() -> None:
    choice = choose_route(RouteDecision(route="weather", confidence=1), ["timer"], 0.6, None)
    assert choice == RouteChoice(
        None, {}, "the router chose 'weather', which is not a role it may choose"
    )


def test_an_unparseable_answer_chooses_no_role() -> None:
    assert choose_route(None, ["timer"], 0.6, None).role is None


def test_the_not_understood_reply_lists_what_can_be_done() -> None:
    assert not_understood("sing", ["timer", "notes"]) == (
        "Sorry, I did not understand 'sing'. I can help with: notes, timer."
    )
