"""The stress catalogue: named inputs, each with the reason it is there.

A :class:`Case` builds float64 inputs for a target format (some cases depend on it: the format's
overflow threshold, its largest value, its epsilon); :meth:`Case.inputs` casts them to the dtype,
and the reference is computed on the cast values, so every case is exact in every dtype.

Cases carry one set of options; each op takes the options it understands (:data:`OP_OPTIONS`).
Losses use ``reduction='none'`` unless the case is about a reduction, so each row is measured.

Example:
    >>> case = CASES["seed002_alpha_sweep"]
    >>> data = case.inputs("float32", quick=True)
    >>> data.x.dtype, data.x.shape[1]
    (dtype('float32'), 3)
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from logmax.audit.formats import Format, format_of

OPS: tuple[str, ...] = ("softmax", "log_softmax", "logsumexp", "nll_loss", "cross_entropy")

OP_OPTIONS: dict[str, frozenset[str]] = {
    "softmax": frozenset({"where", "temperature"}),
    "log_softmax": frozenset({"where", "temperature"}),
    "logsumexp": frozenset({"where", "temperature", "b", "return_sign"}),
    "nll_loss": frozenset({"weight", "ignore_index", "reduction"}),
    "cross_entropy": frozenset(
        {
            "weight",
            "ignore_index",
            "reduction",
            "label_smoothing",
            "where",
            "temperature",
            "softcap",
            "z_loss",
        }
    ),
}
"""The options each op accepts (the README's signatures, axis aside: the catalogue uses -1)."""

_CAST = ("weight", "b")  # options that are arrays of the input's dtype
_ROW_OPS = ("softmax", "log_softmax", "logsumexp", "cross_entropy")


@dataclass(frozen=True)
class Built:
    """What a case builder returns, in float64 before the cast."""

    x: np.ndarray
    target: np.ndarray | None = None
    options: dict[str, Any] = field(default_factory=dict)
    sweep: np.ndarray | None = None  # one value per row (the x axis of a figure)


@dataclass(frozen=True)
class CaseData:
    """A case's inputs in one dtype."""

    x: np.ndarray
    target: np.ndarray | None
    options: dict[str, Any]
    sweep: np.ndarray | None

    def options_for(self, op: str) -> dict[str, Any]:
        """The options ``op`` accepts."""
        return {k: v for k, v in self.options.items() if k in OP_OPTIONS[op]}


@dataclass(frozen=True)
class Case:
    """A named stress input with the reason it is in the catalogue."""

    name: str
    reason: str
    ops: tuple[str, ...]
    build: Callable[[Format, bool], Built]
    sweep_label: str | None = None

    def inputs(self, dtype: object, quick: bool = False) -> CaseData:
        """The case's inputs cast to ``dtype`` (``quick``: smaller where the case is large)."""
        fmt = format_of(dtype)
        b = self.build(fmt, quick)
        dt = fmt.dtype
        x = np.asarray(b.x, dtype=np.float64).astype(dt)
        target = b.target
        if target is not None and np.asarray(target).dtype.kind == "f":
            target = np.asarray(target, dtype=np.float64).astype(dt)
        opts = {
            k: (np.asarray(v, dtype=np.float64).astype(dt) if k in _CAST and v is not None else v)
            for k, v in b.options.items()
        }
        return CaseData(x, target, opts, b.sweep)


CASES: dict[str, Case] = {}


def case(name: str, reason: str, ops: tuple[str, ...] = _ROW_OPS, sweep_label: str | None = None):
    """Register a builder ``(fmt, quick) -> Built`` as a case."""

    def register(build: Callable[[Format, bool], Built]) -> Callable[[Format, bool], Built]:
        if name in CASES:
            raise ValueError(f"case {name!r} is registered twice")
        CASES[name] = Case(name, reason, ops, build, sweep_label)
        return build

    return register


def _rng(name: str) -> np.random.Generator:
    return np.random.default_rng(sum(map(ord, name)) * 7919)


def _labels(rng: np.random.Generator, n_rows: int, n_cls: int) -> np.ndarray:
    return rng.integers(0, n_cls, size=n_rows)


def _quantize(w: np.ndarray, step: float = 1 / 16) -> np.ndarray:
    """Weights on a coarse grid: the same values in every dtype."""
    return np.round(w / step) * step


# ---------------------------------------------------------------------------------------------
# The seeds' scenarios.
@case(
    "seed002_alpha_sweep",
    "seed 002: alpha * [-1, 0, 1] for alpha from 1 to 1e4; log(softmax(x)) turns into -inf once "
    "exp(-2 alpha) underflows, log_softmax must stay at [-2 alpha, -alpha, 0]",
    sweep_label="alpha",
)
def _alpha(fmt: Format, quick: bool) -> Built:
    alpha = np.logspace(0, 4, 17 if quick else 41)
    x = alpha[:, None] * np.array([-1.0, 0.0, 1.0])
    return Built(x, np.zeros(len(alpha), dtype=np.int64), {"reduction": "none"}, alpha)


def _constant(n: int) -> Callable[[Format, bool], Built]:
    def build(fmt: Format, quick: bool) -> Built:
        c = np.array([-1e4, -1.0, 0.0, 1.0, 1e4])
        x = np.repeat(c[:, None], n, axis=1)
        return Built(x, np.zeros(len(c), dtype=np.int64), {"reduction": "none"})

    return build


for _n in (2, 3, 10, 1000):
    case(
        f"seed003_constant_rows_n{_n}",
        f"seed 003: constant rows c = 0, ±1, ±1e4 of length {_n}; exp(c) under/overflows, the "
        f"answer is 1/{_n} (softmax), -log {_n} (log_softmax), c + log {_n} (logsumexp)",
    )(_constant(_n))


@case(
    "seed003_near_overflow",
    "seed 003: rows at the format's largest value (constant ±max, and max beside -max): "
    "x - max must not overflow and logsumexp = max + log n must round back to max",
)
def _near_overflow(fmt: Format, quick: bool) -> Built:
    big = fmt.max_finite
    x = np.array(
        [
            [big] * 7,
            [-big] * 7,
            [big / 2] * 7,
            [big, -big, 0.0, big, 1.0, -1.0, big / 4],
            [-big, -big, -big / 2, -big, -big, -big, -big],
        ]
    )
    return Built(x, np.array([0, 1, 2, 4, 2]), {"reduction": "none"})


@case(
    "seed000_tiny_differences",
    "seed 000: entries differing by 1e-15 (and by one ULP of 1, 100, -1e4 in the format); "
    "the log-probabilities differ by exactly those amounts, which a sum of exps can lose",
)
def _tiny(fmt: Format, quick: bool) -> Built:
    k = np.arange(5.0)
    eps = math.ldexp(1.0, 1 - fmt.precision)
    x = np.array(
        [
            1e-15 * (k + 1),
            1.0 + k * eps,
            100.0 + k * 64 * eps,
            -1e4 + k * 8192 * eps,
            1e-15 * (k + 1) - 1.0,
        ]
    )
    return Built(x, np.array([0, 4, 2, 1, 3]), {"reduction": "none"})


# ---------------------------------------------------------------------------------------------
# Confident predictions, masks, large vocabularies, random rows, overflow thresholds.
@case(
    "confident_margins",
    "confident correct rows: the label's logit leads the rest by a margin of 1 to 100; the loss "
    "is log1p(sum e^-margin...) ~ 1e-44, which log(sum exp) - x_y rounds to exactly 0",
    sweep_label="margin",
)
def _confident(fmt: Format, quick: bool) -> Built:
    rng = _rng("confident_margins")
    margins = np.logspace(0, 2, 25 if quick else 50)
    x = rng.normal(size=(len(margins), 32))
    x[:, 0] = x[:, 1:].max(axis=1) + margins
    return Built(x, np.zeros(len(margins), dtype=np.int64), {"reduction": "none"}, margins)


@case(
    "subnormal_log_probabilities",
    "confident rows whose -log p of the winner, log1p(5 e^-margin), lands among the format's "
    "subnormals (margins around -log of the smallest subnormal): every digit still counts",
)
def _subnormal_margins(fmt: Format, quick: bool) -> Built:
    edge = -math.log(fmt.min_subnormal)
    margins = edge + np.linspace(-6.0, 2.0, 17)
    x = np.zeros((len(margins), 6))
    x[:, 0] = margins
    return Built(x, np.zeros(len(margins), dtype=np.int64), {"reduction": "none"})


def _masked_rows(name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = _rng(name)
    x = rng.normal(scale=3.0, size=(20, 50))
    keep = rng.random(x.shape) > 0.3
    keep[:3] = False  # fully masked rows
    keep[3, :] = False
    keep[3, 7] = True  # a single survivor: softmax 1, log_softmax 0 exactly
    labels = np.array([rng.choice(np.flatnonzero(k)) if k.any() else -100 for k in keep])
    return x, keep, labels


@case(
    "masked_minus_inf",
    "masked entries given as -inf, three fully masked rows (ignored by the loss) and a row with "
    "one survivor: 0 / -inf where masked, never NaN",
)
def _masked_inf(fmt: Format, quick: bool) -> Built:
    x, keep, labels = _masked_rows("masked_minus_inf")
    return Built(np.where(keep, x, -np.inf), labels, {"reduction": "none"})


@case(
    "masked_where",
    "the same masks given with where=: the masked logits hold large values that must be ignored",
)
def _masked_where(fmt: Format, quick: bool) -> Built:
    x, keep, labels = _masked_rows("masked_where")
    x = np.where(keep, x, 30.0)
    return Built(x, labels, {"where": keep, "reduction": "none"})


@case(
    "masked_where_mean",
    "where= masks with a mean loss over the rows that are not fully masked",
    ops=("cross_entropy",),
)
def _masked_where_mean(fmt: Format, quick: bool) -> Built:
    x, keep, labels = _masked_rows("masked_where_mean")
    return Built(x, labels, {"where": keep, "reduction": "mean"})


@case(
    "vocab_2e18",
    "one row of 2^18 classes (a large vocabulary): the sum of 262144 exps must not accumulate "
    "error, and in float16 most probabilities are subnormal",
)
def _vocab_huge(fmt: Format, quick: bool) -> Built:
    n = 2**14 if quick else 2**18
    rng = _rng("vocab_2e18")
    x = rng.normal(scale=2.0, size=(1, n))
    return Built(x, np.array([int(np.argmax(x))]), {"reduction": "none"})


@case(
    "vocab_4096",
    "eight rows of 4096 classes at two scales (a language model's head)",
)
def _vocab(fmt: Format, quick: bool) -> Built:
    rng = _rng("vocab_4096")
    x = rng.normal(size=(8, 4096)) * np.array([0.5] * 4 + [8.0] * 4)[:, None]
    return Built(x, _labels(rng, 8, 4096), {"reduction": "none"})


def _random(scale: float, n_rows: int, n_cls: int) -> Callable[[Format, bool], Built]:
    def build(fmt: Format, quick: bool) -> Built:
        rng = _rng(f"random_{scale}_{n_cls}")
        x = rng.normal(scale=scale, size=(n_rows, n_cls))
        return Built(x, _labels(rng, n_rows, n_cls), {"reduction": "none"})

    return build


for _scale in (1e-3, 1.0, 10.0, 100.0, 1e3):
    case(
        f"random_scale_{_scale:g}",
        f"random normal rows, standard deviation {_scale:g}, 100 classes",
    )(_random(_scale, 12, 100))
case("random_small_rows", "random normal rows of 5 classes")(_random(1.0, 32, 5))
case("random_single_class", "rows of one class: softmax 1, log_softmax 0, loss 0")(
    _random(5.0, 6, 1)
)


@case(
    "overflow_thresholds",
    "rows around each format's exp overflow threshold log(max): 11.09 (float16), 88.72 "
    "(bfloat16, float32), 709.78 (float64), where exp(x) without the max shift is inf",
)
def _thresholds(fmt: Format, quick: bool) -> Built:
    rows = []
    for t in (math.log(65504.0), math.log(3.4028234663852886e38), math.log(1.7976931348623157e308)):
        for offsets in ([-1.0, -0.5, 0.0, 0.25, 0.5], [0.5, 0.5, 0.5, -3.0, 1.0], [0.0] * 5):
            rows.append(t + np.array(offsets))
            rows.append(-t - np.array(offsets))
    x = np.array(rows)
    return Built(x, np.arange(len(rows)) % 5, {"reduction": "none"})


# ---------------------------------------------------------------------------------------------
# Losses: label positions, weights, reductions, smoothing, soft targets, z_loss, softcap.
def _ce_rows(name: str, n_rows: int = 32, n_cls: int = 100, scale: float = 10.0):
    rng = _rng(name)
    return rng, rng.normal(scale=scale, size=(n_rows, n_cls))


@case(
    "ce_label_on_max",
    "cross-entropy with each label on its row's maximum: small losses",
    ops=("cross_entropy",),
)
def _on_max(fmt: Format, quick: bool) -> Built:
    _, x = _ce_rows("ce_label_on_max")
    return Built(x, np.argmax(x, axis=1), {"reduction": "none"})


@case(
    "ce_label_on_min",
    "cross-entropy with each label on its row's minimum: probabilities near e^-60, large losses",
    ops=("cross_entropy",),
)
def _on_min(fmt: Format, quick: bool) -> Built:
    _, x = _ce_rows("ce_label_on_min")
    return Built(x, np.argmin(x, axis=1), {"reduction": "none"})


def _weighted(reduction: str, **extra: Any) -> Callable[[Format, bool], Built]:
    def build(fmt: Format, quick: bool) -> Built:
        rng, x = _ce_rows(f"weighted_{reduction}_{sorted(extra)}", 64, 10, 3.0)
        labels = _labels(rng, 64, 10)
        labels[rng.random(64) < 0.15] = -100
        w = _quantize(rng.uniform(0.25, 2.0, size=10))
        return Built(x, labels, {"weight": w, "reduction": reduction, **extra})

    return build


for _red in ("none", "mean", "sum"):
    case(
        f"ce_weighted_{_red}",
        f"class weights and ignored rows (-100), reduction={_red!r}: torch's weighted mean "
        "sum w_y l / sum w_y",
        ops=("cross_entropy",),
    )(_weighted(_red))
for _red in ("none", "mean"):
    case(
        f"ce_label_smoothing_{_red}",
        f"label smoothing 0.1 with class weights, reduction={_red!r} (torch's semantics)",
        ops=("cross_entropy",),
    )(_weighted(_red, label_smoothing=0.1))
    case(
        f"ce_z_loss_{_red}",
        f"z_loss 1e-4 (adds z w_y lse^2 per counted row) with class weights, reduction={_red!r}",
        ops=("cross_entropy",),
    )(_weighted(_red, z_loss=1e-4))


def _soft(reduction: str, smoothing: float) -> Callable[[Format, bool], Built]:
    def build(fmt: Format, quick: bool) -> Built:
        rng, x = _ce_rows(f"soft_{reduction}_{smoothing}", 24, 12, 4.0)
        t = rng.dirichlet(np.ones(12) * 0.5, size=24)
        t[t < 0.05] = 0.0  # exact zeros: 0 * log p = 0
        t /= t.sum(axis=1, keepdims=True)
        return Built(x, t, {"reduction": reduction, "label_smoothing": smoothing})

    return build


for _red in ("none", "mean"):
    case(
        f"ce_soft_targets_{_red}",
        f"soft targets (probabilities with exact zeros), reduction={_red!r}",
        ops=("cross_entropy",),
    )(_soft(_red, 0.0))
case(
    "ce_soft_targets_smoothing",
    "soft targets with label smoothing 0.1: t' = 0.9 t + 0.1 / C",
    ops=("cross_entropy",),
)(_soft("none", 0.1))


@case(
    "ce_soft_targets_masked",
    "soft targets with zeros on -inf logits: 0 * log 0 = 0, not NaN",
    ops=("cross_entropy",),
)
def _soft_masked(fmt: Format, quick: bool) -> Built:
    rng, x = _ce_rows("ce_soft_targets_masked", 16, 10, 2.0)
    t = rng.dirichlet(np.ones(10), size=16)
    masked = rng.random(x.shape) < 0.3
    masked[:, 0] = False
    t[masked] = 0.0
    t /= t.sum(axis=1, keepdims=True)
    return Built(np.where(masked, -np.inf, x), t, {"reduction": "none"})


@case(
    "ce_label_on_masked_logit",
    "labels on -inf logits (hard, and soft mass on them): the loss is +inf, never NaN",
    ops=("cross_entropy",),
)
def _on_masked(fmt: Format, quick: bool) -> Built:
    rng, x = _ce_rows("ce_label_on_masked_logit", 8, 6, 2.0)
    x[:, 2] = -np.inf
    labels = np.array([2, 0, 2, 1, 2, 5, 2, 3])
    return Built(x, labels, {"reduction": "none"})


@case(
    "ce_soft_target_on_masked_logit",
    "soft targets with mass on a -inf logit: +inf (0 * log 0 = 0 only for zero mass)",
    ops=("cross_entropy",),
)
def _soft_on_masked(fmt: Format, quick: bool) -> Built:
    rng, x = _ce_rows("ce_soft_target_on_masked_logit", 8, 6, 2.0)
    x[:, 2] = -np.inf
    t = rng.dirichlet(np.ones(6), size=8)
    t[::2, 2] = 0.0  # every other row: no mass on the masked class (finite loss)
    t /= t.sum(axis=1, keepdims=True)
    return Built(x, t, {"reduction": "none"})


@case(
    "ce_softcap_temperature",
    "softcap 30 (cap tanh(x / cap)) then temperature 0.7 on logits of scale 50",
    ops=("cross_entropy",),
)
def _softcap(fmt: Format, quick: bool) -> Built:
    rng, x = _ce_rows("ce_softcap_temperature", 16, 50, 50.0)
    return Built(
        x, _labels(rng, 16, 50), {"softcap": 30.0, "temperature": 0.7, "reduction": "none"}
    )


@case(
    "ce_softcap",
    "softcap 15 alone, with labels on the largest logits (the cap flattens them)",
    ops=("cross_entropy",),
)
def _softcap_only(fmt: Format, quick: bool) -> Built:
    _, x = _ce_rows("ce_softcap", 16, 50, 30.0)
    return Built(x, np.argmax(x, axis=1), {"softcap": 15.0, "reduction": "none"})


@case(
    "ce_all_ignored_mean",
    "every row ignored: the mean over zero counted rows is 0 (torch gives NaN)",
    ops=("cross_entropy",),
)
def _all_ignored(fmt: Format, quick: bool) -> Built:
    _, x = _ce_rows("ce_all_ignored_mean", 4, 6, 1.0)
    return Built(x, np.full(4, -100), {"reduction": "mean"})


for _t in (0.5, 0.7, 2.0):

    def _temperature(fmt: Format, quick: bool, t: float = _t) -> Built:
        rng = _rng(f"temperature_{t}")
        x = rng.normal(scale=20.0, size=(16, 40))
        return Built(x, _labels(rng, 16, 40), {"temperature": t, "reduction": "none"})

    case(f"temperature_{_t:g}", f"temperature {_t:g}: the logits are divided by it first")(
        _temperature
    )


# ---------------------------------------------------------------------------------------------
# nll_loss on log-probabilities, and logsumexp with weights b.
def _logp(x: np.ndarray) -> np.ndarray:
    m = x.max(axis=1, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(axis=1, keepdims=True))


def _nll(reduction: str, weighted: bool, n_rows: int = 64) -> Callable[[Format, bool], Built]:
    def build(fmt: Format, quick: bool) -> Built:
        rng = _rng(f"nll_{reduction}_{weighted}_{n_rows}")
        logp = _logp(rng.normal(scale=4.0, size=(n_rows, 20)))
        labels = _labels(rng, n_rows, 20)
        labels[rng.random(n_rows) < 0.1] = -100
        opts: dict[str, Any] = {"reduction": reduction}
        if weighted:
            opts["weight"] = _quantize(rng.uniform(0.25, 2.0, size=20))
        return Built(logp, labels, opts)

    return build


for _red in ("none", "mean", "sum"):
    case(
        f"nll_{_red}",
        f"nll_loss of log-probabilities with ignored rows, reduction={_red!r}",
        ops=("nll_loss",),
    )(_nll(_red, False))
    case(
        f"nll_weighted_{_red}",
        f"nll_loss with class weights and ignored rows, reduction={_red!r}",
        ops=("nll_loss",),
    )(_nll(_red, True))
case(
    "nll_weighted_mean_4096_rows",
    "a weighted mean over 4096 rows: the sums of losses and of weights must not drift",
    ops=("nll_loss",),
)(_nll("mean", True, 4096))


@case(
    "nll_soft_targets",
    "nll_loss with soft targets (zeros included), reduction='mean' (divided by the row count)",
    ops=("nll_loss",),
)
def _nll_soft(fmt: Format, quick: bool) -> Built:
    rng = _rng("nll_soft_targets")
    logp = _logp(rng.normal(scale=3.0, size=(16, 8)))
    t = rng.dirichlet(np.ones(8) * 0.5, size=16)
    t[t < 0.05] = 0.0
    t /= t.sum(axis=1, keepdims=True)
    return Built(logp, t, {"reduction": "mean"})


@case(
    "logsumexp_b_positive",
    "logsumexp with positive weights b (SciPy's b): log sum b_i e^x_i",
    ops=("logsumexp",),
)
def _lse_b(fmt: Format, quick: bool) -> Built:
    rng = _rng("logsumexp_b_positive")
    x = rng.normal(scale=5.0, size=(16, 30))
    b = _quantize(rng.uniform(0.0, 3.0, size=x.shape))  # some exact zeros: left out
    return Built(x, None, {"b": b})


@case(
    "logsumexp_b_signed",
    "logsumexp with weights of both signs and return_sign=True: log|sum| and the sign",
    ops=("logsumexp",),
)
def _lse_b_signed(fmt: Format, quick: bool) -> Built:
    rng = _rng("logsumexp_b_signed")
    x = rng.normal(scale=2.0, size=(16, 6))
    b = _quantize(rng.uniform(-1.0, 1.0, size=x.shape))
    b[0] = [1.0, -1.0, 0.0, 0.0, 0.0, 0.0]  # an exactly zero sum: -inf, sign 0
    x[0, 1] = x[0, 0]
    return Built(x, None, {"b": b, "return_sign": True})


@case(
    "logsumexp_b_near_cancel",
    "weights that nearly cancel (b = ±1/2 on nearly equal x): the sum is tiny beside its terms, "
    "yet its log and sign are well defined; log|b_k| + log1p(t) cancels to ~1e-39",
    ops=("logsumexp",),
)
def _lse_b_cancel(fmt: Format, quick: bool) -> Built:
    tiny = fmt.min_normal
    eps = math.ldexp(1.0, 1 - fmt.precision)
    x = np.array(
        [[tiny, 0.0, 0.0], [tiny, 0.0, 0.0], [eps, 0.0, 0.0], [1.0 + eps, 1.0, 0.0],
         [1e-3, 0.0, 0.0], [2.0**-16, 1e-3, 1e-3]]
    )  # fmt: skip
    # b = 0 entries are left out; the last row's tie at 1e-3 cancels exactly
    b = np.array(
        [[0.5, -0.5, 0.0], [0.5, 0.5, 0.0], [1.0, -1.0, 0.0], [-1.0, 1.0, 0.0], [2.0, -2.0, 0.0],
         [-1.0, 0.5, -0.5]]
    )  # fmt: skip
    return Built(x, None, {"b": b, "return_sign": True})


def cases(names: list[str] | None = None, ops: list[str] | None = None) -> list[Case]:
    """The catalogue's cases (all, or those named), keeping those that exercise ``ops``."""
    chosen = list(CASES.values()) if names is None else [CASES[n] for n in names]
    if ops is not None:
        chosen = [c for c in chosen if set(c.ops) & set(ops)]
    return chosen
