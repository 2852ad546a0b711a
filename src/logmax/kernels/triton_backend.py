"""The ``triton`` backend: GPU kernels for CUDA tensors (float16, bfloat16, float32).

Chosen automatically for CUDA tensors when Triton is installed. With ``TRITON_INTERPRET=1`` the
same kernels run on CPU tensors through Triton's interpreter when the backend is forced
(``LOGMAX_BACKEND=triton``), which is how the suite tests them without a GPU.

It serves softmax, log_softmax, logsumexp (forward and their vector-Jacobian products) and the
fused cross-entropy forward + backward with every option of the contract; float64 is served by
the torch backend, and so are ``nll_loss``, an empty class axis and ``logsumexp``'s ``b`` /
``return_sign`` (``supports`` says so). The kernels (:mod:`logmax.kernels.triton`) run the
row-statistics algebra of :mod:`logmax._core.rowstats` -- its own source, specialised to Triton
-- with one program per row; nothing in a launch reads a tensor's values on the host.

For linear cross-entropy over vocabulary blocks,
:func:`logmax.kernels.triton.cross_entropy.ce_block` and
:func:`~logmax.kernels.triton.cross_entropy.ce_block_grad` are the Triton versions of
:func:`logmax.kernels.array.ce_block` / :func:`~logmax.kernels.array.ce_block_grad`.
"""

from __future__ import annotations

import importlib.util
import os
from typing import Any

from logmax._core.options import LossOptions, RowOptions

FLOATS = ("float16", "bfloat16", "float32")
OPS = ("softmax", "log_softmax", "logsumexp", "softmax_vjp", "log_softmax_vjp", "logsumexp_vjp",
       "cross_entropy")  # fmt: skip


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
        from logmax.kernels import registry

        if call.device == "cpu":
            # the interpreter is for tests: CPU tensors take it only when asked for by name
            if not interpreting() or registry.forced() != self.name:
                return (
                    "runs on CUDA devices (CPU tensors only with TRITON_INTERPRET=1 and "
                    "LOGMAX_BACKEND=triton)"
                )
        elif call.device != "cuda":
            return f"runs on CUDA devices, not {call.device}"
        if call.array != "torch":
            return "takes torch tensors"
        if call.dtype == "float64":
            return "float64 is served by the torch backend"
        if call.dtype not in FLOATS:
            return f"no kernel for {call.dtype}"
        if call.op not in OPS:
            return f"no Triton kernel for {call.op} (the torch backend serves it)"
        if "empty" in call.options:
            return "an empty class axis is served by the torch backend"
        return None

    # rows --------------------------------------------------------------------------------------
    def softmax(self, x, axis: int, opts: RowOptions):
        from logmax.kernels.triton import rows

        return rows.rows_op(rows.SOFTMAX, x, axis, opts.temperature)

    def log_softmax(self, x, axis: int, opts: RowOptions):
        from logmax.kernels.triton import rows

        return rows.rows_op(rows.LOG_SOFTMAX, x, axis, opts.temperature)

    def logsumexp(self, x, axis: int, opts: RowOptions):
        from logmax.kernels.triton import rows

        return rows.rows_op(rows.LOGSUMEXP, x, axis, opts.temperature)

    def softmax_vjp(self, y, g, axis: int, temperature: float):
        from logmax.kernels.triton import rows

        return rows.vjp(False, y, g, axis, temperature)

    def log_softmax_vjp(self, y, g, axis: int, temperature: float):
        from logmax.kernels.triton import rows

        return rows.vjp(True, y, g, axis, temperature)

    def logsumexp_vjp(self, x, g, axis: int, opts: RowOptions):
        from logmax.kernels.triton import rows

        return rows.rows_op(rows.LOGSUMEXP_VJP, x, axis, opts.temperature, g)

    # losses ------------------------------------------------------------------------------------
    def cross_entropy(self, x, axis, target, soft, weight, opts: LossOptions, grad_output,
                      want_lse=True, inplace_backward=False):  # fmt: skip
        """As :meth:`logmax.kernels.torch_backend.TorchBackend.cross_entropy`; with
        ``inplace_backward=True`` the gradient may be written over ``x`` (see
        :func:`logmax.kernels.triton.cross_entropy.cross_entropy`)."""
        from logmax.kernels.triton import cross_entropy

        return cross_entropy.cross_entropy(x, axis, target, soft, weight, opts, grad_output,
                                           want_lse, inplace_backward)  # fmt: skip
