"""Run check functions on a gloo process group of spawned CPU processes, once for many checks.

One spawn of ``WORLD`` processes serves every check: each check runs on the whole group (world 3)
and on a subgroup of ranks 0 and 1 (world 2). A check appends failure messages instead of
raising, so that no rank leaves a collective the others wait in; an unexpected exception is
reported with its traceback, and a rank that hangs is killed at the timeout.
"""

from __future__ import annotations

import datetime
import multiprocessing
import os
import queue as queue_mod
import tempfile
import time
import traceback

WORLD = 3
TIMEOUT_S = 300


class Ctx:
    """What a check sees: its rank, and the groups to run on (``[(world, group), ...]``)."""

    def __init__(self, rank: int, world: int, groups: list):
        self.rank = rank
        self.world = world
        self.groups = groups  # (world, group, ranks) for every group this rank belongs to

    def runs(self):
        """``(world, group, rank_in_group)`` for each group this rank belongs to."""
        for world, group, ranks in self.groups:
            if self.rank in ranks:
                yield world, group, ranks.index(self.rank)


def _child(rank: int, world: int, init: str, out, names: list[str], module: str) -> None:
    start = time.process_time()
    import importlib

    import torch
    import torch.distributed as dist

    checks = importlib.import_module(module)

    torch.set_num_threads(1)
    dist.init_process_group(
        "gloo", init_method=f"file://{init}", rank=rank, world_size=world,
        timeout=datetime.timedelta(seconds=90),
    )  # fmt: skip
    pair = dist.new_group([0, 1])
    results = {"_startup": ([], time.process_time() - start)}
    ctx = Ctx(rank, world, [(2, pair, [0, 1]), (world, None, list(range(world)))])
    for name in names:
        failures: list[str] = []
        t0 = time.process_time()  # CPU seconds: what a check costs, whatever the machine's load
        try:
            getattr(checks, "check_" + name)(ctx, failures)
        except Exception:
            failures.append("raised:\n" + traceback.format_exc())
            results[name] = (failures, time.process_time() - t0)
            break  # the other ranks may be inside a collective: stop here
        results[name] = (failures, time.process_time() - t0)
        dist.barrier()
    out.put((rank, results))
    dist.destroy_process_group()


def run(
    names: list[str], world: int = WORLD, module: str = "vp_checks"
) -> dict[str, tuple[list[str], float]]:
    """``{name: (failures from every rank, the most CPU seconds a rank spent)}`` for the checks
    ``names``."""
    mp = multiprocessing.get_context("spawn")
    out = mp.Queue()
    fd, init = tempfile.mkstemp(prefix="logmax-gloo-")
    os.close(fd)
    os.unlink(init)
    procs = [
        mp.Process(target=_child, args=(r, world, init, out, names, module)) for r in range(world)
    ]
    for p in procs:
        p.start()
    got: dict[int, dict] = {}
    deadline = time.monotonic() + TIMEOUT_S
    try:
        while len(got) < world and time.monotonic() < deadline:
            try:
                rank, res = out.get(timeout=1.0)
                got[rank] = res
            except queue_mod.Empty:
                if all(not p.is_alive() for p in procs) and out.empty():
                    break
    finally:
        for p in procs:
            p.join(timeout=10)
            if p.is_alive():
                p.kill()
                p.join()
        if os.path.exists(init):
            os.unlink(init)
    results: dict[str, tuple[list[str], float]] = {}
    for name in ["_startup", *names]:
        failures: list[str] = []
        slowest = 0.0
        for r in range(world):
            if r not in got:
                failures.append(f"rank {r}: no result (crashed or timed out)")
                continue
            if name not in got[r]:
                failures.append(f"rank {r}: not run (an earlier check raised)")
                continue
            fs, secs = got[r][name]
            failures += [f"rank {r}: {f}" for f in fs]
            slowest = max(slowest, secs)
        results[name] = (failures, slowest)
    return results
