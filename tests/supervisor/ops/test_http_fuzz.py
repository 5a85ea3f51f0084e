"""Arbitrary bodies and headers thrown at POST /events/...: the daemon stays healthy and publishes
exactly the requests it accepted."""

import json
import math
import string

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from common.errors import EventNameError, EventOwnedError
from common.events import check_event_type, check_outside_event
from supervisor.ops.http_api import MAX_BODY
from tests.fakes.clock import FakeClock
from tests.supervisor.http_daemon import TOKEN, make_config, running_daemon

VALID_NAMES = ("PING", "FUZZ_EVENT")
JSON_TYPES = ("application/json", "application/json; charset=utf-8")

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=10,
)
json_objects = st.dictionaries(st.text(max_size=10), json_values, max_size=5)
bodies = st.one_of(
    json_objects.map(lambda data: json.dumps(data).encode()),
    json_values.map(lambda data: json.dumps(data).encode()),
    st.binary(max_size=200),
    st.integers(MAX_BODY - 20, MAX_BODY + 2000).map(lambda n: b'{"p": "' + b"x" * n + b'"}'),
)
# The well-formed choices appear twice so that most requests get past auth to the body checks.
valid_name = st.sampled_from(VALID_NAMES)
names = st.one_of(
    valid_name,
    valid_name,
    st.text(string.ascii_letters + string.digits + "_-", min_size=1, max_size=140),
)
printable = st.text(string.ascii_letters + string.digits + " !#$%&'*+-.^_`|~;=/,:", max_size=40)
right_token = st.just(f"Bearer {TOKEN}")
authorizations = st.one_of(
    right_token, right_token, st.sampled_from(["Bearer nope", f"bearer {TOKEN}", ""]), printable
)
json_type = st.sampled_from(JSON_TYPES)
content_types = st.one_of(json_type, json_type, st.sampled_from(["text/plain", ""]), printable)
extra_headers = st.dictionaries(
    st.text(string.ascii_lowercase, min_size=1, max_size=10).map(lambda name: f"x-{name}"),
    printable,
    max_size=4,
)


@pytest.fixture
async def daemon(tmp_path):
    async with running_daemon(make_config(tmp_path), auth=False, clock=FakeClock()) as running:
        delivered = []
        for name in VALID_NAMES:
            running.supervisor.message_bus.subscribe(
                "probe", name, lambda data, context: delivered.append(data)
            )
        running.delivered = delivered
        yield running


@settings(
    max_examples=300,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    name=names,
    body=bodies,
    authorization=authorizations,
    content_type=content_types,
    extra=extra_headers,
)
async def test_post_events_publishes_exactly_what_it_accepts(
    daemon, name, body, authorization, content_type, extra
):
    bus = daemon.supervisor.message_bus
    published_before = sum(bus.stats.published.values())
    delivered_before = len(daemon.delivered)
    headers = {**extra, "Content-Type": content_type}
    if authorization:
        headers["Authorization"] = authorization
    async with daemon.session.post(
        daemon.url(f"/events/{name}"), data=body, headers=headers
    ) as response:
        status = response.status
        answer = await response.json()
    await bus.drain()

    event(f"status {status}")
    accepted = status == 202
    assert accepted == _acceptable(name, body, authorization, content_type)
    assert sum(bus.stats.published.values()) - published_before == int(accepted)
    if accepted:
        assert answer["event_type"] == name
        expected = [json.loads(body)] if name in VALID_NAMES else []
        assert daemon.delivered[delivered_before:] == expected
    else:
        assert list(answer) == ["error"]
        assert answer["error"] and "\n" not in answer["error"]
        assert status in (400, 401, 403, 413, 415, 422)
    async with daemon.session.get(daemon.url("/healthz")) as health:
        assert health.status == 200


def _acceptable(name: str, body: bytes, authorization: str, content_type: str) -> bool:
    """Say whether the API's contract accepts this request (the test's independent oracle)."""
    scheme, _, token = authorization.strip().partition(" ")
    try:
        check_outside_event(check_event_type(name))
    except (EventNameError, EventOwnedError):
        return False
    return (
        scheme.lower() == "bearer"
        and token.strip() == TOKEN
        and content_type.split(";")[0].strip().lower() == "application/json"
        and len(body) <= MAX_BODY
        and isinstance(_parsed(body), dict)
    )


def _parsed(body: bytes):
    try:
        return json.loads(body.decode("utf-8"), parse_constant=_no_constants, parse_float=_finite)
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None


def _no_constants(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


def _finite(text: str) -> float:
    if not math.isfinite(float(text)):
        raise ValueError(f"{text} overflows")
    return float(text)
