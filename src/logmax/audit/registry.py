"""The implementations the audit measures, behind one small registry.

An implementation is a name, a line of description and, per op, a function
``fn(x, target, **options)`` taking NumPy inputs of one dtype (the catalogue's options, see
:data:`logmax.audit.catalogue.OP_OPTIONS`) and returning a NumPy result (``(lse, sign)`` for
``logsumexp`` with ``return_sign``). A function raises :class:`Unsupported` for an option or dtype
it does not offer; the audit shows "n/a" there.

Options a peer lacks are supplied the way its users would write them (``where`` as ``-inf``
entries, ``temperature`` as ``x / T``, ``softcap`` as ``cap * tanh(x / cap)``), so the audit
measures what users of that library get.

Adding an implementation is one decorated loader returning ``{op: fn}``; a loader that raises
``ImportError`` (a missing package) is skipped with its reason::

    @implementation("mylib", "what it is")
    def _mylib() -> dict[str, OpFn]:
        import mylib
        return {"softmax": lambda x, target, **o: mylib.softmax(x, axis=-1)}
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

OpFn = Callable[..., Any]


class Unsupported(Exception):
    """The implementation does not offer this op, option or dtype."""


@dataclass(frozen=True)
class Implementation:
    name: str
    description: str
    ops: dict[str, OpFn]


_LOADERS: dict[str, tuple[str, Callable[[], dict[str, OpFn]]]] = {}


def implementation(name: str, description: str):
    """Register a loader ``() -> {op: fn}`` under ``name``."""

    def register(loader: Callable[[], dict[str, OpFn]]) -> Callable[[], dict[str, OpFn]]:
        _LOADERS[name] = (description, loader)
        return loader

    return register


def names() -> list[str]:
    """Every registered implementation, available or not, in the table's order."""
    return list(_LOADERS)


def load(only: list[str] | None = None) -> tuple[dict[str, Implementation], dict[str, str]]:
    """The available implementations (all, or those in ``only``) and the skipped ones' reasons."""
    unknown = sorted(set(only or ()) - set(_LOADERS))
    if unknown:
        raise ValueError(f"unknown implementation(s) {unknown}; known: {', '.join(_LOADERS)}")
    found: dict[str, Implementation] = {}
    skipped: dict[str, str] = {}
    for name, (description, loader) in _LOADERS.items():
        if only is not None and name not in only:
            continue
        try:
            found[name] = Implementation(name, description, loader())
        except ImportError as exc:
            skipped[name] = f"not installed ({exc})"
    return found, skipped


_DEFAULTS: dict[str, Any] = {"z_loss": 0.0, "label_smoothing": 0.0, "return_sign": False}


def _no(options: dict[str, Any], *keys: str) -> None:
    """Raise :class:`Unsupported` if one of ``keys`` is set; drop those left at their default."""
    for k in keys:
        v = options.pop(k, None)
        if v is not None and (k not in _DEFAULTS or v != _DEFAULTS[k]):
            raise Unsupported(f"no {k}")


def _masked_np(x: np.ndarray, options: dict[str, Any]) -> np.ndarray:
    """``where`` and ``temperature`` the NumPy way: ``-inf`` where masked, then ``x / T``."""
    where = options.get("where")
    if where is not None:
        x = np.where(where, x, np.array(-np.inf, dtype=x.dtype))
    t = options.get("temperature", 1.0)
    return x if t == 1.0 else (x / np.array(t, dtype=x.dtype)).astype(x.dtype)


# ---------------------------------------------------------------------------------------------
# logmax itself: the NumPy frontend, the kernels behind it, the torch frontend.
@implementation("logmax", "logmax's NumPy frontend (its kernels wherever the dispatch picks them)")
def _logmax() -> dict[str, OpFn]:
    import logmax

    return {
        "softmax": lambda x, target, **o: logmax.softmax(x, -1, **o),
        "log_softmax": lambda x, target, **o: logmax.log_softmax(x, -1, **o),
        "logsumexp": lambda x, target, **o: logmax.logsumexp(x, -1, **o),
        "nll_loss": lambda x, target, **o: logmax.nll_loss(x, target, **o),
        "cross_entropy": lambda x, target, **o: logmax.cross_entropy(x, target, **o),
    }


