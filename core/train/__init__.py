"""Training: plan a run, then fit it.

- plan: resolve the backbone and 'auto', build the model, fit the baseline, check the data
- loop (Learner) and events: fit -> epoch -> batch -> step, with callbacks/ hooked in
- trainer: one run from start to finish, its outcome recorded in the run folder
- search (Optuna), lr_finder (range test), budget ('auto' against a time budget)
- cache and loader: decoded images and backbone features kept per dataset version, batches read ahead
"""
