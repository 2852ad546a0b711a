"""The dtype fixture of the core tests (the exact values and the ULP metric come from
logmax.audit: its certified reference and metric)."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest

DTYPES = [np.float16, ml_dtypes.bfloat16, np.float32, np.float64]
DTYPE_IDS = ["float16", "bfloat16", "float32", "float64"]


@pytest.fixture(params=DTYPES, ids=DTYPE_IDS)
def dtype(request):
    return np.dtype(request.param)
