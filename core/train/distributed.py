"""Scale-out on PyTorch's own engine: torchrun starts the processes, DistributedDataParallel syncs gradients.

    torchrun --nproc_per_node=N -m core.cli train --config RUN/config.json

gloo on CPU, NCCL on GPUs. Only rank 0 writes the run store; evaluation is gathered from every rank.
With one process (no torchrun) every helper here is a cheap no-op.
"""
from __future__ import annotations

import os
from typing import Any

import numpy as np
import torch
import torch.distributed as dist


def world() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def rank() -> int:
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def is_main() -> bool:
    return rank() == 0


def init_from_env() -> bool:
    """Join the process group torchrun describes in the environment; False when not under torchrun."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or dist.is_initialized():
        return dist.is_initialized()
    cuda = torch.cuda.is_available()
    if cuda:
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group(backend="nccl" if cuda else "gloo")
    return True


def device_for_rank(pref: str) -> str:
    if world() > 1 and pref == "auto" and torch.cuda.is_available():
        return f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}"
    return pref


def barrier() -> None:
    if world() > 1:
        dist.barrier()


def broadcast(obj: Any) -> Any:
    """Rank 0's value on every rank."""
    if world() == 1:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def sync_step(loss: float, stop: bool, device: torch.device) -> tuple[float, bool]:
    """Mean loss over ranks (so every rank's NaN guard agrees) and 'any rank asked to stop'."""
    if world() == 1:
        return loss, stop
    t = torch.tensor([loss, 1.0 if stop else 0.0], dtype=torch.float64, device=device)
    flag = t[1:].clone()
    dist.all_reduce(t[:1], op=dist.ReduceOp.SUM)
    dist.all_reduce(flag, op=dist.ReduceOp.MAX)
    return float(t[0]) / world(), bool(flag.item() > 0)


def shard(idx: torch.Tensor) -> torch.Tensor:
    """This rank's equal share of an already shuffled index list (the remainder is dropped, as
    DistributedSampler(drop_last=True) does, so every rank runs the same number of steps)."""
    w = world()
    if w == 1:
        return idx
    n = len(idx) // w * w
    return idx[:n][rank()::w]


def gather_rows(idx: torch.Tensor, probs: np.ndarray) -> np.ndarray:
    """Every rank predicted idx[rank::world]; returns the full [len(idx), C] array in idx order."""
    w = world()
    if w == 1:
        return probs
    parts: list[Any] = [None] * w
    dist.all_gather_object(parts, probs)
    out = np.zeros((len(idx), probs.shape[1]))
    for r, p in enumerate(parts):
        out[r::w] = p
    return out


def shutdown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
