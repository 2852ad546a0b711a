"""What the analysis hands to the rules: one small record per place where a rule may apply.

Values are the abstract values of :mod:`logmax.lint.values`, one option at a time: when a value
differs along the paths of the program, the analysis sends one event per option, with ``path``
the branch conditions that lead to it (empty when it holds on every path).
"""

from __future__ import annotations

import ast
from dataclasses import dataclass

from logmax.lint.values import Path


@dataclass(frozen=True)
class LossCall:
    """A loss (or ``log_softmax``) called on ``input``; ``kind`` says which family."""

    node: ast.Call
    kind: str  # "cross_entropy" | "nll" | "regression" | "log_softmax"
    shown: str  # the callee as written: "criterion", "F.cross_entropy"
    input: object
    target: object
    path: Path = ()


@dataclass(frozen=True)
class LogCall:
    """``log(arg)``: ``log_name`` is the qualified log function, or ``"method"`` for ``.log()``."""

    node: ast.Call
    arg: ast.expr
    value: object
    log_name: str
    path: Path = ()


@dataclass(frozen=True)
class Division:
    """``numerator / denominator`` in any spelling; ``node`` is the whole expression."""

    node: ast.AST
    numerator: object
    denominator: object
    path: Path = ()


@dataclass(frozen=True)
class SoftmaxCall:
    """A call of a softmax-like function or layer that has an implicit dim."""

    node: ast.Call
    name: str  # qualified: "torch.nn.functional.softmax"
    shown: str  # as written: "F.softmax"
    position: int  # where the dim goes when given by position
    keywords: tuple[str, ...]  # the keywords that name it ("dim", "axis")


@dataclass(frozen=True)
class Reduction:
    """``sum``/``mean`` of ``arg``, or a minus sign (``-x``, ``np.negative(x)``: ``negated``,
    with the sum somewhere inside ``arg``), or an accumulation (``total -= arg`` in a loop:
    ``negated`` and ``summed``)."""

    node: ast.AST
    arg: ast.expr
    negated: bool = False
    summed: bool = False
