"""The abstract values the analysis tracks, and the tables of functions that make them.

The analysis does not run code; it follows what each expression *is*:

- :class:`Tensor` with a kind: ``probs`` (a softmax output), ``log_probs`` (a log_softmax output),
  ``exp`` (``exp(x)``, remembering ``x`` and whether it was shifted by a max), ``sum_exp``
  (``sum(exp(x))``) or ``shifted`` (``x - m``, remembering ``x``).
- :class:`Producer`: something that returns a value when called: ``nn.Softmax(dim=1)``, an
  ``nn.Sequential`` ending in one, ``F.softmax`` used as a value.
- :class:`Function`: a ``def`` of the analysed code; a call gives what its ``return`` statements
  give, analysed again with the call's arguments when they are known (``train(model, loss_fn)``).
- :class:`Loss`: ``nn.CrossEntropyLoss()``, ``nn.NLLLoss()``, ``nn.MSELoss()``...
- :class:`ClassInfo` / :class:`Instance`: a user class and its instances; calling an instance
  gives what ``forward`` returns, ``self.layer`` attributes are remembered per class.
- :class:`Tup`: a tuple or list, so ``logits, probas = model(x)`` unpacks the right element.
- :class:`ModuleValue`: a module of the linted project (``import network as net``).
- :class:`Alt`: a value that differs along the paths of the program (``if``/``else``, a
  criterion set in two places): each option carries the branch conditions that lead to it.

Anything else is ``None`` (unknown), which never produces a finding.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field, replace

PROBS = "probs"
LOG_PROBS = "log_probs"
EXP = "exp"
SUM_EXP = "sum_exp"
SHIFTED = "shifted"

# A branch condition: the source text of an ``if`` test and whether the branch is the true one.
Cond = tuple[str, bool]
Path = tuple[Cond, ...]
MAX_OPTIONS = 8  # alternatives kept per value; more paths than this are rare and not followed


@dataclass(frozen=True)
class Tensor:
    kind: str
    origin: str = ""  # how it was made, for messages: "F.softmax"
    line: int = 0  # where it was made
    key: str = ""  # exp/sum_exp/shifted: the structure of the exponent (before any shift)
    shifted: bool = False  # exp/sum_exp: the exponent was x - m
    eps: bool = False  # probs: an epsilon was added or the values were clamped
    sibling: str = ""  # probs: the log_softmax spelling that replaces the softmax that made it
    module: str = ""  # the file it was made in
    site: tuple = ()  # log_probs made by a log call: (file, line, column) of that call


@dataclass(frozen=True)
class Producer:
    returns: object  # a value
    name: str = ""
    sequential: bool = False  # an nn.Sequential: add_module/append change what it returns


@dataclass(eq=False)
class Function:
    """A ``def`` of the analysed code: what it returns for unknown arguments, and its node and
    defining scope so that a call with known arguments can be analysed again with them bound."""

    node: object  # ast.FunctionDef | ast.AsyncFunctionDef
    scope: object  # the Scope it was defined in
    cls: object  # the ClassInfo of a method, else None
    module: object  # the Module it belongs to
    returns: object = None
    seen: int = -1  # the project's version of what the body reads, when it was last analysed
    defaults: dict = field(default_factory=dict)  # parameter -> value of its default


@dataclass(frozen=True)
class Loss:
    kind: str  # "cross_entropy" | "nll" | "regression"
    name: str


@dataclass(frozen=True)
class Tup:
    items: tuple


@dataclass(eq=False)
class ClassInfo:
    name: str
    attrs: dict = field(default_factory=dict)
    methods: dict = field(default_factory=dict)
    forward: object = None


@dataclass(frozen=True, eq=False)
class Instance:
    cls: ClassInfo


@dataclass(frozen=True, eq=False)
class ModuleValue:
    """A module of the linted project, bound by ``import``; its names are looked up lazily."""

    module: object  # the Module, or None for a package folder without __init__.py
    name: str  # dotted module name as imported


@dataclass(frozen=True)
class Alt:
    """A value that depends on the path taken: ``(value, path)`` options, ``path`` being the
    branch conditions that lead to it (empty when it is simply one of several assignments)."""

    options: tuple[tuple[object, Path], ...]


def options(value: object) -> Iterator[tuple[object, Path]]:
    """The (value, path) alternatives of a value; a plain value is its own single option."""
    if isinstance(value, Alt):
        yield from value.options
    else:
        yield value, ()


def contradicts(a: Path, b: Path) -> bool:
    """Whether two paths cannot both hold: the same test taken both ways."""
    if not a or not b:
        return False
    taken = dict(a)
    return any(test in taken and taken[test] != truth for test, truth in b)


def _same(a: object, b: object) -> bool:
    if a is b or a == b:
        return True
    if isinstance(a, Tensor) and isinstance(b, Tensor):
        return a.kind == b.kind and a.key == b.key and a.eps == b.eps
    if isinstance(a, Instance) and isinstance(b, Instance):
        return a.cls is b.cls
    return False


def merge(choices: list[tuple[object, Path]]) -> object:
    """The value after several paths meet: one value if they agree, else an :class:`Alt`."""
    flat: list[tuple[object, Path]] = []
    for value, path in choices:
        for inner, inner_path in options(value):
            flat.append((inner, path + inner_path))
    kept: list[tuple[object, Path]] = []
    for value, path in flat:
        for i, (other, other_path) in enumerate(kept):
            if _same(value, other):  # on both paths: only the conditions they share matter
                shared = set(path)
                kept[i] = (other, tuple(cond for cond in other_path if cond in shared))
                break
        else:
            kept.append((value, path))
    if len(kept) == 1:
        value = kept[0][0]
        if isinstance(value, Tensor) and len(flat) > 1:
            shifted = all(
                v.shifted for v, _ in flat if isinstance(v, Tensor) and v.kind == value.kind
            )
            return replace(value, shifted=shifted)
        return value
    if all(value is None for value, _ in kept):
        return None
    kept.sort(key=lambda option: option[0] is None)  # known values first when trimming
    return Alt(tuple(kept[:MAX_OPTIONS]))


def join(a: object, b: object) -> object:
    """Two assignments of the same place (no branch condition): either may hold."""
    return merge([(a, ()), (b, ())])


def is_kind(value: object, *kinds: str) -> bool:
    return isinstance(value, Tensor) and value.kind in kinds


def interesting(value: object, depth: int = 2) -> bool:
    """Whether a value can lead to a finding: worth analysing a function again for."""
    if depth < 0:
        return False
    if isinstance(value, Alt):
        return any(interesting(v, depth) for v, _ in value.options)
    if isinstance(value, Tensor):
        return value.kind in (PROBS, LOG_PROBS)
    if isinstance(value, Producer):
        return interesting(value.returns, depth - 1)
    if isinstance(value, Loss):
        return True
    if isinstance(value, Instance):
        cls = value.cls
        return interesting(cls.forward, depth - 1) or any(
            isinstance(v, Loss | Producer | Tensor | Alt) and interesting(v, depth - 1)
            for v in cls.attrs.values()
        )
    if isinstance(value, Tup):
        return any(interesting(v, depth - 1) for v in value.items)
    return False


# --- function tables (canonical names, see logmax.lint.names.canonical) ------------------------

# softmax function -> its log_softmax sibling (the --fix rename)
SOFTMAX_FUNCS = {
    "torch.softmax": "torch.log_softmax",
    "torch.nn.functional.softmax": "torch.nn.functional.log_softmax",
    "scipy.special.softmax": "scipy.special.log_softmax",
    "logmax.softmax": "logmax.log_softmax",
    "logmax.torch.softmax": "logmax.torch.log_softmax",
    "jax.nn.softmax": "jax.nn.log_softmax",
}
LOG_SOFTMAX_FUNCS = set(SOFTMAX_FUNCS.values())
# which softmax functions and layers a log may be folded into, keeping the array type
# (np.log of a torch tensor gives a NumPy array: not rewritten to torch.log_softmax)
TORCH_SOFTMAX = {
    "torch.softmax",
    "torch.nn.functional.softmax",
    "logmax.torch.softmax",
    "torch.nn.Softmax",
    "logmax.torch.Softmax",
}
LOG_FAMILY = {
    "torch.log": TORCH_SOFTMAX,
    "numpy.log": {"scipy.special.softmax", "logmax.softmax"},
    "jax.numpy.log": {"jax.nn.softmax"},
}
# functions whose dim is implicit when left out: name -> (position, keywords that name it).
# torch takes ``axis=`` as another name for ``dim=`` (NumPy habit).
_TORCH_DIM = ("dim", "axis")
IMPLICIT_DIM = {
    "torch.softmax": (1, _TORCH_DIM),
    "torch.log_softmax": (1, _TORCH_DIM),
    "torch.nn.functional.softmax": (1, _TORCH_DIM),
    "torch.nn.functional.log_softmax": (1, _TORCH_DIM),
    "torch.nn.functional.softmin": (1, _TORCH_DIM),
    "scipy.special.softmax": (1, ("axis",)),
    "scipy.special.log_softmax": (1, ("axis",)),
    "torch.nn.Softmax": (0, ("dim",)),
    "torch.nn.LogSoftmax": (0, ("dim",)),
    "torch.nn.Softmin": (0, ("dim",)),
    "logmax.torch.softmax": (1, _TORCH_DIM),
    "logmax.torch.log_softmax": (1, _TORCH_DIM),
    "logmax.torch.Softmax": (0, ("dim",)),
    "logmax.torch.LogSoftmax": (0, ("dim",)),
}
SOFTMAX_LAYERS = {"torch.nn.Softmax", "logmax.torch.Softmax"}
LOG_SOFTMAX_LAYERS = {"torch.nn.LogSoftmax", "logmax.torch.LogSoftmax"}
SEQUENTIAL = {"torch.nn.Sequential"}

LOSS_FUNCS = {
    "torch.nn.functional.cross_entropy": "cross_entropy",
    "logmax.cross_entropy": "cross_entropy",
    "logmax.torch.cross_entropy": "cross_entropy",
    "torch.nn.functional.nll_loss": "nll",
    "torch.nn.functional.kl_div": "nll",  # input: log-probabilities too
    "logmax.nll_loss": "nll",
    "logmax.torch.nll_loss": "nll",
    "torch.nn.functional.mse_loss": "regression",
    "torch.nn.functional.l1_loss": "regression",
    "torch.nn.functional.smooth_l1_loss": "regression",
    "torch.nn.functional.huber_loss": "regression",
}
LOSS_LAYERS = {
    "torch.nn.CrossEntropyLoss": "cross_entropy",
    "logmax.torch.CrossEntropyLoss": "cross_entropy",
    "torch.nn.NLLLoss": "nll",
    "torch.nn.NLLLoss2d": "nll",
    "torch.nn.KLDivLoss": "nll",
    "logmax.torch.NLLLoss": "nll",
    "torch.nn.MSELoss": "regression",
    "torch.nn.L1Loss": "regression",
    "torch.nn.SmoothL1Loss": "regression",
    "torch.nn.HuberLoss": "regression",
}

LOG_FUNCS = {"torch.log", "numpy.log", "math.log", "jax.numpy.log"}
EXP_FUNCS = {"torch.exp", "numpy.exp", "math.exp", "jax.numpy.exp"}
SUM_FUNCS = {"torch.sum", "numpy.sum", "math.fsum", "jax.numpy.sum", "numpy.nansum"}
MEAN_FUNCS = {"torch.mean", "numpy.mean", "jax.numpy.mean"}
DIV_FUNCS = {"torch.div", "torch.divide", "torch.true_divide", "numpy.divide", "numpy.true_divide"}
MUL_FUNCS = {"torch.mul", "torch.multiply", "numpy.multiply"}
NEG_FUNCS = {"torch.neg", "torch.negative", "numpy.negative"}
DOT_FUNCS = {"torch.dot", "numpy.dot", "numpy.inner", "torch.inner"}
LOGSUMEXP_FUNCS = {
    "torch.logsumexp",
    "scipy.special.logsumexp",
    "logmax.logsumexp",
    "jax.nn.logsumexp",
    "jax.scipy.special.logsumexp",
}
MAX_FUNCS = {"torch.max", "torch.amax", "numpy.max", "numpy.amax", "numpy.nanmax", "math.max"}
CLAMP_FUNCS = {"torch.clamp", "torch.clip", "torch.clamp_min", "numpy.clip", "numpy.maximum"}
CLAMP_METHODS = {"clamp", "clip", "clamp_min", "clamp_"}
DIV_METHODS = {"div", "div_", "divide", "true_divide"}
MUL_METHODS = {"mul", "mul_", "multiply"}
NEG_METHODS = {"neg", "negative", "neg_"}
# functions and methods that change shape, device or dtype but not what the numbers mean
SAME_VALUE_FUNCS = {
    "torch.transpose",
    "torch.unsqueeze",
    "torch.squeeze",
    "torch.flatten",
    "torch.reshape",
    "torch.permute",
    "torch.as_tensor",
    "torch.tensor",
    "torch.from_numpy",
    "torch.stack",
    "torch.cat",
    "numpy.transpose",
    "numpy.expand_dims",
    "numpy.squeeze",
    "numpy.reshape",
    "numpy.asarray",
    "numpy.array",
    "numpy.stack",
    "numpy.concatenate",
    "torch.nn.DataParallel",
    "torch.nn.parallel.DistributedDataParallel",
    "torch.compile",
    "torch.jit.script",
    "copy.deepcopy",
    "copy.copy",
}
SAME_VALUE_METHODS = {
    "view",
    "view_as",
    "reshape",
    "reshape_as",
    "unsqueeze",
    "squeeze",
    "t",
    "transpose",
    "permute",
    "expand",
    "expand_as",
    "contiguous",
    "float",
    "double",
    "half",
    "bfloat16",
    "to",
    "cpu",
    "cuda",
    "detach",
    "clone",
    "type",
    "flatten",
    "numpy",
    "astype",
    "copy",
    "swapaxes",
    "requires_grad_",
    "train",
    "eval",
    "squeeze_",
    "unsqueeze_",
    "cuda_",
}
SAME_VALUE_ATTRS = {"T", "mT", "data"}
