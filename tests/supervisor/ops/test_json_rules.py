"""json_rules.loads and dumps called directly: plain finite JSON, errors that quote nothing."""

import pytest

from supervisor.ops.json_rules import JSONRuleError, dumps, loads


@pytest.mark.parametrize(
    "text", ['{"a": 1.5, "b": [1, "x", null, true]}', b'{"a": 1.5, "b": [1, "x", null, true]}']
)
def test_plain_json_parses_from_text_or_utf8_bytes(text):
    assert loads(text) == {"a": 1.5, "b": [1, "x", None, True]}


def test_loads_can_be_called_again_after_an_error():
    with pytest.raises(JSONRuleError):
        loads('{"a": NaN}')
    assert loads('{"a": 2.5}') == {"a": 2.5}


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ('{"a": NaN}', "the JSON holds NaN, which is not a JSON number; send a finite number"),
        (
            '{"a": -Infinity}',
            "the JSON holds -Infinity, which is not a JSON number; send a finite number",
        ),
        (
            '{"a": 1e400}',
            "the JSON holds a number too large for a float (it would be Infinity); "
            "send a finite number",
        ),
        ("1" * 4301, "the JSON holds an integer of more than 4300 digits; send a smaller number"),
        ("[" * 50_000, "the JSON is nested too deeply; send a flatter object"),
        (b'{"a": "\xff"}', "the text is not UTF-8 (byte 7); send UTF-8 encoded JSON"),
        (
            b"\xef\xbb\xbf{}",
            "the text is not valid JSON (Unexpected UTF-8 BOM (decode using utf-8-sig) at line 1 "
            'column 1); send JSON such as {"key": "value"}',
        ),
        (
            "\ufeff{}",
            "the text is not valid JSON (Unexpected UTF-8 BOM (decode using utf-8-sig) at line 1 "
            'column 1); send JSON such as {"key": "value"}',
        ),
        (
            '{"a": 1} x',
            "the text is not valid JSON (Extra data at line 1 column 10); "
            'send JSON such as {"key": "value"}',
        ),
    ],
)
def test_what_is_not_plain_finite_json_is_refused_in_one_sentence(text, error):
    with pytest.raises(JSONRuleError) as caught:
        loads(text)
    assert str(caught.value) == error


def test_dumps_writes_non_finite_floats_as_null():
    assert dumps({"a": float("nan"), "b": [float("inf"), 1.5]}) == '{"a": null, "b": [null, 1.5]}'
