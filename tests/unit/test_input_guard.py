"""The checks behind tow_http.input_guard on their own: the depth scan agrees with the real nesting of
random JSON full of brackets, quotes and backslashes inside strings; the h11 refusal names its header.
(Over the real app: tests/e2e/test_hostile_input.py.)"""

from __future__ import annotations

import json

import h11
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tow_core.errors import MalformedInput
from tow_http.http_protocol import error_body
from tow_http.input_guard import MAX_JSON_DEPTH, refuse_deep_json

TRICKY_TEXT = st.text(alphabet='[]{}"\\:,au\x00\n', max_size=12)


def nest(levels: int, inner: object) -> object:
    for level in range(levels):
        inner = [inner] if level % 2 else {"k[": inner, "\"}": "]"}
    return inner


def depth(value: object) -> int:
    if isinstance(value, dict | list):
        items = value.values() if isinstance(value, dict) else value
        return 1 + max((depth(item) for item in items), default=0)
    return 0


@settings(max_examples=300, deadline=None)
@given(levels=st.integers(0, 2 * MAX_JSON_DEPTH), filler=st.lists(TRICKY_TEXT, max_size=4),
       noise=st.recursive(TRICKY_TEXT, lambda inner: st.lists(inner, max_size=3), max_leaves=20))
def test_the_depth_scan_counts_only_real_nesting(levels, filler, noise):
    value = {"noise": noise, "deep": nest(levels, filler)}
    body = json.dumps(value, ensure_ascii=False).encode()
    if depth(value) > MAX_JSON_DEPTH:
        with pytest.raises(MalformedInput) as refused:
            refuse_deep_json(body)
        assert refused.value.field == "body"
    else:
        refuse_deep_json(body)


def test_brackets_inside_strings_never_count():
    refuse_deep_json(json.dumps({"title": "[" * 10_000, "body": '\\"' + "{" * 10_000}).encode())


@pytest.mark.parametrize(("error", "field"), [
    (h11.RemoteProtocolError("illegal header line: bytearray(b'X-Filename: a\\x00b')"), "x-filename"),
    (h11.RemoteProtocolError("illegal request line"), None),
    (None, None),
])
def test_the_http_parsers_refusal_is_the_json_envelope(error, field):
    sent = json.loads(error_body(error))["error"]
    assert sent["code"] == "invalid_input" and sent.get("field") == field
