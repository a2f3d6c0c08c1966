"""Data-parallel training on several processes or GPUs, with PyTorch's own engine.

    torchrun --nproc_per_node=2 -m diffusion_course train mnist     # 2 processes (CPU: gloo)
    torchrun --nproc_per_node=8 -m diffusion_course train mnist     # 8 GPUs on one machine (nccl)

torchrun starts the processes and tells each its rank (0 .. world_size - 1) in environment
variables; `start` joins them into one group. Then every process holds the same model and
`train()` wraps the loss in DistributedDataParallel: each process draws its own share of every
batch (`share(batch_size)`) from its own random stream (`rank_seed`), computes its loss and
gradients, and the gradients are averaged across processes during the backward pass, so every
process makes the same update, as one process would with the whole batch. Only rank 0 writes the
state, the checkpoint and the card; the other ranks stop when training ends. A single process
(plain `python -m diffusion_course train ...`) never touches any of this.
"""
import os

import torch
import torch.distributed as dist


def world():
    """(rank, world_size) of this process: (0, 1) unless a process group is running."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def is_main():
    """True in a single process and in rank 0 of a group: the process that prints and writes files."""
    return world()[0] == 0


def start(device):
    """Join the process group torchrun describes (WORLD_SIZE > 1 in the environment), and return the
    device this process trains on: with CUDA, the GPU of its LOCAL_RANK. Without torchrun: `device`."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or dist.is_initialized():
        return device
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    elif device.type != "cpu":
        raise ValueError(f"training on several processes needs CUDA GPUs (nccl) or the CPU (gloo), not "
                         f"{device.type}: pass --device cpu")
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return device


def launcher():
    """How this run was started, for its card: 'python', or 'torchrun --nproc_per_node=N' (with --nnodes)."""
    size = world()[1]
    if size == 1:
        return "python"
    per_node = int(os.environ.get("LOCAL_WORLD_SIZE", size))
    return f"torchrun --nproc_per_node={per_node}" + (f" --nnodes={size // per_node}" if per_node != size else "")


def stop():
    """Leave the process group (at the end of a run)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def share(batch_size):
    """This process's share of a global batch: batch_size / world_size, which must be whole."""
    rank, size = world()
    if batch_size % size:
        raise ValueError(f"batch_size {batch_size} does not split evenly over {size} processes: choose a "
                         f"multiple of {size}, or another number of processes")
    return batch_size // size


def rank_seed(seed):
    """The seed of this process's random stream: `seed` itself on rank 0 (so one process draws exactly
    what it always drew), a different, fixed stream on every other rank."""
    rank = world()[0]
    return seed if rank == 0 else seed + 1_000_003 * rank


def gather(obj):
    """A list of every rank's `obj` (picklable), in rank order; [obj] in a single process."""
    rank, size = world()
    if size == 1:
        return [obj]
    out = [None] * size
    dist.all_gather_object(out, obj)
    return out


def mean(value):
    """The mean of a scalar tensor over all processes (the global batch's loss); the tensor itself alone."""
    if world()[1] == 1:
        return value
    value = value.detach().clone()
    dist.all_reduce(value)
    return value / world()[1]


def barrier():
    if world()[1] > 1:
        dist.barrier()


class LossModule(torch.nn.Module):
    """The model and its loss as one module, so that DistributedDataParallel sees the whole loss
    computation as its forward pass, whatever parts of the model the loss calls (an encoder, a text
    tower, the U-Net)."""

    def __init__(self, model, loss_fn):
        super().__init__()
        self.model, self.loss_fn = model, loss_fn

    def forward(self, batch, gen):
        return self.loss_fn(self.model, batch, gen)
