"""The ``triton`` backend: GPU kernels for CUDA tensors (float16, bfloat16, float32).

Chosen automatically for CUDA tensors when Triton is installed. With ``TRITON_INTERPRET=1`` the
same kernels run on CPU tensors through Triton's interpreter (``LOGMAX_BACKEND=triton``), which
is how the suite tests them without a GPU.
"""

from __future__ import annotations

import importlib.util
import os
from typing import Any


def interpreting() -> bool:
    """Triton's interpreter is on (``TRITON_INTERPRET=1``): kernels run on CPU tensors."""
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


class TritonBackend:
    name = "triton"
    native = "torch"

    def available(self) -> str | None:
        if importlib.util.find_spec("triton") is None:
            return "Triton is not installed (pip install triton)"
        return None

    def supports(self, call: Any) -> str | None:
        if call.device != "cuda" and not (interpreting() and call.device == "cpu"):
            return (
                f"runs on CUDA devices (or on the CPU with TRITON_INTERPRET=1), not {call.device}"
            )
        return f"no Triton kernel for {call.op} yet"
