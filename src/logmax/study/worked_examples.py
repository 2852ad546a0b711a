"""The seeds' worked examples, computed every way: the seed's own formulas, torch, and logmax.

Each function returns a :class:`~logmax.study.results.Part` whose tables hold the printed values
and whose findings are derived from them (never written in):

- seed 001: the 3x4 batch whose manual ``Softmax``/``logSoftmax``/``CrossEntropy`` gives 0.42298...
- seed 002: ``alpha * [-1, 0, 1]`` in float32, naive ``log(softmax(x))`` against ``log_softmax``.
- seed 000: ``[1e-15, 2e-15, 3e-15]`` in float64, whose log-probabilities all print -1.0986.
- seed 003: constant rows ``c`` with ``|c|`` large, where the textbook ``exp(c) / Σ exp(c)`` fails.

"Exact" is the certified value of :mod:`logmax.audit.reference` (ball arithmetic, precision
raised until the rounding is decided), rounded correctly to the format; errors are in ULPs of the
format at the exact value (:func:`logmax.audit.metric.ulp_error`). A logmax function that cannot
be called shows why in its row instead of a number.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from fractions import Fraction
from typing import Any

import numpy as np

from logmax.audit import reference
from logmax.audit.metric import ulp_error
from logmax.audit.reference import Exact
from logmax.study.results import Finding, Part, Table, fmt, fmt_row, fmt_ulp

SEED001_OUTPUT = [[3.2, 1.3, 0.2, 0.8], [1.2, 4.1, 3.8, 0.1], [3.3, 2.5, 1.9, 5.9]]
SEED001_TARGET = [0, 2, 3]
SEED001_PRINTED_LOSS = 0.42298611998558044  # what the seed's notebook printed
SEED002_ALPHAS = (2, 5, 10, 20, 50, 100, 1000)
SEED000_Z = (1e-15, 2e-15, 3e-15)
SEED003_CONSTANTS = (-1e4, 1e4)
SEED003_CLASSES = 4


def call_logmax(name: str, *args: Any, **kwargs: Any) -> tuple[Any, str | None]:
    """Call ``logmax.<name>``; return ``(result, None)`` or ``(None, reason it failed)``."""
    try:
        import logmax

        fn: Callable[..., Any] = getattr(logmax, name)
    except (ImportError, AttributeError) as err:
        return None, f"unavailable: logmax.{name} ({type(err).__name__}: {err})"
    try:
        return fn(*args, **kwargs), None
    except Exception as err:  # a failure is a result worth showing, not a reason to stop
        return None, f"raised {type(err).__name__}: {err}"


def _seed001_manual(output: Any, target: Any) -> tuple[Any, Any, float]:
    """Seed 001's notebook formulas, as written (torch, float32)."""
    import torch

    def softmax(x: torch.Tensor) -> torch.Tensor:
        # the notebook's (exp(x).T / sum(exp(x), axis=1).T).T, written without 1-D transposes
        return torch.exp(x) / torch.sum(torch.exp(x), dim=1, keepdim=True)  # noqa: LMX104

    def log_softmax(x: torch.Tensor) -> torch.Tensor:
        return torch.log(softmax(x))  # noqa: LMX103

    def cross_entropy(q: torch.Tensor, p: torch.Tensor) -> float:
        batch_size, num_of_classes = q.shape
        onehot = torch.eye(num_of_classes)[p]
        return (-torch.sum(onehot * torch.log(q)) / batch_size).item()  # noqa: LMX107

    probs = softmax(output)
    return probs, log_softmax(output), cross_entropy(probs, target)


