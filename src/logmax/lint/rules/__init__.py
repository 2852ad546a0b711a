"""The rules of ``logmax lint``: one module per rule, collected here into :data:`RULES`.

Codes are grouped by what goes wrong:

- ``LMX0xx`` the file itself: it could not be read or parsed.
- ``LMX1xx`` wrong or unstable numbers: the code computes something other than what it means, or
  overflows/underflows to ``inf``/``-inf``/``NaN`` for ordinary inputs.
- ``LMX2xx`` waste and ambiguity: the result is right, but work is done twice or depends on a
  default that changes with the input's shape.

Severities: ``error`` (wrong results or NaN in normal use), ``warning`` (fragile or wasteful).

======  ==============================  ========  =============================================
code    name                            severity  what is found
======  ==============================  ========  =============================================
LMX000  syntax-error                    error     the file or notebook cell cannot be parsed
LMX101  softmax-into-cross-entropy      error     probabilities (softmax output) passed to
                                                  ``CrossEntropyLoss``/``F.cross_entropy``
LMX102  probabilities-into-nll-loss     error     probabilities passed to ``NLLLoss``/``F.nll_loss``
                                                  or as the input of ``KLDivLoss``/``F.kl_div``
LMX103  log-of-softmax                  error     ``log(softmax(x))`` in any spelling
LMX104  unshifted-softmax               error     ``exp(x) / exp(x).sum()`` without ``x - max``
LMX105  unshifted-logsumexp             error     ``log(sum(exp(x)))`` without ``x - max``
LMX106  regression-loss-on-softmax      warning   ``MSELoss``/``L1Loss``/``SmoothL1Loss``/
                                                  ``HuberLoss`` on softmax output
LMX107  manual-cross-entropy            warning   ``-(y * log(p)).sum()`` written by hand
LMX201  log-softmax-into-cross-entropy  warning   log-probabilities passed to ``CrossEntropyLoss``
LMX202  implicit-softmax-dim            warning   ``softmax``/``log_softmax``/``nn.Softmax`` without
                                                  ``dim`` (or SciPy's without ``axis``)
======  ==============================  ========  =============================================

Each module's docstring says what its rule finds, why it is wrong and what to write instead; the
README section "logmax lint" shows the same table with examples. A new rule is one new module
``lmxNNN_name.py`` here, found by :data:`MODULES`.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Iterable
from types import ModuleType

from logmax.lint.rules.base import Rule

# every module of this package named lmxNNN_*, in code order: a new rule is a new module
MODULES: tuple[ModuleType, ...] = tuple(
    importlib.import_module(f"{__name__}.{info.name}")
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda info: info.name)
    if info.name.startswith("lmx")
)
HOOK_NAMES = ("on_loss", "on_log", "on_division", "on_softmax_call", "on_reduction")

RULES: dict[str, Rule] = {module.RULE.code: module.RULE for module in MODULES}
# hook name -> the rules that implement it, with their function
HOOKS: dict[str, tuple[tuple[Rule, Callable], ...]] = {
    hook: tuple((m.RULE, getattr(m, hook)) for m in MODULES if hasattr(m, hook))
    for hook in HOOK_NAMES
}

__all__ = ["HOOKS", "MODULES", "RULES", "Rule", "selected", "unknown_codes"]


def unknown_codes(codes: Iterable[str]) -> list[str]:
    """The codes (or prefixes such as ``LMX1``) that name no rule, as given."""
    return [c for c in codes if not any(code.startswith(c.strip().upper()) for code in RULES)]


def selected(code: str, select: list[str] | None, ignore: list[str] | None) -> bool:
    """Whether ``code`` passes ``--select``/``--ignore`` (flake8 style: prefixes such as ``LMX1``).

    The longest matching prefix wins, so ``--select LMX1 --ignore LMX106`` keeps LMX101-LMX107
    except LMX106, and ``--ignore LMX1 --select LMX103`` keeps LMX103 only.
    """
    best_select = max((len(p) for p in select or [] if code.startswith(p)), default=-1)
    if select and best_select < 0:
        return False
    best_ignore = max((len(p) for p in ignore or [] if code.startswith(p)), default=-1)
    return best_ignore < 0 or best_select > best_ignore
