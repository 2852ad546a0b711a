"""Branch conditions: which arm of an ``if`` runs while training, and how paths are named.

A value that differs between the arms of an ``if`` keeps both options, each with its path (the
test and which way it went), so that a softmax on one path is reported "on the path where ...".
One kind of test is read for what it says: a test of training mode (``self.training``,
``phase == 'train'``, ``not is_eval``, ``mode in ('test', 'val')``). Losses are computed while
training, so the other arm (the inference path, where models return a softmax for their users)
is followed for findings inside it but its values are not carried past the ``if``.
"""

from __future__ import annotations

import ast

from logmax.lint.values import Cond, Path

TRAIN = "train"
INFER = "infer"
_TRAIN_WORDS = frozenset({"train", "training"})
_INFER_WORDS = frozenset(
    {
        "test",
        "testing",
        "eval",
        "evaluate",
        "evaluation",
        "val",
        "valid",
        "validation",
        "infer",
        "inference",
        "predict",
        "prediction",
        "deploy",
        "export",
        "onnx",
    }
)
_FLIP = {TRAIN: INFER, INFER: TRAIN, None: None}


def _word_mode(word: str) -> str | None:
    tokens = set(word.lower().replace("-", "_").split("_"))
    if tokens & _TRAIN_WORDS:
        return TRAIN
    if tokens & _INFER_WORDS:
        return INFER
    return None


def mode_of_test(test: ast.expr) -> str | None:
    """``"train"`` if the true arm of ``if test:`` runs while training, ``"infer"`` if it runs
    at inference, None if the test says neither."""
    if isinstance(test, ast.UnaryOp) and isinstance(test.op, ast.Not):
        return _FLIP[mode_of_test(test.operand)]
    if isinstance(test, ast.Name):
        return _word_mode(test.id)
    if isinstance(test, ast.Attribute):
        return _word_mode(test.attr)
    if isinstance(test, ast.Compare) and len(test.ops) == 1:
        op = test.ops[0]
        words = [
            node.value
            for node in ast.walk(test.comparators[0])
            if isinstance(node, ast.Constant) and isinstance(node.value, str)
        ]
        modes = {_word_mode(word) for word in words} - {None}
        if len(modes) != 1:
            return None
        mode = modes.pop()
        if isinstance(op, ast.Eq | ast.In | ast.Is):
            return mode
        if isinstance(op, ast.NotEq | ast.NotIn | ast.IsNot):
            return _FLIP[mode]
        return None
    if isinstance(test, ast.BoolOp):
        modes = [mode_of_test(value) for value in test.values]
        if isinstance(test.op, ast.And):
            return next((mode for mode in modes if mode is not None), None)
        return modes[0] if len(set(modes)) == 1 else None
    return None


def terminates(body: list[ast.stmt]) -> bool:
    """Whether control never falls off the end of ``body`` (it returns, raises or jumps)."""
    if not body:
        return False
    last = body[-1]
    if isinstance(last, ast.Return | ast.Raise | ast.Continue | ast.Break):
        return True
    if isinstance(last, ast.If):
        return terminates(last.body) and terminates(last.orelse)
    return False


def phrase(path: Path) -> str:
    """``not opt.resume and args.dataset == 'imagenet'``: a path as messages show it."""
    return " and ".join(_cond(cond) for cond in path)


def _cond(cond: Cond) -> str:
    test, truth = cond
    if truth:
        return test
    if test.startswith("not "):
        return test[4:]
    return (
        f"not {test}" if test.isidentifier() or "." in test and " " not in test else f"not ({test})"
    )
