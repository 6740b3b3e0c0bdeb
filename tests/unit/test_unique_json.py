"""unique_names: the one hook that refuses a JSON name given twice."""

from __future__ import annotations

import json

import pytest

from toolkit.unique_json import DuplicateName, unique_names


def test_unique_names_pass_through_in_order() -> None:
    assert json.loads('{"b": 1, "a": {"c": 2}}', object_pairs_hook=unique_names) == {
        "b": 1,
        "a": {"c": 2},
    }


@pytest.mark.parametrize("text", ['{"a": 1, "a": 2}', '{"x": {"a": 1, "a": 1}}'])
def test_a_name_given_twice_is_refused_at_any_depth(text: str) -> None:
    with pytest.raises(DuplicateName) as caught:
        json.loads(text, object_pairs_hook=unique_names)
    assert caught.value.name == "a"
