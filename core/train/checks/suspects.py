"""What a model that never saw them says of the training and validation examples (out of fold): the ones whose
label it confidently contradicts (suspects, listed for a person to relabel or drop: Evaluate, Explore) and the
ones it is least sure about (the review queue puts them before an expert)."""
from __future__ import annotations

import numpy as np
import pandas as pd

from ...linear import least_sure, out_of_fold, standardisation, suspects

UNSURE = 200  # least-sure examples kept: the queue shows the first of them


def suspect_labels(plan, view) -> None:
    data, seed = plan.data, plan.cfg.train.seed
    rows, train = np.flatnonzero(data.split != "test"), data.idx("train").numpy()
    truth = data.targets.truth[rows]

    def check() -> dict[str, np.ndarray]:
        probs = data.task.out_of_fold(view.suspect_matrix(rows, train), truth, data.meta, seed)
        return {} if probs is None else {"probs": probs}

    got, reused = plan.features.remembered("out_of_fold", view, check, rows, train, truth, data.meta, seed,
                                           code=(data.task.out_of_fold, type(view).suspect_matrix, standardisation,
                                                 out_of_fold))
    if not got:
        return
    if reused:
        plan.progress(1.0, "Reusing the label check an earlier run made on the same features and split")
    probs, c, y = got["probs"], data.classes, data.targets.truth
    plan.folder.eval_dir.mkdir(parents=True, exist_ok=True)
    for pos, path in ((suspects(probs, truth), plan.folder.suspects_file),
                      (least_sure(probs.max(1), len(c))[:UNSURE], plan.folder.unsure_file)):
        at = rows[pos]
        pd.DataFrame({"row": at, "input": [data.display[i] for i in at], "given": [c[y[i]] for i in at],
                      "suggested": [c[j] for j in probs[pos].argmax(1)], "p_given": probs[pos, y[at]],
                      "confidence": probs[pos].max(1)}).to_parquet(path, index=False)
