"""What changed from a parent run to the run that continued it: both judged on the test examples they share, by
the child's labels (a corrected label counts for both), with the paired interval the baseline comparison uses."""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ..errors import RunError
from ..metrics import paired_comparison, paired_mae
from .folder import RunFolder

EXAMPLES = 20  # fixed and broken examples kept for the pages and the report


def what_changed(parent: RunFolder, child: RunFolder) -> dict[str, Any]:
    for r in (parent, child):
        if not r.test_predictions.is_file():
            raise RunError(f"Run {r.id} has no test predictions to compare.")
    a, b = (_keyed(pd.read_parquet(r.test_predictions)) for r in (parent, child))
    # the same example by what it is, not by its row number: a reviewed version leaves rows out
    both = b.merge(a.drop(columns=["input", "file"], errors="ignore"), on="key", suffixes=("", "_parent"))
    out: dict[str, Any] = {"parent": parent.id, "child": child.id, "n": int(len(both)),
                           "relabelled": int((both["true"] != both["true_parent"]).sum())}
    if both.empty:
        return {**out, "note": "The two runs share no test example: their splits differ, so they cannot be compared."}
    if "error_abs" in both.columns:  # values
        truth = both["true"].to_numpy(np.float64)
        c = paired_mae(truth, both["pred"].to_numpy(np.float64), both["pred_parent"].to_numpy(np.float64))
        err, perr = (both["pred"] - both["true"]).abs(), (both["pred_parent"] - both["true"]).abs()
        out.update(vs_parent=c, mae={"parent": float(perr.mean()), "child": float(err.mean())})
        gain = perr - err  # closer to the truth than the parent: positive
        return {**out, "fixed": _rows(both.loc[gain[gain > 0].sort_values(ascending=False).index[:EXAMPLES]]),
                "broken": _rows(both.loc[gain[gain < 0].sort_values().index[:EXAMPLES]])}
    classes = sorted(set(both["true"]) | set(both["pred"]) | set(both["pred_parent"]), key=str)
    idx = {c: i for i, c in enumerate(classes)}
    y, p, q = (both[k].map(idx).to_numpy() for k in ("true", "pred", "pred_parent"))
    out["vs_parent"] = paired_comparison(y, p, q, classes)
    right, was = p == y, q == y
    out["accuracy"] = {"parent": float(was.mean()), "child": float(right.mean())}
    out["per_class"] = [{"class": str(c), "n": int((y == i).sum()),
                         "parent_recall": float(was[y == i].mean()) if (y == i).any() else None,
                         "child_recall": float(right[y == i].mean()) if (y == i).any() else None}
                        for c, i in idx.items()]
    out["fixed"] = _rows(both[right & ~was].head(EXAMPLES))
    out["broken"] = _rows(both[~right & was].head(EXAMPLES))
    return out


def _keyed(df: pd.DataFrame) -> pd.DataFrame:
    """A key per example: its input (an image's content-addressed file) and which repeat of that input it is."""
    what = df["file"].astype(str) if "file" in df.columns else df["input"].astype(str)
    return df.assign(key=what + "#" + df.groupby(what).cumcount().astype(str))


def _rows(df: pd.DataFrame) -> list[dict[str, Any]]:
    keep = [c for c in ("row", "input", "file", "true", "true_parent", "pred_parent", "pred") if c in df.columns]
    return [{k: (v.item() if hasattr(v, "item") else v) for k, v in r.items()} for r in df[keep].to_dict("records")]


def summary(changes: dict[str, Any]) -> str:
    """One sentence for the pages, the report and the CLI."""
    if not changes.get("n"):
        return changes.get("note", "")
    c, n = changes["vs_parent"], changes["n"]
    relabelled = (f" ({changes['relabelled']} of them with a corrected label)" if changes["relabelled"] else "")
    if c.get("metric") == "mae":
        head = f"Mean absolute error {changes['mae']['parent']:.3g} → {changes['mae']['child']:.3g}"
        diff = f"{c['mae_diff']:+.3g}"
    else:
        head = f"Accuracy {changes['accuracy']['parent']:.1%} → {changes['accuracy']['child']:.1%}"
        diff = f"macro-F1 {c['macro_f1_diff']:+.3f}"
    where = f"{head} on the {n:,} test examples both runs were judged on{relabelled}"
    if c["verdict"] == "same":
        return f"{where}: the same prediction on every one."
    verdict = {"better": "better than its parent", "worse": "worse than its parent",
               "within_noise": "not distinguishable from its parent"}[c["verdict"]]
    gained, lost = ("closer", "farther") if c.get("metric") == "mae" else ("fixed", "broken")
    return (f"{where}: {verdict} ({diff}, {c['level']:.0%} interval {c['low']:+.3g} to {c['high']:+.3g}); "
            f"{c.get(gained, c.get('closer', 0)):,} example(s) {gained}, {c.get(lost, 0):,} {lost}.")
