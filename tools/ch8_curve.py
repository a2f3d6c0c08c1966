"""FD and guided accuracy against training time, DiT against U-Net (chapter 8, section 1).

    python tools/ch8_curve.py --train    # train the stops that are missing, evaluate, write the table
    python tools/ch8_curve.py            # evaluate the stops there are (a run may still be training)

Each model is one run of its recipe's own training command, stopped at a few step counts and
continued (a continued run equals a run started with the larger step count: train() depends on
nothing but the step), with the weights of each stop kept in runs/curve/:

    python -m diffusion_course train mnist_dit --out runs/curve/dit --steps 6000 --eval_n 0 --overwrite
    ... --steps 20000 ...                    (the DiT's last stop is the shipped mnist_dit, 60,000 steps)
    python -m diffusion_course train mnist --out runs/curve/unet --steps 1800 --eval_n 0 --overwrite
    ... --steps 6000, 18000 ...

Every stop is measured as the recipes measure their checkpoints (recipes.mnist.evaluate): FD of
DDIM 10-step samples against the 1,000 held-out digits (n = 400, 5 draws, with its standard
error and floor) and the accuracy of guided samples (DDIM 50, guidance 3, 2,000 digits).

Time axis: each stop's steps times the seconds per step of the two full-length runs trained side
by side on one CPU thread each (the shipped mnist_dit, and mnist_flow, which is the same U-Net
at the same cost per step), so that both models are timed under the same conditions. Train the
stops one thread each (OMP_NUM_THREADS=1). Writes checkpoints/curves/dit_vs_unet.json.
"""
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from diffusion_course import load_mnist                              # noqa: E402
from diffusion_course.checkpoint import git_commit, load_model, read_card  # noqa: E402
from diffusion_course.recipes import mnist                            # noqa: E402

RUNS = REPO / "runs" / "curve"
OUT = REPO / "checkpoints" / "curves" / "dit_vs_unet.json"
# name -> (recipe, stops trained here, the shipped checkpoint that is its last stop or None)
MODELS = {"dit": ("mnist_dit", (6000, 20000), "mnist_dit"),
          "unet": ("mnist", (1800, 6000, 18000), None)}
TIMING = {"dit": "mnist_dit", "unet": "mnist_flow"}    # the side-by-side runs that give s/step


def train_stop(name, recipe, steps):
    """Continue runs/curve/<name> to `steps` with the recipe's command; keep a copy of that stop."""
    stop = RUNS / f"{name}_{steps}"
    if stop.with_suffix(".safetensors").exists():
        return stop
    cmd = [sys.executable, "-m", "diffusion_course", "train", recipe, "--out", str(RUNS / name),
           "--steps", str(steps), "--eval_n", "0", "--overwrite"]
    print(" ".join(cmd[1:]), flush=True)
    subprocess.run(cmd, check=True, cwd=REPO, env=dict(os.environ, OMP_NUM_THREADS="1"))
    for suffix in (".safetensors", ".json"):
        (RUNS / name).with_suffix(suffix).replace(stop.with_suffix(suffix))
    return stop


def measure(model, images, labels):
    r = mnist.evaluate(model, images, labels, samplers=("ddim",), grid_steps=(10,))
    fd, guided = r["samplers"]["ddim_10"], r["guided"]
    return {k: fd[k] for k in ("fd", "fd_se", "fd_floor", "fd_floor_se", "n", "draws")} | {
        "guided_accuracy": guided["accuracy"], "guided_n": guided["n"] * guided["draws"]}


def main(train=False):
    RUNS.mkdir(parents=True, exist_ok=True)
    images, labels = load_mnist("test")
    old = json.loads(OUT.read_text())["models"] if OUT.exists() else {}
    table = {"what": __doc__.strip().splitlines()[0], "command": "python tools/ch8_curve.py",
             "git_commit": git_commit(), "hardware": f"{platform.machine()} CPU, {os.cpu_count()} cores",
             "models": {}}
    for name, (recipe, stops, shipped) in MODELS.items():
        timing = read_card(TIMING[name])
        per_step = timing["metrics"]["train_seconds"] / timing["settings"]["steps"]
        rows = []
        table["models"][name] = {"recipe": recipe, "seconds_per_step": round(per_step, 4),
                                 "timed_by": f"{TIMING[name]}'s card ({timing['hardware']})", "stops": rows}
        measured = {r["steps"]: r for r in old.get(name, {}).get("stops", [])}
        for steps in stops + ((read_card(shipped)["settings"]["steps"],) if shipped else ()):
            stop = RUNS / f"{name}_{steps}"
            if steps not in measured:
                if steps in stops and not train and not stop.with_suffix(".safetensors").exists():
                    print(f"{name} at {steps:,} steps: not trained yet (--train trains it)")
                    continue
                if steps in stops:
                    stop = train_stop(name, recipe, steps)
                    model, where = load_model(stop.with_suffix(".safetensors")), f"runs/curve/{stop.name}"
                else:
                    model, where = load_model(shipped), f"the shipped {shipped}"
                print(f"evaluating {name} at {steps:,} steps ({where})", flush=True)
                measured[steps] = {"steps": steps, "minutes": round(steps * per_step / 60, 1), "weights": where,
                                   **measure(model.eval(), images, labels)}
            rows.append(measured[steps])
            OUT.parent.mkdir(exist_ok=True)
            OUT.write_text(json.dumps(table, indent=2) + "\n")     # after every stop: resumable
    for name, m in table["models"].items():
        for r in m["stops"]:
            print(f"{name:5} {r['steps']:>7,} steps {r['minutes']:6.1f} min  FD {r['fd']:.3f} +- {r['fd_se']:.3f}"
                  f"  guided accuracy {r['guided_accuracy']:.3f}")


if __name__ == "__main__":
    torch.set_num_threads(1)
    main(train="--train" in sys.argv[1:])
