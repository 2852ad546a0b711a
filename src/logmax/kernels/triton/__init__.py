r"""Triton kernels for the ``triton`` backend (:mod:`logmax.kernels.triton_backend`).

- :mod:`._algebra`: the row-statistics algebra (:mod:`logmax._core.ddarith`,
  :mod:`logmax._core.rowstats`) re-bound to Triton primitives and wrapped with ``triton.jit``:
  the kernels call the *same source* as every other backend, in two precision profiles.
- :mod:`.rows`: softmax, log_softmax, logsumexp and their vector-Jacobian products.
- :mod:`.cross_entropy`: the fused cross-entropy (loss, logsumexp and gradient in one program
  per row) and the vocabulary-block kernels that linear cross-entropy calls.

Importing any of them imports Triton. With ``TRITON_INTERPRET=1`` the kernels run on CPU tensors
through Triton's interpreter (that is how the suite tests them without a GPU).
"""