def seed001_batch() -> Part:
    """Seed 001: one batch, the cross-entropy computed every way."""
    import torch
    from torch import nn

    output = torch.tensor(SEED001_OUTPUT)
    target = torch.tensor(SEED001_TARGET).long()
    x, t = output.numpy(), target.numpy()
    exact_loss = reference.cross_entropy(x, t)  # x is float32: certified in float32
    exact_f32 = float(exact_loss.rounded)

    probs, log_probs, manual = _seed001_manual(output, target)
    losses: list[tuple[str, float | None, str | None]] = [
        ("manual CrossEntropy(Softmax(output), target) (seed 001)", manual, None),
        (
            "torch nn.CrossEntropyLoss()(output, target)",
            nn.CrossEntropyLoss()(output, target),
            None,
        ),
        (
            "torch nn.NLLLoss()(nn.LogSoftmax(dim=1)(output), target)",
            nn.NLLLoss()(nn.LogSoftmax(dim=1)(output), target),
            None,
        ),
        (
            "torch nn.NLLLoss()(logSoftmax(output), target) (seed 001)",
            nn.NLLLoss()(log_probs, target),
            None,
        ),
    ]
    value, err = call_logmax("cross_entropy", x, t)
    losses.append(("logmax.cross_entropy(x, target)", value, err))
    from logmax.study.pairings import logmax_torch_loss

    torch_loss, why = logmax_torch_loss()
    losses.append(
        (
            "logmax.torch.cross_entropy(output, target)",
            None if torch_loss is None else torch_loss(output, target),
            why,
        )
    )
    lsm, err_lsm = call_logmax("log_softmax", x)
    if err_lsm is None:
        value, err = call_logmax("nll_loss", lsm, t)
    else:
        value, err = None, err_lsm
    losses.append(("logmax.nll_loss(logmax.log_softmax(x), target)", value, err))

    rows = []
    measured: dict[str, float] = {}
    for label, v, e in losses:
        if e is not None:
            rows.append((label, e, ""))
            continue
        v = float(v)
        measured[label] = v
        rows.append((label, fmt(v), fmt_ulp(max_ulp_error(v, exact_loss))))
    rows.append(("exact, rounded to float32", fmt(exact_f32), "0.00"))
    loss_table = Table(
        "Mean cross-entropy of the batch (float32)",
        ("computed by", "value", "ULP from exact"),
        tuple(rows),
        note=f"exact value: {fmt(reference.cross_entropy(x, t, fmt='float64').rounded)} "
        "(rounded to float64)",
    )

    # log-probabilities: the notebook's log(Softmax) against log_softmax, entry by entry
    exact_lp = reference.log_softmax(x)

    def max_ulp(values: np.ndarray) -> float:
        return max_ulp_error(values, exact_lp)

    lp_rows = [
        ("manual logSoftmax = log(Softmax(output)) (seed 001)", log_probs.numpy()),
        ("torch nn.LogSoftmax(dim=1)(output)", nn.LogSoftmax(dim=1)(output).numpy()),
    ]
    lp_table_rows = [(lab, fmt_row(v[0], 8), fmt_ulp(max_ulp(v))) for lab, v in lp_rows]
    if err_lsm is None:
        lp_rows.append(("logmax.log_softmax(x)", np.asarray(lsm)))
        lp_table_rows.append(
            ("logmax.log_softmax(x)", fmt_row(np.asarray(lsm)[0], 8), fmt_ulp(max_ulp(lsm)))
        )
    else:
        lp_table_rows.append(("logmax.log_softmax(x)", err_lsm, ""))
    lp_table = Table(
        "Log-probabilities of the batch (float32)",
        ("computed by", "first row", "max ULP from exact (12 entries)"),
        tuple(lp_table_rows),
    )

    findings = []
    if measured:
        spread = max(max_ulp_error(v, exact_loss) for v in measured.values())
        distinct = sorted({fmt(v) for v in measured.values()})
        findings.append(
            Finding(
                f"All {len(measured)} computations agree with the seed's 0.4230 to 4 digits and "
                f"lie "
                f"within {fmt_ulp(spread)} float32 ULP of the exact value; they print "
                f"{len(distinct)} different float32 number(s): {', '.join(distinct)}.",
                agrees=all(
                    round(v, 4) == round(SEED001_PRINTED_LOSS, 4) for v in measured.values()
                ),
            )
        )
        manual_ulp = max_ulp_error(manual, exact_loss)
        findings.append(
            Finding(
                f"The seed's manual formula prints {fmt(manual)} "
                f"(seed: {fmt(SEED001_PRINTED_LOSS)}), "
                f"{fmt_ulp(manual_ulp)} ULP from the exact value; the exact value rounds to "
                f"{fmt(exact_f32)}.",
                agrees=manual == SEED001_PRINTED_LOSS,
            )
        )
    for lab, v in lp_rows:
        if lab.startswith("logmax"):
            u = max_ulp(v)
            findings.append(
                Finding(
                    f"logmax.log_softmax is within {fmt_ulp(u)} ULP of the exact log-probabilities "
                    f"(promise: <= 1 ULP in float32)."
                )
            )
    return Part(
        key="seed001",
        title="Seed 001: one batch, cross-entropy every way",
        claim=(
            "The manual Softmax/logSoftmax/CrossEntropy gives 0.42298611998558044; "
            "nn.CrossEntropyLoss and nn.NLLLoss(LogSoftmax) give the same tensor(0.4230)."
        ),
        tables=[loss_table, lp_table],
        findings=findings,
    )