def _with_backend(name: str, ops: dict[str, OpFn]) -> dict[str, OpFn]:
    """``ops`` run with ``LOGMAX_BACKEND=name`` (the registry reads it at every call)."""
    import os

    def forced(fn: OpFn) -> OpFn:
        def run(x, target, **o):
            saved = os.environ.get("LOGMAX_BACKEND")
            os.environ["LOGMAX_BACKEND"] = name
            try:
                return fn(x, target, **o)
            finally:
                if saved is None:
                    del os.environ["LOGMAX_BACKEND"]
                else:
                    os.environ["LOGMAX_BACKEND"] = saved

        return run

    return {op: forced(fn) for op, fn in ops.items()}


@implementation(
    "logmax.core",
    "logmax's NumPy frontend with LOGMAX_BACKEND=numpy: the reference backend "
    "(the kernels' oracle)",
)
def _logmax_core() -> dict[str, OpFn]:
    return _with_backend("numpy", _logmax())


@implementation("logmax.kernels", "logmax's Numba CPU kernels, called as their backend directly")
def _logmax_kernels() -> dict[str, OpFn]:
    from logmax._core.options import RowOptions
    from logmax.kernels import registry

    numba = registry.backend("numba")
    if numba.available():
        raise ImportError(numba.available())

    def row_op(op: str) -> OpFn:
        def fn(x, target, where=None, temperature=1.0, **o):
            _no(o, "b", "return_sign")
            call = registry.Call(
                op,
                "numpy",
                "cpu",
                x.dtype.name,
                frozenset({"temperature"} if temperature != 1.0 else ()),
            )
            if numba.supports(call):
                raise Unsupported(numba.supports(call))
            xs = x if where is None else np.where(where, x, np.array(-np.inf, dtype=x.dtype))
            return getattr(numba, op)(
                np.ascontiguousarray(xs), x.ndim - 1, RowOptions.make(temperature)
            )

        return fn

    return {op: row_op(op) for op in ("softmax", "log_softmax", "logsumexp")}


def _to_torch(a: np.ndarray):
    import ml_dtypes
    import torch

    if a.dtype == np.dtype(ml_dtypes.bfloat16):
        return torch.from_numpy(a.view(np.int16).copy()).view(torch.bfloat16)
    return torch.from_numpy(np.array(a, copy=True))


def _from_torch(t) -> np.ndarray:
    import ml_dtypes
    import torch

    t = t.detach()
    if t.dtype == torch.bfloat16:
        return t.view(torch.int16).numpy().view(ml_dtypes.bfloat16)
    return t.numpy()


def _torch_inputs(x: np.ndarray, target, options: dict[str, Any], native: tuple[str, ...] = ()):
    """Tensors for a torch-style function; ``where``/``temperature``/``softcap`` applied as a
    torch user would, unless the function takes them (``native``)."""
    import torch

    t = _to_torch(x)
    o = dict(options)
    where = o.pop("where", None)
    if "softcap" not in native:
        cap = o.pop("softcap", None)
        if cap is not None:
            t = cap * torch.tanh(t / cap)
    if "temperature" not in native:
        temp = o.pop("temperature", 1.0)
        if temp != 1.0:
            t = t / temp
    if where is not None:
        t = t.masked_fill(~torch.from_numpy(np.asarray(where, dtype=bool)), float("-inf"))
    if o.get("weight") is not None:
        o["weight"] = _to_torch(o["weight"])
    tt = None
    if target is not None:
        tt = _to_torch(target) if target.dtype.kind not in "iu" else torch.from_numpy(target)
    return t, tt, o


