"""AdaLoRA's rank budget: after a warm-up, peft's RankAllocator scores each singular value by its importance
and cuts the least useful until the average rank reaches the target; the ranks then stay fixed (the same
schedule as peft's AdaLoraModel.update_and_allocate, driven by the loop's own steps)."""
from __future__ import annotations

from ..events import Callback


class AdaLoraBudget(Callback):
    def __init__(self, model, settings):
        self.model, self.s = model, settings
        self.allocator = None

    def on_fit_start(self, ctx):
        from peft.tuners.adalora.model import RankAllocator

        conf = self.model.peft_config
        total = max(ctx.state.total_steps, 3)
        conf.total_step = total
        conf.tinit = int(total * self.s.warmup_share)
        conf.tfinal = int(total * self.s.final_share)
        conf.deltaT = max(1, (total - conf.tinit - conf.tfinal) // 10)
        self.allocator = RankAllocator(self.model, conf, "default")

    def on_optimizer_step(self, ctx):
        conf, step = self.model.peft_config, ctx.state.step
        if step < conf.total_step - conf.tfinal:
            _, pattern = self.allocator.update_and_allocate(self.model, step)
            if pattern:
                conf.rank_pattern = pattern
        elif step == conf.total_step - conf.tfinal:
            _, conf.rank_pattern = self.allocator.update_and_allocate(self.model, step, force_mask=True)
            self.allocator.reset_ipt()
        elif conf.rank_pattern:
            self.allocator.mask_using_rank_pattern(self.model, conf.rank_pattern)
