"""The linter needs only the standard library: nothing heavy is imported, even while it runs."""

from __future__ import annotations

import subprocess
import sys
import textwrap

HEAVY = ("numpy", "torch", "numba", "ml_dtypes", "scipy", "jax", "libcst")


def test_importing_and_running_the_linter_loads_nothing_heavy(tmp_path):
    target = tmp_path / "train.py"
    target.write_text("import torch\ny = torch.log(torch.softmax(x, dim=1))\n")
    script = textwrap.dedent(
        f"""
        import sys
        import logmax.lint
        after_import = sorted(m for m in {HEAVY!r} if m in sys.modules)
        from logmax.lint.__main__ import main
        status = main([{str(target)!r}, "--format", "sarif"])
        after_run = sorted(m for m in {HEAVY!r} if m in sys.modules)
        print(after_import, after_run, status, file=sys.stderr)
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.stderr.strip().splitlines()[-1] == "[] [] 1"
    assert '"ruleId": "LMX103"' in done.stdout
