"""The review queue: the examples of a run's data most worth an expert's look, the decisions the expert makes on
them (saved one line each as they are made, with who and when), and the new dataset version those decisions make.
The version records its parent and every change, and keeps each example in the split it was in, so a run continued
on it is judged on the same test examples as the run the expert reviewed."""
from __future__ import annotations

import json
import time
from typing import Any

import numpy as np
import pandas as pd

from ..errors import DataError
from ..fsutil import atomic_write_json, read_json
from ..linear import least_sure
from .audit import cached_audit
from .datasets import Dataset, DatasetStore
from .split import carry_splits

REASONS = {
    "suspect": "a model that never saw it confidently predicts another label",
    "error": "the model is confidently wrong on it (test)",
    "unsure": "the model is least sure about it (test)",
    "unsure_oof": "a model that never saw it is least sure about it",
    "conflict": "the same or a near-identical input carries another label",
}
DECISIONS = {
    "accept": "the given label is right",
    "relabel": "the label is wrong: the expert gives the right one",
    "ambiguous": "nobody can be sure: left out of the new version, recorded as ambiguous",
    "remove": "not a valid example: left out of the new version",
}
PER_REASON = 25


def review_queue(ds: Dataset, suspects: pd.DataFrame | None = None, test: pd.DataFrame | None = None,
                 unsure: pd.DataFrame | None = None, per_reason: int = PER_REASON) -> pd.DataFrame:
    """One row per example worth a look, most reasons and most confident first: position in the version, input,
    the given label, what the model says, why it is listed and the decision so far. suspects and test: a run's
    out-of-fold suspects, test predictions and out-of-fold least-sure examples on this very version (rows are
    positions in it)."""
    found: dict[int, dict[str, Any]] = {}

    def add(pos: int, reason: str, predicted: Any = None, confidence: float | None = None) -> None:
        e = found.setdefault(pos, {"reasons": [], "predicted": None, "confidence": None})
        if reason not in e["reasons"]:
            e["reasons"].append(reason)
        if predicted is not None and (e["confidence"] is None or (confidence or 0) > e["confidence"]):
            e["predicted"], e["confidence"] = predicted, confidence

    if suspects is not None and len(suspects):
        for _, r in suspects.sort_values("confidence", ascending=False).head(per_reason).iterrows():
            add(int(r["row"]), "suspect", r["suggested"], float(r["confidence"]))
    if test is not None and len(test):
        own = test[~test["row"].astype(str).str.startswith("test:")]  # a test file of the user's own is not this data
        if "confidence" in own.columns:
            wrong = own[own["true"] != own["pred"]].sort_values("confidence", ascending=False).head(per_reason)
            for _, r in wrong.iterrows():
                add(int(r["row"]), "error", r["pred"], float(r["confidence"]))
            k = sum(c.startswith("p:") for c in own.columns) or 2
            for _, r in own.iloc[least_sure(own["confidence"].to_numpy(), k)[:per_reason]].iterrows():
                add(int(r["row"]), "unsure", r["pred"], float(r["confidence"]))
        else:  # values: the largest errors
            for _, r in own.sort_values("error_abs", ascending=False).head(per_reason).iterrows():
                add(int(r["row"]), "error", r["pred"])
    if unsure is not None and len(unsure):
        for _, r in unsure.sort_values("confidence").head(per_reason).iterrows():
            add(int(r["row"]), "unsure_oof", r["suggested"], float(r["confidence"]))
    for c in cached_audit(ds).conflicts[:per_reason]:
        for pos in c["rows"]:
            add(int(pos), "conflict")
    made = decisions(ds)
    rows = []
    for pos, e in found.items():
        if not 0 <= pos < len(ds.items):
            continue
        d = made.get(pos, {})
        rows.append({"pos": pos, "input": ds.display(pos), "label": str(ds.items["label"].iloc[pos]),
                     "predicted": None if e["predicted"] is None else str(e["predicted"]),
                     "confidence": e["confidence"], "why": "; ".join(REASONS[r] for r in e["reasons"]),
                     "reasons": ",".join(e["reasons"]), "decision": d.get("decision", ""),
                     "new_label": d.get("label"), "by": d.get("who"), "n_reasons": len(e["reasons"])})
    if ds.kind.file_inputs:
        paths = ds.inputs()
        for r in rows:
            r["file"] = paths[r["pos"]]
    out = pd.DataFrame(rows, columns=["pos", "input", "label", "predicted", "confidence", "why", "reasons",
                                      "decision", "new_label", "by", "n_reasons"] + (["file"] if ds.kind.file_inputs
                                                                                    else []))
    out = out.sort_values(["n_reasons", "confidence"], ascending=[False, False], na_position="last")
    return out.drop(columns="n_reasons").reset_index(drop=True)


