"""Fine-Tune Studio engine: data, audit, backbones, strategies, trainer, runs. UI-free."""
