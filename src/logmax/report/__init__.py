"""``logmax report``: the study, the audit summary, a quick benchmark and the lint demo.

- :mod:`logmax.report.sections`: one function per section; a tool that is missing or fails
  yields a section that says why, never invented figures.
- :mod:`logmax.report.document`: the report's structure (sections of study parts).
- :mod:`logmax.report.html`: one self-contained HTML page (inline style, PNGs embedded, no script).
- :mod:`logmax.report.terminal`: the short terminal summary.
- :mod:`logmax.report.lint_demo`: the example the lint demo checks.
- :mod:`logmax.report.cli`: the ``logmax report`` command.
"""