def decide(ds: Dataset, pos: int, decision: str, label: str | None = None, who: str | None = None) -> dict[str, Any]:
    """One decision, appended to the version's review file at once: a refresh or a restart keeps it; a later
    decision on the same example replaces it."""
    if decision not in DECISIONS:
        raise DataError(f"Unknown decision {decision!r}; one of: {', '.join(DECISIONS)}.")
    if not isinstance(pos, (int, np.integer)) or not 0 <= int(pos) < len(ds.items):
        raise DataError(f"Row {pos!r} is not an example of {ds.id} (it has {len(ds.items)}).")
    label = None if label is None else str(label).strip()
    if decision == "relabel" and not label:
        raise DataError(f"Row {pos}: a new label is needed to relabel it.")
    rec = {"pos": int(pos), "decision": decision, "label": label if decision == "relabel" else None,
           "who": who or "", "when": time.time()}
    with open(ds.review_file, "a", encoding="utf-8") as f:  # one short line per write: appends do not interleave
        f.write(json.dumps(rec) + "\n")
    return rec


def decisions(ds: Dataset) -> dict[int, dict[str, Any]]:
    """The latest decision per example (a line cut short by a crash is skipped)."""
    out: dict[int, dict[str, Any]] = {}
    if not ds.review_file.is_file():
        return out
    for line in ds.review_file.read_text(encoding="utf-8").splitlines():
        try:
            rec = json.loads(line)
            out[int(rec["pos"])] = rec
        except (ValueError, KeyError, TypeError):
            continue
    return out


def new_version(store: DatasetStore, ds: Dataset, who: str | None = None) -> tuple[Dataset, dict[str, Any]]:
    """The decisions as a new version of ds: labels changed, removed and ambiguous examples left out, each change
    recorded with who made it and when, every other example in the split it was in."""
    made = decisions(ds)
    changes = [d for d in made.values() if d["decision"] != "accept"
               and not (d["decision"] == "relabel" and d["label"] == str(ds.items["label"].iloc[d["pos"]]))]
    if not changes:
        raise DataError(f"No decision on {ds.id} changes a label or leaves an example out: there is nothing to make "
                        "a new version of.")
    items = ds.items.copy()
    for d in changes:
        if d["decision"] == "relabel":
            items.iat[d["pos"], items.columns.get_loc("label")] = d["label"]
    out = {d["pos"] for d in changes if d["decision"] in ("remove", "ambiguous")}
    keep = np.array([i for i in range(len(items)) if i not in out], dtype=np.int64)
    counts = {k: sum(d["decision"] == k for d in changes) for k in ("relabel", "remove", "ambiguous")}
    change = (f"review: {counts['relabel']} relabelled, {counts['remove']} removed, {counts['ambiguous']} ambiguous "
              "left out")
    new = store.derive(ds, items.iloc[keep].reset_index(drop=True), change, owner=who)
    shown = ds.displays()
    record = [{**d, "input": shown[d["pos"]][:200], "was": str(ds.items["label"].iloc[d["pos"]])} for d in changes]
    atomic_write_json(new.changes_file, {"parent": ds.id, "changes": record})
    kept_splits = carry_splits(ds, new, keep)
    return new, {"dataset": new.id, "parent": ds.id, **counts, "rows": len(keep), "splits_kept": kept_splits}


def version_changes(ds: Dataset) -> dict[str, Any] | None:
    """What a reviewed version changed from its parent (None: not made by a review)."""
    return read_json(ds.changes_file)
