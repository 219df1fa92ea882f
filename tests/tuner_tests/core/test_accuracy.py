from __future__ import annotations

import pytest

from tuner.core import defaults
from tuner.core.accuracy import accuracy_rule, parse_accuracy
from tuner.core.errors import UserError


@pytest.mark.parametrize("spec", ["elementwise:0.0001,0.0001", "rel-l2:0.02", "cosine:0.999", "top1:1", "top1:0.99",
                                  "my_rules.check:score"])
def test_each_form_parses_and_keeps_its_spelling(spec):
    assert parse_accuracy(spec).spec == spec


def test_top1_defaults_to_full_agreement_and_levels_have_defaults():
    assert parse_accuracy("top1").values == (1.0,)
    assert accuracy_rule(None, "o2").spec == defaults.ACCURACY["o2"]
    assert accuracy_rule("cosine:0.9", "o1").kind == "cosine"


@pytest.mark.parametrize("spec", ["l2:0.1", "rel-l2", "rel-l2:x", "rel-l2:-1", "elementwise:0.1", "cosine:2",
                                  "top1:1.5", "not a rule"])
def test_a_bad_rule_is_one_line_naming_the_forms(spec):
    with pytest.raises(UserError) as e:
        parse_accuracy(spec)
    assert "\n" not in e.value.one_line() and "--accuracy" in str(e.value)


def test_a_missing_function_is_named_when_resolved():
    with pytest.raises(UserError, match="cannot be loaded"):
        parse_accuracy("no_such_module_xyz:fn").resolve()
