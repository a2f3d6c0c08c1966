"""The mnist recipe's U-Net trained by flow matching instead (chapter 8).

Everything is the mnist recipe's (network, data, steps, guidance training, evaluation against the
held-out digits) but two things, which flow.py shows are all that flow matching changes: the noise
levels are drawn with t = sigma / (1 + sigma) uniform (sigma_kind="flow"), and the error is
weighted (1 + sigma)^2 (flow.flow_matching_loss) instead of 1 + sigma^2. The shipped card was
trained beside mnist_dit, one thread each, so that chapter 8 can compare their training times
(6,137 s for 18,000 steps here):

    OMP_NUM_THREADS=1 python -m diffusion_course train mnist_flow
"""
from . import defaults, training_settings
from .mnist import HALF, HELDOUT_N, fit_and_evaluate, make_model, reevaluate  # noqa: F401 (HALF: as mnist's)

NAME = "mnist_flow"


def run(out, device, steps=18000, batch_size=32, lr=1e-3, channels=16, num_res_blocks=1, dropout=0.1,
        p_uncond=0.1, sigma_kind="flow", sigma_min=0.01, sigma_max=80.0, ema_decay=0.9995, seed=0,
        eval_n=HELDOUT_N, eval_draws=5, eval_cfg_scale=3.0):
    settings = dict(training_settings(run, locals()), objective="flow")   # saved with the state
    ema, metrics = fit_and_evaluate(out, device, settings, steps, lambda: make_model(channels, num_res_blocks, dropout),
                                    "mnist U-Net, flow matching", eval_n, eval_draws, eval_cfg_scale)
    return ema.cpu(), metrics


DEFAULTS = defaults(run)
