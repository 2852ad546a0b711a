"""One source, several backends: copies of the algebra's functions with their primitives re-bound.

The functions of :mod:`logmax._core.ddarith` and :mod:`logmax._core.rowstats` use arithmetic and a
few primitive names (``where``, ``exp``, ``log1p``, ...) that they look up as module globals; in
their own modules those are NumPy's. :func:`specialise` makes copies of them whose globals resolve
those names to another backend's functions instead -- torch's for tensors on any device, Numba's
scalar functions for the CPU kernels -- and every call between them to the other copies. The maths
is written once; each backend runs the same lines on its own numbers.

Example:
    >>> import math
    >>> from logmax._core import ddarith, specialise
    >>> scalar = specialise.specialise(
    ...     [ddarith], where=lambda c, a, b: a if c else b, exp=math.exp, log1p=math.log1p,
    ...     rint=round, pow2=lambda k: 2.0 ** k, two_prod=ddarith.two_prod)
    >>> scalar.two_sum(1.0, 1e-20)
    (1.0, 1e-20)
"""

from __future__ import annotations

import builtins
from collections.abc import Callable, Iterable
from types import FunctionType, ModuleType, SimpleNamespace
from typing import Any


def functions_of(module: ModuleType) -> list[str]:
    """The names of the plain functions defined in ``module`` itself (its algebra)."""
    return [
        name
        for name, value in vars(module).items()
        if isinstance(value, FunctionType) and value.__module__ == module.__name__
    ]


def specialise(
    modules: Iterable[ModuleType],
    *,
    into: dict[str, Any] | None = None,
    wrap: Callable[[FunctionType], Any] | None = None,
    **primitives: Any,
) -> SimpleNamespace:
    """Copies of the functions of ``modules`` with ``primitives`` bound in place of NumPy's.

    Args:
        modules: the modules whose functions are copied (later ones may call earlier ones).
        into: the globals dictionary the copies share (a module's ``globals()`` when the copies
            must live in that module, as Numba's on-disk cache requires); a new one by default.
        wrap: applied to each copy (``numba.njit(cache=True)`` for the kernels).
        primitives: the names to re-bind (``where=torch.where``, ...).

    Returns:
        A namespace holding every copied function by name.
    """
    modules = list(modules)
    ns: dict[str, Any] = {} if into is None else into
    ns.setdefault("__builtins__", builtins)  # what a function looks up last (abs, ...)
    for module in modules:
        for name, value in vars(module).items():
            if not name.startswith("__") and name not in ns:
                ns[name] = value  # constants and helpers the functions read
    ns.update(primitives)
    copies: dict[str, Any] = {}
    for module in modules:
        for name in functions_of(module):
            if name in primitives:
                continue
            f = getattr(module, name)
            g = FunctionType(f.__code__, ns, name, f.__defaults__, f.__closure__)
            g.__doc__, g.__qualname__ = f.__doc__, f.__qualname__
            copies[name] = wrap(g) if wrap is not None else g
    ns.update(copies)
    return SimpleNamespace(**primitives, **copies)