def alpha_methods() -> list[tuple[str, Callable[[np.ndarray], np.ndarray]]]:
    """The ways seed 002 computes ``log_softmax(alpha * [-1, 0, 1])``, each on a float32 row.

    Each function takes the float32 row and returns its log-probabilities as a NumPy array; a
    logmax function that cannot be called raises (the caller shows why).
    """
    import torch

    def naive32(x: np.ndarray) -> np.ndarray:
        return torch.log(torch.softmax(torch.from_numpy(x), dim=0)).numpy()  # noqa: LMX103

    def torch32(x: np.ndarray) -> np.ndarray:
        return torch.log_softmax(torch.from_numpy(x), dim=0).numpy()

    def logmax32(x: np.ndarray) -> np.ndarray:
        value, err = call_logmax("log_softmax", x)
        if err is not None:
            raise RuntimeError(err)
        return np.asarray(value)

    def naive64(x: np.ndarray) -> np.ndarray:
        return torch.log(torch.softmax(torch.from_numpy(x).double(), dim=0)).numpy()  # noqa: LMX103

    return [
        ("torch.log(torch.softmax(x)) float32", naive32),
        ("torch.log_softmax(x) float32", torch32),
        ("logmax.log_softmax(x) float32", logmax32),
        ("torch.log(torch.softmax(x)) float64 (the seed's 'true result')", naive64),
    ]


def alpha_row(alpha: float) -> np.ndarray:
    return (np.float32(alpha) * np.array([-1.0, 0.0, 1.0], dtype=np.float32)).astype(np.float32)


def alpha_errors(
    alphas: tuple[float, ...],
) -> tuple[dict[str, list[np.ndarray | str]], list[Exact], list[np.ndarray]]:
    """Every method of :func:`alpha_methods` at every alpha.

    Returns the computed rows per method (or the reason it failed), the certified exact values
    per alpha, and their roundings to float32.
    """
    methods = alpha_methods()
    values: dict[str, list[np.ndarray | str]] = {label: [] for label, _ in methods}
    exact_values, exact32 = [], []
    for alpha in alphas:
        x = alpha_row(alpha)
        e = reference.log_softmax(x)
        exact_values.append(e)
        exact32.append(e.rounded)
        for label, fn in methods:
            try:
                values[label].append(np.asarray(fn(x)))
            except RuntimeError as err:
                values[label].append(str(err))
    return values, exact_values, exact32


def max_ulp_error(computed: float | np.ndarray, exact: Exact) -> float:
    """The largest error of ``computed`` in ULPs of the exact value's format (``inf``: a
    non-finite result where the exact value is finite)."""
    return float(np.max(ulp_error(np.asarray(computed, dtype=np.float64), exact)))


