"""consentry.http.dumps reuses one C encoder: it must write what json.dumps writes."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from starlette.responses import Response

from consentry.http import JSON, NO_STORE, dumps

values: Any = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(), inner, max_size=5),
    max_leaves=30,
)


@settings(max_examples=300)
@given(values)
def test_dumps_is_compact_utf8_json(value: Any) -> None:
    try:
        expected = json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()
    except UnicodeEncodeError:  # a lone surrogate: neither can write it as UTF-8
        return
    assert dumps(value) == expected


def test_unencodable_is_a_type_error_as_with_json() -> None:
    import pytest

    with pytest.raises(TypeError):
        dumps({"a": object()})


@pytest.mark.parametrize("status", [200, 201, 400, 204])
def test_json_no_store_headers_are_starlettes(status: int) -> None:
    """The token answer's shortcut gives Starlette's own header list, in its order."""

    class Plain(Response):
        media_type = "application/json"

    body = {"access_token": "a" * 40, "expires_in": 3600, "scope": None}
    ours = JSON(body, status_code=status, headers=NO_STORE)
    theirs = Plain(ours.body, status_code=status, headers=NO_STORE)
    assert ours.raw_headers == theirs.raw_headers
    assert JSON(body).raw_headers == Plain(ours.body).raw_headers
