"""The seed study: every claim of the four seed documents, reproduced and measured.

- :mod:`logmax.study.worked_examples`: the seeds' own numbers, computed every way.
- :mod:`logmax.study.exact`: exact values (mpmath, precision raised until stable) and ULP errors.
- :mod:`logmax.study.results`: the plain result types (parts, tables, figures, findings).

Conclusions are computed from the measurements; where a result differs from what a seed claimed,
the finding says so.
"""
