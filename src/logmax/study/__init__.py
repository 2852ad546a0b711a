"""The seed study: every claim of the four seed documents, reproduced and measured.

- :mod:`logmax.study.worked_examples`: the seeds' own numbers, computed every way (item 4).
- :mod:`logmax.study.training`, :mod:`logmax.study.pairings`: one network on scikit-learn's
  digits, trained with each head/loss pairing (item 1).
- :mod:`logmax.study.gradients`: seed 000's penalty arithmetic and each loss's gradient against
  the logit margin (item 2).
- :mod:`logmax.study.alpha_sweep`: seed 002's ``alpha * [-1, 0, 1]`` against exact values (item 3).
- :mod:`logmax.study.run`: runs it all and computes the findings; :mod:`logmax.study.figures`
  draws the figures.
- exact values and ULP errors: the audit's certified reference (:mod:`logmax.audit.reference`,
  ball arithmetic) and its metric (:func:`logmax.audit.metric.ulp_error`).
- :mod:`logmax.study.results`: the plain result types (parts, tables, figures, findings).
- :mod:`logmax.study.cli`, :mod:`logmax.study.terminal`: ``logmax study`` and its output.

Conclusions are computed from the measurements; where a result differs from what a seed claimed,
the finding says so.

Example:
    >>> from logmax.study.worked_examples import seed002_alpha
    >>> part = seed002_alpha((2, 1000))
    >>> part.findings[0].agrees  # naive log(softmax) gives -inf at alpha=1000, as the seed says
    True
"""