@implementation("logmax.torch", "logmax's PyTorch frontend (logmax.torch, drop-in for F)")
def _logmax_torch() -> dict[str, OpFn]:
    import logmax.torch as lt

    def rows(name: str) -> OpFn:
        def fn(x, target, **o):
            _no(o, "b", "return_sign")
            t, _, o = _torch_inputs(x, None, o, native=("temperature",))
            return _from_torch(getattr(lt, name)(t, -1, **o))

        return fn

    def loss(name: str) -> OpFn:
        def fn(x, target, **o):
            t, tt, o = _torch_inputs(x, target, o, native=("temperature", "softcap"))
            return _from_torch(getattr(lt, name)(t, tt, **o))

        return fn

    return {
        "softmax": rows("softmax"),
        "log_softmax": rows("log_softmax"),
        "logsumexp": rows("logsumexp"),
        "nll_loss": loss("nll_loss"),
        "cross_entropy": loss("cross_entropy"),
    }


# ---------------------------------------------------------------------------------------------
# Peers.
@implementation("torch", "torch.softmax / log_softmax / logsumexp, torch.nn.functional losses")
def _torch() -> dict[str, OpFn]:
    import torch
    import torch.nn.functional as F

    def rows(fn: Callable) -> OpFn:
        def run(x, target, **o):
            _no(o, "b", "return_sign")
            t, _, _ = _torch_inputs(x, None, o)
            return _from_torch(fn(t, -1))

        return run

    def nll(x, target, **o):
        t, tt, o = _torch_inputs(x, target, o)
        if tt.is_floating_point():
            raise Unsupported("nll_loss takes class indices only")
        return _from_torch(F.nll_loss(t, tt, **o))

    def ce(x, target, **o):
        _no(o, "z_loss")
        t, tt, o = _torch_inputs(x, target, o)
        return _from_torch(F.cross_entropy(t, tt, **o))

    return {
        "softmax": rows(torch.softmax),
        "log_softmax": rows(torch.log_softmax),
        "logsumexp": rows(torch.logsumexp),
        "nll_loss": nll,
        "cross_entropy": ce,
    }


@implementation("scipy", "scipy.special.softmax / log_softmax / logsumexp")
def _scipy() -> dict[str, OpFn]:
    import ml_dtypes
    from scipy import special

    def prep(x: np.ndarray, o: dict[str, Any]) -> np.ndarray:
        if x.dtype == np.dtype(ml_dtypes.bfloat16):
            raise Unsupported("SciPy does not take bfloat16")
        return _masked_np(x, o)

    def lse(x, target, where=None, temperature=1.0, b=None, return_sign=False):
        xs = prep(x, {"where": where, "temperature": temperature})
        return special.logsumexp(xs, axis=-1, b=b, return_sign=return_sign)

    return {
        "softmax": lambda x, target, **o: special.softmax(prep(x, o), axis=-1),
        "log_softmax": lambda x, target, **o: special.log_softmax(prep(x, o), axis=-1),
        "logsumexp": lse,
    }


@implementation("jax", "jax.nn.softmax / log_softmax, jax.scipy.special.logsumexp")
def _jax() -> dict[str, OpFn]:
    import jax
    import jax.numpy as jnp
    from jax.scipy import special

    def prep(x: np.ndarray, o: dict[str, Any]):
        if x.dtype == np.float64 and not jax.config.jax_enable_x64:
            raise Unsupported("float64 needs jax_enable_x64")
        return jnp.asarray(_masked_np(x, o))

    def lse(x, target, where=None, temperature=1.0, b=None, return_sign=False):
        out = special.logsumexp(
            prep(x, {"where": where, "temperature": temperature}),
            axis=-1,
            b=b,
            return_sign=return_sign,
        )
        return tuple(np.asarray(v) for v in out) if return_sign else np.asarray(out)

    return {
        "softmax": lambda x, target, **o: np.asarray(jax.nn.softmax(prep(x, o), axis=-1)),
        "log_softmax": lambda x, target, **o: np.asarray(jax.nn.log_softmax(prep(x, o), axis=-1)),
        "logsumexp": lse,
    }


