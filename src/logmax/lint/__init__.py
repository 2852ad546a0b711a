"""``logmax lint``: find softmax and log-softmax mistakes in Python files and notebooks.

The mistakes are the ones users make again and again: softmax fed into ``CrossEntropyLoss``
(which applies ``log_softmax`` itself), ``log(softmax(x))`` that turns into ``-inf``,
hand-written ``exp(x) / exp(x).sum()`` that overflows, MSE on softmax outputs. No other linter
catches them. The rules, one module each with its fix: :mod:`logmax.lint.rules`.

The linter parses (Python's ``ast``) and never imports or runs the code it reads; notebooks are
read as JSON. It follows values through imports and aliases, the project's own modules, local
variables, tuples, functions, ``self.layer`` attributes, ``nn.Sequential``, ``forward`` and both
arms of branches (:mod:`logmax.lint.analysis`). ``ast`` rather than libcst: it is in the standard
library (``logmax lint`` adds no dependency), it is several times faster on large trees, and
``--fix`` edits the original text at the positions ``ast`` gives, so formatting and comments
outside the rewritten call stay byte for byte. The package imports nothing heavy (no NumPy, no
torch, no Numba): a pre-commit environment needs only the standard library.

Example:
    >>> from logmax.lint import lint_source
    >>> code = "import torch\\ny = torch.log(torch.softmax(x, dim=1))\\n"
    >>> for finding in lint_source(code, "model.py"):
    ...     print(finding.location, finding.code, finding.edit.text)
    model.py:2:5 LMX103 torch.log_softmax(x, dim=1)
"""

from logmax.lint.engine import check, fix, fix_source, lint_paths, lint_source, lint_sources
from logmax.lint.finding import Edit, Finding
from logmax.lint.rules import RULES, Rule
from logmax.lint.source import Source, read_source

__all__ = [
    "RULES",
    "Edit",
    "Finding",
    "Rule",
    "Source",
    "check",
    "fix",
    "fix_source",
    "lint_paths",
    "lint_source",
    "lint_sources",
    "read_source",
]
