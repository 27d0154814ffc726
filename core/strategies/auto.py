"""'auto': not a way to train but a plan made from the data when the run starts (core.train.auto), which then
trains with one of the other strategies. Registered like them, so every list of strategies holds it."""
from __future__ import annotations

from ..errors import ConfigError
from .base import Strategy


class Auto(Strategy):
    def prepare(self, model, cfg, modality):
        raise ConfigError("'auto' is resolved into a concrete strategy when the run is planned.")


AUTO = Auto("auto", "Auto", "Picks the backbone, strategy and epochs from the data and the time budget, and blends "
                            "with a fast linear model where that helps.", planned=True)
