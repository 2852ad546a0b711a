"""The backends of logmax behind one registry (:mod:`logmax.kernels.registry`).

``numpy`` (the reference, :mod:`.numpy_backend`), ``numba`` (fused CPU kernels,
:mod:`.numba_backend`), ``torch`` (plain torch operations on any device, :mod:`.torch_backend`)
and ``triton`` (GPU kernels, :mod:`.triton_backend`). The frontends describe each call with a
:class:`~logmax.kernels.registry.Call` and run it with :func:`~logmax.kernels.registry.run`; a
backend is imported on first use, so ``import logmax`` loads neither Numba nor torch.
"""

from logmax.kernels.registry import BackendError, Call, backend, names, run, select
from logmax.kernels.threads import get_num_threads, set_num_threads

__all__ = [
    "BackendError",
    "Call",
    "backend",
    "get_num_threads",
    "names",
    "run",
    "select",
    "set_num_threads",
]