# ---------------------------------------------------------------------------------------------
# What people write by hand.
@implementation(
    "naive",
    "NumPy in the input dtype: softmax = e^(x-m) / sum, log_softmax = log(softmax(x)), "
    "logsumexp = log(sum(exp(x))), cross-entropy = -log(softmax(x))[y]",
)
def _naive() -> dict[str, OpFn]:
    def softmax(x, target=None, **o):
        xs = _masked_np(x, o)
        with np.errstate(all="ignore"):
            e = np.exp(xs - xs.max(axis=-1, keepdims=True))
            return (e / e.sum(axis=-1, keepdims=True)).astype(x.dtype)

    def log_softmax(x, target=None, **o):
        with np.errstate(all="ignore"):
            return np.log(softmax(x, **o)).astype(x.dtype)  # noqa: LMX103

    def logsumexp(x, target=None, **o):
        _no(o, "b", "return_sign")
        with np.errstate(all="ignore"):
            return np.log(np.exp(_masked_np(x, o)).sum(axis=-1)).astype(x.dtype)  # noqa: LMX105

    def cross_entropy(x, target, weight=None, ignore_index=-100, reduction="mean", **o):
        _no(o, "label_smoothing", "softcap", "z_loss")
        if target.dtype.kind not in "iu":
            raise Unsupported("class indices only")
        logp = log_softmax(x, **o)
        counted = target != ignore_index
        y = np.where(counted, target, 0)
        w = np.ones(x.shape[-1], x.dtype) if weight is None else weight
        rw = np.where(counted, w[y], 0).astype(x.dtype)
        with np.errstate(all="ignore"):
            rows = np.where(counted, -rw * np.take_along_axis(logp, y[:, None], -1)[:, 0], 0)
            rows = rows.astype(x.dtype)
            if reduction == "none":
                return rows
            total = rows.sum(dtype=x.dtype)
            return (total / rw.sum(dtype=x.dtype) if reduction == "mean" else total).astype(x.dtype)

    return {
        "softmax": softmax,
        "log_softmax": log_softmax,
        "logsumexp": logsumexp,
        "cross_entropy": cross_entropy,
    }


@implementation(
    "seed001_manual",
    "seed 001's hand-written torch functions: Softmax = exp(x) / sum(exp(x)), "
    "logSoftmax = log(Softmax), CrossEntropy = -sum(onehot * log(Softmax)) / batch",
)
def _seed001() -> dict[str, OpFn]:
    import torch

    def Softmax(x):  # noqa: N802 - the seed's names
        return (torch.exp(x).T / torch.sum(torch.exp(x), axis=1).T).T  # noqa: LMX104

    def logSoftmax(x):  # noqa: N802
        return torch.log(Softmax(x))  # noqa: LMX103

    def CrossEntropy(Q, P):  # noqa: N802
        batch_size = Q.shape[0]
        num_of_classes = Q.shape[1]
        P = torch.eye(num_of_classes)[P]
        loss = -torch.sum(P * torch.log(Q)) / batch_size  # noqa: LMX107
        return loss.item()

    def rows(fn: Callable) -> OpFn:
        def run(x, target, **o):
            if x.ndim != 2:
                raise Unsupported("2-D inputs only")
            t, _, _ = _torch_inputs(x, None, o)
            with warnings.catch_warnings():  # torch deprecates the seed's .T on a 1-D sum
                warnings.simplefilter("ignore", UserWarning)
                return _from_torch(fn(t))

        return run

    def ce(x, target, reduction="mean", **o):
        _no(o, "weight", "label_smoothing", "softcap", "z_loss")
        if reduction != "mean" or target.dtype.kind not in "iu" or np.any(target < 0):
            raise Unsupported("class indices and the mean only")
        t, tt, _ = _torch_inputs(x, target, o)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            return np.array(CrossEntropy(Softmax(t), tt))

    return {"softmax": rows(Softmax), "log_softmax": rows(logSoftmax), "cross_entropy": ce}
