"""Compile the Triton kernels for a GPU target without a GPU (Triton's front end, LLVM and the
ptxas it ships): the same source the interpreter runs must also pass Triton's code generator,
which the interpreter never sees. Run as ``python compile_check.py [all]`` with
``TRITON_INTERPRET`` unset; prints one line per kernel variant."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

assert os.environ.get("TRITON_INTERPRET", "0") in ("", "0"), "unset TRITON_INTERPRET"

import triton.language as tl  # noqa: E402
from triton.backends.compiler import GPUTarget  # noqa: E402
from triton.compiler import ASTSource  # noqa: E402
from triton.compiler import compile as triton_compile  # noqa: E402

from logmax.kernels.triton import cross_entropy as ce  # noqa: E402
from logmax.kernels.triton import rows  # noqa: E402

TARGET = GPUTarget("cuda", 90, 32)  # H100 / H200


def _signature(fn, types: dict[str, str], consts: dict) -> dict[str, str]:
    sig = {}
    for name in fn.arg_names:
        if name in consts:
            sig[name] = "constexpr"
        elif name in types:
            sig[name] = types[name]
        elif name.startswith("stride") or name in ("n", "col0"):
            sig[name] = "i64" if name.startswith("stride") else "i32"
        elif name.endswith("_arg"):
            sig[name] = "fp64"
        else:
            raise KeyError(name)
    return sig


def variants(everything: bool):
    f32, f64 = tl.float32, tl.float64
    bf, fp = "*bf16", "*fp32"
    row = dict(x_ptr=bf, out_ptr=bf, g_ptr=bf)
    yield rows._rows_kernel, row, dict(OP=0, T_ONE=True, W=f32, BITS=8, BLOCK=4096, ACC_BLOCK=256)
    yield (
        rows._rows_kernel,
        dict(x_ptr=fp, out_ptr=fp, g_ptr=fp),
        dict(OP=2, T_ONE=False, W=f64, BITS=17, BLOCK=2048, ACC_BLOCK=256),
    )
    ce_types = dict(x_ptr=bf, label_ptr="*i64", y_ptr="*i64", counted_ptr="*i8", row_w_ptr=fp,
                    hard_ptr=fp, coef_ptr=fp, tgt_ptr=bf, w_ptr=fp, scale_ptr=fp, loss_ptr=fp,
                    lse_ptr=fp,
                    g_ptr=bf)  # fmt: skip
    yield ce._ce_kernel, ce_types, dict(T_ONE=False, SOFTCAP=True, COEF=ce.TABLE, GRAD=True,
                                        WANT_LSE=True, W=f32, BITS=8, BLOCK=2048,
                                        ACC_BLOCK=256)  # fmt: skip
    if not everything:
        return
    for mode in (ce.NO_COEF, ce.SOFT):
        yield ce._ce_kernel, ce_types, dict(T_ONE=True, SOFTCAP=False, COEF=mode, GRAD=True,
                                            WANT_LSE=False, W=f32, BITS=8, BLOCK=4096,
                                            ACC_BLOCK=256)  # fmt: skip
    f32_ce = {k: (fp if v == bf else v) for k, v in ce_types.items()}
    f32_ce.update(row_w_ptr="*fp64", hard_ptr="*fp64", coef_ptr="*fp64", w_ptr="*fp64",
                  scale_ptr="*fp64", loss_ptr="*fp64", lse_ptr="*fp64")  # fmt: skip
    yield ce._ce_kernel, f32_ce, dict(T_ONE=False, SOFTCAP=True, COEF=ce.TABLE, GRAD=True,
                                      WANT_LSE=True, W=f64, BITS=17, BLOCK=1024,
                                      ACC_BLOCK=256)  # fmt: skip
    yield (
        rows._vjp_kernel,
        dict(y_ptr="*fp16", g_ptr="*fp16", out_ptr="*fp16"),
        dict(LOG=True, T_ONE=False, W=f32, BLOCK=4096),
    )
    yield ce._block_stats_kernel, dict(x_ptr=bf, y_ptr="*i64", coef_ptr=fp, out_ptr=fp,
                                       k_ptr="*i64"), dict(
        T_ONE=True, SOFTCAP=True, COEF=ce.TABLE, W=f32, BLOCK=2048)  # fmt: skip
    yield ce._block_grad_kernel, dict(x_ptr=bf, g_ptr=bf, y_ptr="*i64", counted_ptr="*i8",
                                      hard_ptr=fp, coef_ptr=fp, st_ptr=fp, k_ptr="*i64",
                                      scale_ptr=fp), dict(
        T_ONE=False, SOFTCAP=True, COEF=ce.TABLE, W=f32, BLOCK=2048)  # fmt: skip


def _registers(ptx: str) -> str:
    """ptxas's register and spill report for the kernel (the ptxas Triton ships), or ''."""
    import triton

    ptxas = Path(triton.__file__).parent / "backends/nvidia/bin/ptxas-blackwell"
    if not ptxas.exists():
        return ""
    with tempfile.NamedTemporaryFile("w", suffix=".ptx", delete=False) as f:
        f.write(ptx)
    try:
        out = subprocess.run([str(ptxas), "-v", "--gpu-name=sm_90a", f.name, "-o", os.devnull],
                             capture_output=True, text=True, timeout=300)  # fmt: skip
    finally:
        os.unlink(f.name)
    info = [ln.split("info    : ")[-1] for ln in out.stderr.splitlines() if "registers" in ln]
    spills = [ln.split("info    : ")[-1] for ln in out.stderr.splitlines() if "spill" in ln]
    return "; ".join((info + spills)[-2:])


def main(everything: bool) -> None:
    for fn, types, consts in variants(everything):
        t0 = time.time()
        src = ASTSource(fn=fn, signature=_signature(fn, types, consts), constexprs=consts)
        kernel = triton_compile(
            src, target=TARGET, options={"num_warps": 8, "enable_fp_fusion": True}
        )
        assert "cubin" in kernel.asm
        flags = ",".join(f"{k}={getattr(v, 'name', v)}" for k, v in consts.items())
        regs = _registers(kernel.asm["ptx"]) if everything else ""
        print(f"compiled {fn.fn.__name__}[{flags}] for sm_90 in {time.time() - t0:.1f}s {regs}")


if __name__ == "__main__":
    main("all" in sys.argv[1:])
