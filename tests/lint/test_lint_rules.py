"""One module per rule: its code, name, docstring, hooks and fix together, collected in RULES."""

from __future__ import annotations

import inspect

from logmax.lint import RULES
from logmax.lint.rules import HOOK_NAMES, HOOKS, MODULES


def test_each_rule_module_is_named_by_its_code_and_name():
    assert [m.RULE.code for m in MODULES] == sorted(RULES)
    for module in MODULES:
        rule = module.RULE
        assert (
            module.__name__.rsplit(".", 1)[-1]
            == f"{rule.code.lower()}_{rule.name.replace('-', '_')}"
        )
        assert module.__doc__.startswith(f"{rule.code} {rule.name}: ")
        assert rule.severity in ("error", "warning")


def test_every_rule_but_the_parse_error_has_a_hook_with_the_event_it_names():
    hooked = {rule.code for hooks in HOOKS.values() for rule, _ in hooks}
    assert hooked == set(RULES) - {"LMX000"}
    for module in MODULES:
        for hook in HOOK_NAMES:
            function = getattr(module, hook, None)
            if function is not None:  # (ctx, event): the context first, then one event
                assert list(inspect.signature(function).parameters)[0] == "ctx"
                assert len(inspect.signature(function).parameters) == 2


def test_rules_see_the_analysis_only_through_their_context():
    for module in MODULES:
        source = inspect.getsource(module)
        assert "logmax.lint.analysis" not in source
        assert "logmax.lint.project" not in source
