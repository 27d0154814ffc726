"""Training and validation examples whose label an out-of-fold model confidently contradicts: listed for a person
to relabel or drop (Evaluate, Explore)."""
from __future__ import annotations

import numpy as np
import pandas as pd

from ...linear import out_of_fold, standardisation, suspects


def suspect_labels(plan, view) -> None:
    data, seed = plan.data, plan.cfg.train.seed
    rows, train = np.flatnonzero(data.split != "test"), data.idx("train").numpy()
    truth = data.targets.truth[rows]

    def check() -> dict[str, np.ndarray]:
        found = data.task.suspects(view.suspect_matrix(rows, train), truth, data.meta, seed)
        return {} if found is None else dict(zip(("pos", "probs"), found))

    got, reused = plan.features.remembered("suspects", view, check, rows, train, truth, data.meta, seed,
                                           code=(data.task.suspects, type(view).suspect_matrix, standardisation,
                                                 out_of_fold, suspects))
    if not got:
        return
    if reused:
        plan.progress(1.0, "Reusing the label check an earlier run made on the same features and split")
    pos, probs = got["pos"], got["probs"]
    c, y = data.classes, data.targets.truth
    df = pd.DataFrame({"row": rows[pos], "input": [data.display[i] for i in rows[pos]],
                       "given": [c[y[i]] for i in rows[pos]], "suggested": [c[j] for j in probs.argmax(1)],
                       "p_given": probs[np.arange(len(pos)), y[rows[pos]]], "confidence": probs.max(1)})
    plan.folder.eval_dir.mkdir(parents=True, exist_ok=True)
    df.to_parquet(plan.folder.suspects_file, index=False)