def seed002_alpha(alphas: tuple[float, ...] = SEED002_ALPHAS) -> Part:
    """Seed 002: ``alpha * [-1, 0, 1]``, naive ``log(softmax)`` against ``log_softmax``."""
    values, exact_values, exact32 = alpha_errors(alphas)
    labels = list(values)
    shown = [a for a in (100, 1000) if a in alphas] or [alphas[-1]]
    value_rows = []
    for alpha in shown:
        i = alphas.index(alpha)
        for label in labels:
            v = values[label][i]
            value_rows.append((fmt(alpha, 6), label, v if isinstance(v, str) else fmt_row(v, 8)))
        value_rows.append((fmt(alpha, 6), "exact, rounded to float32", fmt_row(exact32[i], 8)))
    value_table = Table(
        "log_softmax(alpha * [-1, 0, 1]): values",
        ("alpha", "computed by", "values (8 significant digits)"),
        tuple(value_rows),
    )
    error_rows = []
    errors: dict[str, list[float]] = {label: [] for label in labels}
    for i, alpha in enumerate(alphas):
        cells = [fmt(alpha, 6)]
        for label in labels:
            v = values[label][i]
            if isinstance(v, str):
                cells.append("unavailable")
                continue
            u = max_ulp_error(v, exact_values[i])
            errors[label].append(u)
            cells.append(fmt_ulp(u))
        error_rows.append(tuple(cells))
    error_table = Table(
        "log_softmax(alpha * [-1, 0, 1]): largest error, in float32 ULPs of the exact value",
        ("alpha", *labels),
        tuple(error_rows),
        note="inf: a -inf (or NaN) where the exact value is finite",
    )

    naive32, torch32, logmax32, naive64 = labels
    top = len(alphas) - 1
    findings = []

    def first_inf(label: str) -> str:
        for alpha, v in zip(alphas, values[label], strict=True):
            if not isinstance(v, str) and np.isinf(v).any():
                return fmt(alpha, 6)
        return "none of the sweep"

    naive_top = values[naive32][top]
    findings.append(
        Finding(
            f"At alpha={fmt(alphas[top], 6)} the naive float32 log(softmax) gives "
            f"{fmt_row(naive_top)}; the first alpha with a -inf is {first_inf(naive32)} in "
            f"float32 and {first_inf(naive64)} in float64 (the seed's 'true result' breaks too).",
            agrees=bool(np.isneginf(naive_top).any()),
        )
    )
    torch_top = values[torch32][top]
    findings.append(
        Finding(
            f"torch.log_softmax in float32 gives {fmt_row(torch_top)} at "
            f"alpha={fmt(alphas[top], 6)}; over the sweep its largest error is "
            f"{fmt_ulp(max(errors[torch32]))} ULP (exact at "
            f"{sum(u == 0 for u in errors[torch32])} of {len(alphas)} alphas).",
            agrees=bool(np.array_equal(torch_top, np.float32(exact32[top]))),
        )
    )
    if errors[logmax32]:
        findings.append(
            Finding(
                f"logmax.log_softmax in float32: largest error {fmt_ulp(max(errors[logmax32]))} "
                "ULP over the sweep (promise: <= 1 ULP)."
            )
        )
    else:
        findings.append(Finding(f"logmax.log_softmax: {values[logmax32][0]}"))
    return Part(
        key="seed002",
        title="Seed 002: log(softmax(x)) against log_softmax(x)",
        claim=(
            "For alpha=1000, torch.log(torch.softmax(x)) gives [-inf, -inf, 0] while "
            "torch.log_softmax(x) gives [-2000, -1000, 0]."
        ),
        tables=[value_table, error_table],
        findings=findings,
    )


def seed000_tiny() -> Part:
    """Seed 000: log_softmax of ``[1e-15, 2e-15, 3e-15]`` in float64."""
    import torch

    z = np.array(SEED000_Z, dtype=np.float64)
    exact_values = reference.log_softmax(z)
    exact64 = exact_values.rounded
    # log_softmax(z)_i - log_softmax(z)_0 = z_i - z_0 exactly: the normaliser cancels
    exact_diffs = [float(Fraction(z[i]) - Fraction(z[0])) for i in (1, 2)]
    candidates: list[tuple[str, np.ndarray | None, str | None]] = [
        (
            "torch.log_softmax(z, dim=0)",
            torch.log_softmax(torch.from_numpy(z), dim=0).numpy(),
            None,
        ),
        ("naive np.log(np.exp(z) / np.exp(z).sum())", np.log(np.exp(z) / np.exp(z).sum()), None),  # noqa: LMX103, LMX104
    ]
    lm, err = call_logmax("log_softmax", z)
    candidates.append(("logmax.log_softmax(z)", None if err else np.asarray(lm), err))
    rows = []
    ordered: dict[str, bool] = {}
    for label, values, e in candidates:
        if e is not None:
            rows.append((label, e, "", ""))
            continue
        diffs = [values[1] - values[0], values[2] - values[0]]
        ordered[label] = bool(values[0] < values[1] < values[2])
        worst = max_ulp_error(values, exact_values)
        rows.append((label, fmt_row(values), fmt_row(diffs, 6), fmt_ulp(worst)))
    rows.append(
        (
            "exact, rounded to float64",
            fmt_row(exact64),
            fmt_row(exact_diffs, 6),
            "0.00",
        )
    )
    table = Table(
        "log_softmax([1e-15, 2e-15, 3e-15]) in float64",
        ("computed by", "values", "differences to the first", "max ULP from exact"),
        tuple(rows),
    )
    tz = torch.from_numpy(z)
    exp_table = Table(
        "exp(z) - 1 against expm1(z)",
        ("computed by", "values"),
        (
            ("torch.exp(z) - 1", fmt_row((torch.exp(tz) - 1).numpy(), 6)),
            ("torch.expm1(z)", fmt_row(torch.expm1(tz).numpy(), 6)),
        ),
    )
    torch_label = candidates[0][0]
    torch_values = candidates[0][1]
    findings = [
        Finding(
            f"torch.log_softmax gives three different values {fmt_row(torch_values)}: they only "
            "print alike at 4 decimals. The seed's 'returns the same value for the 3 inputs' "
            "is a display effect.",
            agrees=not ordered[torch_label],
        )
    ]
    for label, ok in ordered.items():
        if label != torch_label:
            findings.append(
                Finding(
                    f"{label}: values "
                    + ("increase with z, as they must." if ok else "do NOT increase with z.")
                )
            )
    return Part(
        key="seed000",
        title="Seed 000: log_softmax of tiny inputs",
        claim=(
            "F.log_softmax([1e-15, 2e-15, 3e-15]) 'returns the same value for the 3 input values' "
            "(-1.0986); a reply says it is only the 4-decimal printout."
        ),
        tables=[table, exp_table],
        findings=findings,
    )


