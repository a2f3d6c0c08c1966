"""bench measures what it says: the recipe's own model, and modes timed in alternation."""
import torch

from diffusion_course import bench
from diffusion_course.checkpoint import read_card
from diffusion_course.recipes import mnist


def test_bench_times_the_recipes_model():
    model = bench.recipe_model()
    card = read_card("mnist_unet")
    assert model.config == card["config"]                              # the shipped architecture, exactly
    assert sum(p.numel() for p in model.parameters()) == card["parameters"]
    assert model.config["channels"] == mnist.DEFAULTS["channels"]


def test_modes_are_timed_in_alternation():
    order = []
    fns = [lambda: order.append("a"), lambda: order.append("b")]
    seconds = bench.interleaved(torch.device("cpu"), fns, per_round=2, rounds=3, warmup=1)
    assert order == ["a", "b"] + ["a", "a", "b", "b"] * 3             # warm-up, then round after round
    assert len(seconds) == 2 and all(s >= 0 for s in seconds)


def test_bench_prints_one_row_per_task_and_mode():
    lines = []
    rows = bench.bench("cpu", batch=2, iters=1, sample_steps=1, rounds=1, print_fn=lines.append)
    assert [r["mode"] for r in rows] == ["fp32", "fp32 channels_last"] * 2
    assert rows[0]["vs_default"] == 1.0 and "280,881 parameters" in lines[1]


def test_flops_are_counted_per_image_and_give_the_rate():
    rows = bench.bench("cpu", batch=4, iters=1, sample_steps=2, rounds=1, print_fn=lambda *a: None)
    model = bench.recipe_model()
    with bench.FlopCounterMode(display=False) as counter:
        model(torch.randn(1, 1, 28, 28), torch.ones(1), torch.zeros(1, dtype=torch.long))
    forward = counter.get_total_flops()
    train, sample = rows[0], rows[-1]
    assert 2.5 < train["flops_per_image"] / forward < 3.5            # backward costs about twice the forward
    assert sample["flops_per_image"] == 2 * 2 * forward                # 2 steps x guided (2 passes)
    assert abs(train["gflops_per_s"] - train["flops_per_image"] * train["images_per_s"] / 1e9) < 1e-9
    assert train["of_peak"] is None                                    # a CPU has no bf16 peak to compare with
