"""Shared test settings: hypothesis profiles.

``LOGMAX_HYPOTHESIS_PROFILE=long uv run pytest ...`` runs the long fuzzing profile.
"""

import os

from hypothesis import HealthCheck, settings

# Every test runs the backend it means to: no serving small first calls from the reference while
# the kernels load (tests/kernels/test_registry.py checks that warm-up in a process of its own).
os.environ.setdefault("LOGMAX_WARM_UP", "0")

# The default profile is derandomized: CI runs the same examples every time (a failure it shows
# is reproducible); the long profile draws new ones.
settings.register_profile(
    "default",
    max_examples=40,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "long", max_examples=100_000, deadline=None, suppress_health_check=list(HealthCheck)
)
settings.load_profile(os.environ.get("LOGMAX_HYPOTHESIS_PROFILE", "default"))
