"""The streaming JSON reader the import uses: same values as json.loads, whatever the chunking and
whitespace; hostile or broken input refused with a path, never a crash or a silent truncation."""

from __future__ import annotations

import io
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tow_adapters.json_stream import read_object
from tow_core.errors import InvalidInput

SCALARS = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text()
VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner,
                                                                                           max_size=4), max_leaves=12)
DOCUMENTS = st.dictionaries(st.sampled_from(["records", "people", "format", "organisation", "x"]),
                            st.lists(VALUES, max_size=5) | VALUES, max_size=5)


def read(text: bytes, chunk: int) -> dict:
    result = {}
    for key, value in read_object(io.BytesIO(text), frozenset({"records", "people"}), max_item_bytes=10_000,
                                  chunk_bytes=chunk):
        result[key] = json.loads(value) if isinstance(value, bytes) else [json.loads(v) for v in value]
    return result


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(document=DOCUMENTS, chunk=st.integers(1, 64), indent=st.sampled_from([None, 0, 2]))
def test_members_and_items_read_back_as_json_loads_reads_them(document, chunk, indent):
    text = json.dumps(document, indent=indent, ensure_ascii=False).encode()
    assert read(text, chunk) == json.loads(text)


@pytest.mark.parametrize("text, reason", [
    (b'{"records": [1, 2', "unexpected end of file"),
    (b'{"records": [{"a": "b]"}', "unexpected end of file"),
    (b'{"format": "x"} trailing', "data after the end"),
    (b'[1, 2]', "expected '{'"),
    (b'{"a" 1}', "expected ':'"),
    (b'{"records": [1}]}', "expected ']'"),
    (b'{1: 2}', "expected a member name"),
])
def test_broken_json_is_refused_at_the_top_level_path(text, reason):
    with pytest.raises(InvalidInput) as refused:
        read(text, 3)
    assert refused.value.field == "$" and reason in refused.value.message


def test_an_oversized_item_is_refused_with_its_path_before_it_is_all_in_memory():
    text = b'{"records": [1, "' + b"x" * 50_000 + b'"]}'
    with pytest.raises(InvalidInput) as refused:
        read(text, 1024)
    assert refused.value.field == "$.records[1]"


def test_a_string_with_brackets_quotes_and_escapes_is_one_value():
    text = json.dumps({"records": ['a"]}[{\\', {"k": "\\u0022]"}]}).encode()
    assert read(text, 2) == json.loads(text)
