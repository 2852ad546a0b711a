"""Certified accuracy: an exact reference for every op and ``logmax audit``.

- :mod:`~logmax.audit.reference`: the certified reference (ball arithmetic, precision raised
  until the result provably rounds to one value of the target format).
- :mod:`~logmax.audit.formats`: float16, bfloat16, float32, float64 and exact rounding into them.
- :mod:`~logmax.audit.metric`: the error in ULPs at the exact value.
- :mod:`~logmax.audit.catalogue`: the stress cases, each with its reason.
- :mod:`~logmax.audit.registry`: the implementations measured (logmax and its peers).
- :mod:`~logmax.audit.runner`: :func:`run_audit` and :class:`AuditResult`.
- :mod:`~logmax.audit.figures` and :mod:`~logmax.audit.page`: plots and the HTML page.

Names are loaded on first use, so ``import logmax.audit`` (and ``logmax --help``) stays light.

For the report::

    from logmax.audit import run_audit, figure_error_vs_alpha, figure_loss_vs_margin, png_base64
    result = run_audit(quick=True)            # every op, dtype and installed implementation
    rows = result.summary()                   # dicts: op, impl, dtype, max_ulp, p99_ulp, ...
    print(result.table())
    img = png_base64(figure_error_vs_alpha(result))   # or write_outputs(result, folder)
"""

from __future__ import annotations

import importlib
from typing import Any

_NAMES = {
    "run_audit": "logmax.audit.runner",
    "AuditResult": "logmax.audit.runner",
    "CaseResult": "logmax.audit.runner",
    "Exact": "logmax.audit.reference",
    "ulp_error": "logmax.audit.metric",
    "relative_error": "logmax.audit.metric",
    "BOUNDS": "logmax.audit.metric",
    "CASES": "logmax.audit.catalogue",
    "FORMATS": "logmax.audit.formats",
    "figure_error_vs_alpha": "logmax.audit.figures",
    "figure_loss_vs_margin": "logmax.audit.figures",
    "png_base64": "logmax.audit.figures",
    "write_outputs": "logmax.audit.page",
    "render_html": "logmax.audit.page",
}

__all__ = sorted(_NAMES)


def __getattr__(name: str) -> Any:
    module = _NAMES.get(name)
    if module is None:
        raise AttributeError(f"module 'logmax.audit' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
