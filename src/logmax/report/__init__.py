"""``logmax report``: the study, the audit summary, a quick benchmark and a lint demo.

- :mod:`logmax.report.terminal`: prints parts as rich tables.
"""
