"""What the benchmark times: for each op, logmax's call and the same call in each peer.

Each case builds its inputs once (a fixed seed) and returns zero-argument callables: ``logmax``
(the NumPy frontend), ``logmax.torch`` (the PyTorch frontend on CPU tensors, what torch users
call) and the peers. Peers that are not installed, or do not take the dtype (SciPy and
bfloat16), are left out. Memory traffic (for GB/s) is what the op must move at least:
softmax and log_softmax read the input and write an output of the same size; logsumexp reads the
input; cross-entropy forward+backward reads the logits and writes the gradient.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from logmax._core.dtypes import numpy_dtype

OPS = ("softmax", "log_softmax", "logsumexp", "cross_entropy")
PEERS = ("torch", "scipy", "jax")


@dataclass
class Case:
    op: str
    shape: tuple[int, int]
    dtype: str
    bytes_moved: int
    funcs: dict[str, Callable[[], object]]  # "logmax", then the peers present


def available_peers(wanted: tuple[str, ...] = PEERS) -> tuple[str, ...]:
    return tuple(p for p in wanted if importlib.util.find_spec(p) is not None)


def make_inputs(shape: tuple[int, int], dtype: str, seed: int = 0):
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal(shape, dtype=np.float32) * 4).astype(numpy_dtype(dtype))
    labels = rng.integers(0, shape[1], size=shape[0])
    return x, labels


def build_case(op: str, shape: tuple[int, int], dtype: str, peers: tuple[str, ...]) -> Case:
    import logmax

    x, labels = make_inputs(shape, dtype)
    nbytes = x.nbytes
    funcs: dict[str, Callable[[], object]] = {}
    if op == "cross_entropy":
        funcs["logmax"] = lambda: logmax.cross_entropy_with_grad(x, labels)
        moved = 2 * nbytes
    elif op == "logsumexp":
        funcs["logmax"] = lambda: logmax.logsumexp(x, axis=-1)
        moved = nbytes
    else:
        f = getattr(logmax, op)
        funcs["logmax"] = lambda: f(x, axis=-1)
        moved = 2 * nbytes
    if "torch" in peers:
        funcs["logmax.torch"] = _logmax_torch(op, x, labels)
    for peer in peers:
        fn = _PEER_BUILDERS[peer](op, x, labels)
        if fn is not None:
            funcs[peer] = fn
    return Case(op, shape, dtype, moved, funcs)


def _tensor(x):
    from logmax.kernels.interop import from_numpy

    return from_numpy(x)


def _fwd_bwd(cross_entropy, xt, labels):
    """Forward and backward of ``cross_entropy`` on a leaf copy of ``xt`` (the training step)."""
    import torch

    yt = torch.from_numpy(labels)
    leaf = xt.clone().requires_grad_(True)

    def step():
        leaf.grad = None
        loss = cross_entropy(leaf, yt)
        loss.backward()
        return loss

    return step


def _logmax_torch(op, x, labels):
    import logmax.torch as lt

    xt = _tensor(x)
    if op == "cross_entropy":
        return _fwd_bwd(lt.cross_entropy, xt, labels)
    if op == "logsumexp":
        return lambda: lt.logsumexp(xt, dim=-1)
    f = getattr(lt, op)
    return lambda: f(xt, dim=-1)


def _torch(op, x, labels):
    import torch
    import torch.nn.functional as F

    xt = _tensor(x)
    if op == "cross_entropy":
        return _fwd_bwd(F.cross_entropy, xt, labels)
    if op == "logsumexp":
        return lambda: torch.logsumexp(xt, dim=-1)
    f = getattr(torch, op)
    return lambda: f(xt, dim=-1)


def _scipy(op, x, labels):
    import scipy.special

    if op == "cross_entropy" or x.dtype.name == "bfloat16":
        return None  # scipy has no cross-entropy with a gradient, and no bfloat16
    f = getattr(scipy.special, op)
    return lambda: f(x, axis=-1)


def _jax(op, x, labels):
    import jax
    import jax.numpy as jnp

    if x.dtype.name == "float64" and not jax.config.jax_enable_x64:
        return None  # JAX would compute in float32
    xj = jnp.asarray(x)
    if op == "cross_entropy":
        yj = jnp.asarray(labels)

        def loss(z):
            lp = jax.nn.log_softmax(z, axis=-1)
            return -jnp.mean(jnp.take_along_axis(lp, yj[:, None], axis=-1))

        f = jax.jit(jax.value_and_grad(loss))
        return lambda: jax.block_until_ready(f(xj))
    f = jax.jit({"softmax": jax.nn.softmax, "log_softmax": jax.nn.log_softmax,
                 "logsumexp": jax.nn.logsumexp}[op], static_argnames="axis")  # fmt: skip
    return lambda: jax.block_until_ready(f(xj, axis=-1))


_PEER_BUILDERS = {"torch": _torch, "scipy": _scipy, "jax": _jax}
