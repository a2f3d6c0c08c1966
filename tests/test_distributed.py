"""Data-parallel training under torchrun, on this CPU with 2 processes (gloo).

Each run launches `python -m torch.distributed.run --nproc_per_node=2` (torchrun) on a small worker
script: a regression network small enough that a run takes a second; what is tested is the loop's
bookkeeping (gradient averaging, each process's random streams, the saved state), which does not
depend on the network's size.
"""
import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch

from diffusion_course.train import train

WORKER = textwrap.dedent('''
    import os, sys
    import torch
    from diffusion_course import distributed
    from diffusion_course.train import train

    mode, steps, state, out = sys.argv[1], int(sys.argv[2]), sys.argv[3] or None, sys.argv[4]
    interrupt_at = int(os.environ.get("INTERRUPT_AT", "-1"))
    distributed.start(torch.device("cpu"))
    rank, world = distributed.world()
    X = torch.randn(64, 4, generator=torch.Generator().manual_seed(1))
    Y = X @ torch.randn(4, 3, generator=torch.Generator().manual_seed(2))
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.Tanh(), torch.nn.Linear(16, 3))
    order = torch.Generator().manual_seed(3)
    calls = [0]

    def get_batch(gen):
        if mode == "same":            # the same global batch of 16 for any number of processes
            k = distributed.share(16)
            return (X[torch.randint(0, 64, (16,), generator=order)[rank * k:(rank + 1) * k]],)
        return (X[torch.randint(0, 64, (distributed.share(16),), generator=gen)],)   # each rank its own

    def loss_fn(m, batch, gen):
        calls[0] += 1
        if calls[0] == interrupt_at:
            raise KeyboardInterrupt
        x = batch[0]
        target = x @ torch.randn(4, 3, generator=torch.Generator().manual_seed(2))
        if mode == "own":              # noise from the process's own stream
            target = target + 0.1 * torch.randn(target.shape, generator=gen)
        return (m(x) - target).pow(2).mean()

    run = train(model, loss_fn, get_batch, steps, lr=1e-2, warmup=1, device="cpu", state_path=state,
                save_every=5, desc="test")
    torch.save({"model": run.model.state_dict(), "ema": run.ema.state_dict(), "losses": run.losses,
                "resumed_from": run.resumed_from, "world": world}, out)
''')


def launch(tmp_path, *args, nproc=2, env=None, module=None):
    """Run the worker (or `-m module`) under torchrun with nproc processes; returns the CompletedProcess."""
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    target = ["-m", module] if module else [str(script)]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}", *target,
           *map(str, args)]
    full_env = dict(os.environ, OMP_NUM_THREADS="1", DIFFUSION_COURSE_PROGRESS="0", **(env or {}))
    return subprocess.run(cmd, capture_output=True, text=True, env=full_env, timeout=300, cwd=tmp_path)


def run_ok(tmp_path, *args, **kw):
    p = launch(tmp_path, *args, **kw)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    return p


def test_two_processes_equal_one_with_the_same_global_batch(tmp_path):
    run_ok(tmp_path, "same", 20, "", tmp_path / "two.pt")
    run_ok(tmp_path, "same", 20, "", tmp_path / "one.pt", nproc=1)
    two, one = torch.load(tmp_path / "two.pt"), torch.load(tmp_path / "one.pt")
    assert (two["world"], one["world"]) == (2, 1)
    for key in ("model", "ema"):
        for name in one[key]:
            # float32 sums in another order: rounding only
            torch.testing.assert_close(two[key][name], one[key][name], atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(torch.tensor(two["losses"]), torch.tensor(one["losses"]), atol=1e-6, rtol=1e-5)
    assert one["losses"][-1] < 0.75 * one["losses"][0]          # it did learn


def test_an_interrupted_group_resumes_exactly_and_refuses_another_world_size(tmp_path):
    state = tmp_path / "run"
    p = launch(tmp_path, "own", 20, state, tmp_path / "x.pt", env={"INTERRUPT_AT": "13"})
    assert p.returncode != 0 and "resume from its last save" in p.stdout + p.stderr
    run_ok(tmp_path, "own", 20, state, tmp_path / "resumed.pt")                  # the same command again
    run_ok(tmp_path, "own", 20, tmp_path / "fresh", tmp_path / "straight.pt")
    resumed, straight = torch.load(tmp_path / "resumed.pt"), torch.load(tmp_path / "straight.pt")
    assert resumed["resumed_from"] == 10 and straight["resumed_from"] == 0
    for key in ("model", "ema"):
        for name in straight[key]:
            assert torch.equal(resumed[key][name], straight[key][name]), (key, name)
    assert resumed["losses"] == straight["losses"]

    model = torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.Tanh(), torch.nn.Linear(16, 3))
    with pytest.raises(ValueError, match=r"trained by 2 process\(es\), this is 1.*--nproc_per_node=2"):
        train(model, lambda m, b, g: m(b).sum(), lambda g: torch.zeros(2, 4), 30, lr=1e-2, warmup=1,
              device="cpu", state_path=state, save_every=5)


def test_cli_under_torchrun_writes_one_card_from_rank_0(tmp_path, mnist_root):
    mnist_data_env = {"DIFFUSION_COURSE_DATA": str(mnist_root)}
    out = tmp_path / "digits"
    p = run_ok(tmp_path, "train", "mnist", "--steps", 4, "--eval_n", 0, "--out", out, module="diffusion_course",
               env=mnist_data_env)
    assert p.stdout.count("training recipe 'mnist'") == 1 and "(2 processes)" in p.stdout
    card = json.loads(out.with_suffix(".json").read_text())
    assert card["world_size"] == 2
    assert card["command"].startswith("torchrun --nproc_per_node=2 -m diffusion_course train mnist")
    p = launch(tmp_path, "train", "mnist", "--steps", 4, "--batch_size", 33, "--eval_n", 0, "--out",
               tmp_path / "odd", module="diffusion_course", env=mnist_data_env)
    assert p.returncode != 0 and "batch_size 33 does not split evenly over 2 processes" in p.stderr
