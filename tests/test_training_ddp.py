"""Data-parallel training under torchrun: 2 CPU processes, gloo backend."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap

import pytest
import torch

WORKER = textwrap.dedent('''
    import os, sys
    import numpy as np, torch
    from cellrobust.data.sample import Sample
    from cellrobust.training import recipe_config
    from cellrobust.training.loop import Trainer
    from cellrobust.training import ddp

    out, run = sys.argv[1], sys.argv[2]
    rank = int(os.environ["RANK"])
    replaced = []
    if rank != 0:  # every cellrobust file write ends in os.replace: count them on rank 1
        real = os.replace
        os.replace = lambda a, b: (replaced.append(str(b)), real(a, b))

    def sample(seed):
        rng = np.random.default_rng(seed)
        mask = np.zeros((48, 48), np.int32)
        for _ in range(6):
            y, x = rng.integers(0, 40, 2)
            mask[y:y + 6, x:x + 5] = 1
        return Sample((60 + 140 * mask).astype(np.uint8), mask, f"s{seed}")

    config = recipe_config("augmented", patch_size=32, patches_per_frame=3, epochs=2,
                           workers=0, threads=1, model={"width": 4})
    trainer = Trainer(config, [sample(0), sample(1)], [sample(2), sample(3), sample(4)],
                      run_dir=run, progress=False)
    trainer.fit()
    steps = [r["steps"] for r in trainer.history]
    torch.save({"state": {k: v.clone() for k, v in trainer.net.state_dict().items()},
                "replaced": replaced, "steps": steps,
                "val": [r["val_loss"] for r in trainer.history]}, f"{out}/rank{rank}.pt")
    ddp.teardown(trainer.ctx)
''')


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_gloo_ranks_end_with_identical_weights_and_only_rank0_writes(tmp_path):
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    run = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
           "--master_addr", "127.0.0.1", "--master_port", str(_free_port()), str(script),
           str(tmp_path), str(run)]
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=150)
    assert result.returncode == 0, result.stderr[-3000:]
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1))
    assert r0["state"].keys() == r1["state"].keys()
    assert all(torch.equal(r0["state"][k], r1["state"][k]) for k in r0["state"])
    assert r1["replaced"] == []  # rank 1 wrote nothing
    assert r0["steps"] == r1["steps"] == [2, 2]  # 6 patches split over 2 ranks, batch 2
    assert r0["val"] == r1["val"]  # validation counts summed over ranks -> same decisions
    assert {p.name for p in run.iterdir()} >= {"best.pt", "last.pt", "history.csv"}
    assert not any(p.name.startswith(".") for p in run.iterdir())


@pytest.mark.skipif(not torch.distributed.is_available(), reason="no torch.distributed")
def test_not_distributed_without_torchrun():
    from cellrobust.training import ddp

    assert "WORLD_SIZE" not in os.environ or os.environ["WORLD_SIZE"] == "1"
    ctx = ddp.setup(torch.device("cpu"))
    assert ctx.world == 1 and ctx.is_main and not ctx.distributed
