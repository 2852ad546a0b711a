"""The abstract values the analysis tracks, and the tables of functions that make them.

The analysis does not run code; it follows what each expression *is*:

- :class:`Tensor` with a kind: ``probs`` (a softmax output), ``log_probs`` (a log_softmax output),
  ``exp`` (``exp(x)``, remembering ``x`` and whether it was shifted by a max), ``sum_exp``
  (``sum(exp(x))``) or ``shifted`` (``x - m``).
- :class:`Producer`: something that returns a value when called: ``nn.Softmax(dim=1)``, an
  ``nn.Sequential`` ending in one, ``F.softmax`` used as a value.
- :class:`Function`: a ``def`` of the analysed code; a call gives what its ``return`` statements
  give, analysed again with the call's arguments when they are known (``train(model, loss_fn)``).
- :class:`Loss`: ``nn.CrossEntropyLoss()``, ``nn.NLLLoss()``, ``nn.MSELoss()``...
- :class:`ClassInfo` / :class:`Instance`: a user class and its instances; calling an instance
  gives what ``forward`` returns, ``self.layer`` attributes are remembered per class.
- :class:`Tup`: a tuple, so ``logits, probas = model(x)`` unpacks the right element.

Anything else is ``None`` (unknown), which never produces a finding.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

PROBS = "probs"
LOG_PROBS = "log_probs"
EXP = "exp"
SUM_EXP = "sum_exp"
SHIFTED = "shifted"


@dataclass(frozen=True)
class Tensor:
    kind: str
    origin: str = ""  # how it was made, for messages: "F.softmax"
    line: int = 0  # where it was made
    key: str = ""  # exp/sum_exp: the structure of the exponent, to match exp(x) with sum(exp(x))
    shifted: bool = False  # exp/sum_exp: the exponent was x - m
    eps: bool = False  # probs: an epsilon was added or the values were clamped
    sibling: str = ""  # probs: the log_softmax spelling that replaces the softmax that made it


@dataclass(frozen=True)
class Producer:
    returns: object  # a value
    name: str = ""


@dataclass(frozen=True, eq=False)
class Function:
    """A ``def`` of the analysed code: what it returns for unknown arguments, and its node and
    defining scope so that a call with known arguments can be analysed again with them bound."""

    node: object  # ast.FunctionDef | ast.AsyncFunctionDef
    scope: object  # the Scope it was defined in
    cls: object  # the ClassInfo of a method, else None
    returns: object


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


def join(a: object, b: object) -> object:
    """The value that is certain after either ``a`` or ``b`` (control-flow merge), else None."""
    if a is None or b is None:
        return None
    if a == b or a is b:
        return a
    if isinstance(a, Tensor) and isinstance(b, Tensor):
        if a.kind == b.kind and a.key == b.key:
            return replace(a, shifted=a.shifted and b.shifted, eps=a.eps or b.eps)
        return None
    if isinstance(a, Producer) and isinstance(b, Producer):
        returns = join(a.returns, b.returns)
        return Producer(returns, a.name) if returns is not None else None
    if isinstance(a, Tup) and isinstance(b, Tup) and len(a.items) == len(b.items):
        return Tup(tuple(join(x, y) for x, y in zip(a.items, b.items, strict=True)))
    if isinstance(a, Instance) and isinstance(b, Instance) and a.cls is b.cls:
        return a
    return None


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
# functions whose dim argument is implicit when left out: name -> (position, keyword)
IMPLICIT_DIM = {
    "torch.softmax": (1, "dim"),
    "torch.log_softmax": (1, "dim"),
    "torch.nn.functional.softmax": (1, "dim"),
    "torch.nn.functional.log_softmax": (1, "dim"),
    "torch.nn.functional.softmin": (1, "dim"),
    "scipy.special.softmax": (1, "axis"),
    "scipy.special.log_softmax": (1, "axis"),
    "torch.nn.Softmax": (0, "dim"),
    "torch.nn.LogSoftmax": (0, "dim"),
    "torch.nn.Softmin": (0, "dim"),
    "logmax.torch.softmax": (1, "dim"),
    "logmax.torch.log_softmax": (1, "dim"),
    "logmax.torch.Softmax": (0, "dim"),
    "logmax.torch.LogSoftmax": (0, "dim"),
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
LOGSUMEXP_FUNCS = {
    "torch.logsumexp",
    "scipy.special.logsumexp",
    "logmax.logsumexp",
    "jax.nn.logsumexp",
    "jax.scipy.special.logsumexp",
}
CLAMP_FUNCS = {"torch.clamp", "torch.clip", "torch.clamp_min", "numpy.clip", "numpy.maximum"}
CLAMP_METHODS = {"clamp", "clip", "clamp_min", "clamp_"}
# functions and methods that change shape, device or dtype but not what the numbers mean
SAME_VALUE_FUNCS = {
    "torch.transpose",
    "torch.unsqueeze",
    "torch.squeeze",
    "torch.flatten",
    "torch.reshape",
    "torch.permute",
    "numpy.transpose",
    "numpy.expand_dims",
    "numpy.squeeze",
    "numpy.reshape",
    "numpy.asarray",
    "torch.as_tensor",
    "torch.nn.DataParallel",
    "torch.nn.parallel.DistributedDataParallel",
    "torch.compile",
    "torch.jit.script",
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
}
SAME_VALUE_ATTRS = {"T", "mT", "data"}