def seed003_constant(constants: tuple[float, ...] = SEED003_CONSTANTS) -> Part:
    """Seed 003: ``n`` equal values ``c``: softmax must be ``1/n`` and log_softmax ``-log n``."""
    import torch

    n = SEED003_CLASSES
    rows = []
    naive_broken: dict[float, bool] = {}
    logmax_ok: dict[float, bool] = {}
    logmax_error = None
    with np.errstate(all="ignore"):
        for c in constants:
            for dtype in (np.float32, np.float64):
                x = np.full(n, c, dtype=dtype)
                naive = np.exp(x) / np.exp(x).sum()  # noqa: LMX104
                naive_log = np.log(naive)  # noqa: LMX103
                sm, err1 = call_logmax("softmax", x)
                lsm, err2 = call_logmax("log_softmax", x)
                err = err1 or err2
                logmax_error = logmax_error or err
                naive_broken[c] = naive_broken.get(c, False) or not np.isfinite(naive).all()
                if err is None:
                    ok = np.allclose(sm, 1 / n, rtol=1e-6) and np.allclose(
                        lsm, -math.log(n), rtol=1e-6
                    )
                    logmax_ok[c] = logmax_ok.get(c, True) and bool(ok)
                torch_sm = torch.softmax(torch.from_numpy(x), dim=0).numpy()
                rows.append(
                    (
                        fmt(c, 6),
                        np.dtype(dtype).name,
                        fmt_row(naive, 8),
                        fmt_row(naive_log, 8),
                        fmt_row(torch_sm, 8),
                        fmt_row(sm, 8) if err is None else err,
                        fmt_row(lsm, 8) if err is None else "",
                    )
                )
    table = Table(
        f"A row of {n} equal values c",
        (
            "c",
            "dtype",
            "naive exp(x) / sum(exp(x))",
            "naive log of it",
            "torch.softmax(x)",
            "logmax.softmax(x)",
            "logmax.log_softmax(x)",
        ),
        tuple(rows),
        note=f"expected: softmax 1/{n} = {fmt(1 / n)}, log_softmax -log {n} = {fmt(-math.log(n))}",
    )
    findings = [
        Finding(
            f"c={fmt(c, 6)}: the naive formula "
            + ("gives non-finite values (overflow/underflow)." if bad else "stays finite."),
            agrees=bad,
        )
        for c, bad in naive_broken.items()
    ]
    if logmax_error is None:
        findings.append(
            Finding(
                "logmax gives 1/n and -log n for every constant: "
                + ("yes." if all(logmax_ok.values()) else "NO.")
            )
        )
    else:
        findings.append(Finding(f"logmax: {logmax_error}"))
    return Part(
        key="seed003",
        title="Seed 003: a constant row of large magnitude",
        claim=(
            "With all inputs equal to c, exp(c) underflows for very negative c (0/0) and overflows "
            "for large positive c; log-softmax resolves both."
        ),
        tables=[table],
        findings=findings,
    )


def all_examples() -> list[Part]:
    """The four seeds' worked examples, in seed order of the report."""
    return [seed001_batch(), seed002_alpha(), seed000_tiny(), seed003_constant()]
