"""The evaluation's body: byte for byte what json.dumps writes, whatever the feature names hold."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from flipper.serve.responses import JSONResponse, features_body


def seed_format(features: list[str]) -> bytes:
    return json.dumps({"features": features}, ensure_ascii=False).encode("utf-8")


@given(st.lists(st.text()))
def test_body_is_json_dumps_byte_for_byte(features: list[str]) -> None:
    assert features_body(features) == seed_format(features)


@given(st.lists(st.sampled_from(['"', "\\", "\n", "\x00", "\x1f", "\x7f", "é", "\u2028", "a", ", "]), min_size=1))
def test_names_that_need_escaping_are_escaped(names: list[str]) -> None:
    features = ["".join(names), "plain"]
    assert features_body(features) == seed_format(features)
    assert json.loads(features_body(features)) == {"features": features}


def test_body_has_the_seed_spacing() -> None:
    assert features_body(["a", "b"]) == b'{"features": ["a", "b"]}'
    assert features_body([]) == b'{"features": []}'


def test_unicode_is_kept_and_a_lone_surrogate_is_escaped_not_an_error() -> None:
    assert JSONResponse({"key": "Zoë"}).body == '{"key": "Zoë"}'.encode()
    body = JSONResponse({"key": "a\udc80"}).body
    assert (body, json.loads(body)) == (b'{"key": "a\\udc80"}', {"key": "a\udc80"})
