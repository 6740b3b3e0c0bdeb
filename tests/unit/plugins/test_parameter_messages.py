"""A refused value says what was expected in the author's words, not only as a pattern."""

from __future__ import annotations

import pytest

from toolkit.plugins import Diagnostic, Parameter, ParameterError

SIZE = Parameter("size", pattern=r"[1-9][0-9]{0,5}[KMG]", description="a size like 200M")


def test_a_mismatch_names_the_description_after_the_pattern() -> None:
    with pytest.raises(ParameterError) as refused:
        SIZE.check("200")
    assert refused.value.message == (
        "-p size=\"200\": does not match '[1-9][0-9]{0,5}[KMG]' (a size like 200M)."
    )


def test_a_procedure_without_parameters_says_it_takes_none() -> None:
    plain = Diagnostic(name="plain", summary="Nothing to set", run=[["uptime"]])
    with pytest.raises(ParameterError) as refused:
        plain.bind({"x": "1"})
    assert refused.value.message == 'plain has no parameter "x"; it takes: none.'
