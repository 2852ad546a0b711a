"""Threads for the CPU kernels: a small pool of our own, safe under ``fork`` and from any thread
(this module imports no Numba: the thread count can be set before any kernel loads).

The kernels are compiled with ``nogil=True`` and take a range of rows; :func:`over_rows` cuts
the rows into one contiguous range per thread and runs them on a thread pool (the calling
thread takes the first range). No Numba threading layer is involved, so:

- a process that forks after using a kernel (``multiprocessing`` with the ``fork`` start method,
  DataLoader workers) gets a working child -- the pool is recreated in the child -- where GNU
  OpenMP would abort it;
- calls from several Python threads at once are safe (Numba's workqueue layer is not);
- compiling a kernel is faster than a ``parallel=True`` one.

The thread count: :func:`set_num_threads`, else ``LOGMAX_NUM_THREADS``, else
``NUMBA_NUM_THREADS``, else the CPUs this process may use.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

MIN_ROWS_PER_THREAD = 1
MIN_WORK_PER_THREAD = 1 << 16  # elements: below this a thread costs more than it saves

_lock = threading.Lock()
_pool: ThreadPoolExecutor | None = None
_threads: int | None = None


def _default_threads() -> int:
    for name in ("LOGMAX_NUM_THREADS", "NUMBA_NUM_THREADS"):
        value = os.environ.get(name, "").strip()
        if value.isdigit() and int(value) > 0:
            return int(value)
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def get_num_threads() -> int:
    """The number of threads the CPU kernels use."""
    global _threads
    if _threads is None:
        _threads = _default_threads()
    return _threads


def set_num_threads(n: int) -> None:
    """Use ``n`` threads (``n >= 1``) for the CPU kernels from now on."""
    global _threads, _pool
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"the number of threads must be a positive int, got {n!r}")
    with _lock:
        _threads = n
        if _pool is not None:
            _pool.shutdown(wait=False)
            _pool = None


def _get_pool(workers: int) -> ThreadPoolExecutor:
    global _pool
    with _lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="logmax")
        return _pool


def _forget_pool_in_child() -> None:
    # the child of a fork has none of the parent's threads: start a fresh pool when needed
    global _pool, _lock
    _pool = None
    _lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool_in_child)


def over_rows(kernel: Callable[..., Any], n_rows: int, row_size: int, *args: Any) -> None:
    """Run ``kernel(*args, r0, r1)`` over ``[0, n_rows)`` cut into one range per thread."""
    threads = min(get_num_threads(), max(1, n_rows // MIN_ROWS_PER_THREAD))
    threads = min(threads, max(1, (n_rows * max(row_size, 1)) // MIN_WORK_PER_THREAD))
    if threads <= 1:
        kernel(*args, 0, n_rows)
        return
    bounds = [n_rows * i // threads for i in range(threads + 1)]
    pool = _get_pool(get_num_threads() - 1 or 1)
    futures = [pool.submit(kernel, *args, bounds[i], bounds[i + 1]) for i in range(1, threads)]
    kernel(*args, bounds[0], bounds[1])
    for f in futures:
        f.result()
