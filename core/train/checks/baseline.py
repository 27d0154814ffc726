"""Same split, no fine-tuning: the task's estimator on the modality's linear view (TF-IDF, or the pretrained
features). A resumed run keeps what its start measured."""
from __future__ import annotations

from typing import Any

import numpy as np

from ...linear import standardisation
from .. import distributed as D
from .suspects import suspect_labels


def fit_baseline(plan, previous: dict[str, Any]) -> None:
    t, data = plan.cfg.train, plan.data
    test = data.idx("test").numpy()
    if previous.get("baseline") is not None:
        plan.baseline = previous["baseline"]
        return
    if not t.baseline or not len(test):
        return
    plan.progress(0.0, "Training the scikit-learn baseline")
    view = data.modality.linear_view(data, plan.features)
    train = data.idx("train").numpy()
    y = data.targets.truth[train]

    def fit() -> dict[str, np.ndarray]:
        x_tr, x_te = view.baseline_matrices(train, test)
        return {"out": data.task.baseline_predict(x_tr, y, x_te, data.meta)}

    got, reused = plan.features.remembered("baseline", view, fit, train, test, y, data.meta,
                                           code=(data.task.baseline_predict, type(view).baseline_matrices,
                                                 standardisation))
    if reused:
        plan.progress(1.0, "Reusing the baseline an earlier run fitted on the same features and split")
    out = got["out"]
    res = data.task.evaluate(data.targets.truth[test], out, data.meta)
    plan.baseline = {"name": view.name,
                     **{k: res[k] for k in data.task.headline + data.task.summary}, "n": res["n"]}
    plan.baseline_pred = data.task.point(out)
    if D.is_main():
        plan.folder.eval_dir.mkdir(parents=True, exist_ok=True)
        np.save(plan.folder.baseline_predictions, plan.baseline_pred)
        suspect_labels(plan, view)
