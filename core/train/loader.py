"""Batches for the loop. Every random choice is drawn in the loop's process, in the loop's order, from the
epoch's generator (augmentation numbers, MixUp's partner rows), then handed with the rows to whoever builds the
batch: the training process itself, or DataLoader worker processes that read and augment ahead of it (pinned,
prefetched). Either way a run takes exactly the same batches."""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Iterator

import torch


@dataclass
class Plan:
    idx: torch.Tensor
    randoms: torch.Tensor | None = None  # augmentation
    perm: torch.Tensor | None = None  # MixUp's partner rows within the batch
    after: torch.Tensor | None = None  # the generator's state once this batch's numbers were drawn


def plans(order: torch.Tensor, batch_size: int, gen: torch.Generator, inputs, augment: bool, mix: bool,
          skip: int = 0) -> Iterator[Plan]:
    for i, s in enumerate(range(0, len(order), batch_size)):
        if i < skip:
            continue
        idx = order[s:s + batch_size]
        randoms = inputs.draw(len(idx), gen) if augment else None
        perm = torch.randperm(len(idx), generator=gen) if mix else None
        # workers draw ahead of the loop: a checkpoint keeps the state after the batch it has trained on
        yield Plan(idx, randoms, perm, gen.get_state())


class _Maker(torch.utils.data.Dataset):
    """Builds the batch of a plan (in a worker process, or in the loop's own)."""

    def __init__(self, inputs, flip: bool):
        self.inputs, self.flip = inputs, flip

    def __getitem__(self, plan: Plan):
        return plan, self.inputs.batch(plan.idx, plan.randoms, self.flip)

    def __len__(self) -> int:  # not used: the plans are the sampler
        return len(self.inputs)


def _one_thread(_: int) -> None:
    torch.set_num_threads(1)  # a worker shares the cores with training: one thread each


def batches(plans_iter: Iterator[Plan], inputs, flip: bool, workers: int, pin: bool, prefetch: int = 4):
    """(plan, model inputs) for each plan, built by `workers` processes ahead of the loop (0: in the loop)."""
    maker = _Maker(inputs, flip)
    if workers <= 0:
        for plan in plans_iter:
            yield maker[plan]
        return
    loader = torch.utils.data.DataLoader(maker, batch_size=None, sampler=plans_iter, num_workers=workers,
                                         pin_memory=pin, prefetch_factor=prefetch, worker_init_fn=_one_thread,
                                         persistent_workers=False, multiprocessing_context="fork"
                                         if os.name == "posix" else None,
                                         # its own generator: the workers' seeds must not be drawn from the global
                                         # one, which dropout and MixUp's weights use in the loop's order
                                         generator=torch.Generator().manual_seed(0))
    yield from loader
