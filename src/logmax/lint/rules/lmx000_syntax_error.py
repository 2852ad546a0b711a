"""LMX000 syntax-error: the file, or a notebook cell, cannot be read or parsed.

A file that does not parse cannot be checked. Reporting it keeps the run going instead of
crashing on one bad file, and says which file was not checked: Python 2 code, a notebook cell
left unfinished in an exercise (``criterion = # TODO``), a file that is not valid UTF-8 or its
declared encoding, a path that is not a regular file (a FIFO or a device is not read), a file
larger than the size limit. The engine reports it (:mod:`logmax.lint.source`); there is no
hook. Fix: make the file valid Python 3, or exclude it.
"""

from __future__ import annotations

from logmax.lint.rules.base import Rule

RULE = Rule(
    "LMX000",
    "syntax-error",
    "error",
    "the file cannot be parsed",
    "a file that does not parse cannot be checked",
    "make it valid Python 3 or exclude it",
)
