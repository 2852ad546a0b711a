"""logmax.cross_entropy_with_grad (loss and gradient in one sweep) against torch's
F.cross_entropy forward then backward, and jax.value_and_grad (if installed).

    uv run python benchmarks/bench_cross_entropy.py [--quick]
"""

import sys

from _common import main

if __name__ == "__main__":
    sys.exit(main("cross_entropy", __doc__.splitlines()[0]))
