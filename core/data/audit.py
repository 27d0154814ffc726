"""Can this data be trusted? Exact and near duplicates, label conflicts, and leakage across splits.

Near duplicates are found with locality-sensitive hashing, so cost grows about linearly with the data:
texts by MinHash over word uni+bi-grams (banded), images by 64-bit perceptual hashes (banded Hamming).
"""
from __future__ import annotations

import unicodedata
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

import numpy as np
import pandas as pd
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from ..fsutil import atomic_write_json, read_json
from ..tasks.multilabel import detect_separator, without_labels
from .datasets import Dataset
from .near import WHITESPACE


def _components(n: int, pairs: np.ndarray) -> np.ndarray:
    if len(pairs) == 0:
        return np.arange(n)
    g = coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(n, n))
    return connected_components(g, directed=False)[1]


def _groups_of(ids: np.ndarray) -> list[list[int]]:
    s = pd.Series(np.arange(len(ids))).groupby(ids).agg(list)
    return [g for g in s.tolist() if len(g) > 1]


# --------------------------------------------------------------------------- report
@dataclass
class AuditReport:
    rows: int
    classes: dict[str, int]
    exact_groups: list[list[int]] = field(default_factory=list)
    near_groups: list[list[int]] = field(default_factory=list)
    conflicts: list[dict[str, Any]] = field(default_factory=list)
    group_ids: list[int] = field(default_factory=list)
    naive_leaks: int = 0
    advice: list[str] = field(default_factory=list)
    lookalike_labels: list[dict[str, Any]] = field(default_factory=list)
    numeric_labels: bool = False  # most labels are numbers with many distinct values: a regression target?
    label_numbers: dict[str, Any] | None = None  # labels that are numbers: classes or regression? (asked)

    @property
    def exact_duplicates(self) -> int:
        return sum(len(g) - 1 for g in self.exact_groups)

    def summary(self) -> dict[str, Any]:
        return {"rows": self.rows, "classes": self.classes, "exact_duplicates": self.exact_duplicates,
                "exact_duplicate_groups": len(self.exact_groups), "near_duplicate_groups": len(self.near_groups),
                "label_conflicts": len(self.conflicts), "naive_split_leaking_groups": self.naive_leaks,
                "lookalike_labels": self.lookalike_labels, "numeric_labels": self.numeric_labels,
                "advice": self.advice}

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "AuditReport":
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in d.items() if k in known})


def cached_audit(ds: Dataset, progress: Callable[[float, str], None] | None = None) -> AuditReport:
    """Datasets are immutable, so each version is audited once and the report kept beside it."""
    path = ds.dir / "audit.json"
    saved = read_json(path)
    # a report an older version wrote lacks what this one checks: audited again
    if saved and saved.get("rows") == len(ds.items) and set(AuditReport.__dataclass_fields__) <= set(saved):
        return AuditReport.from_dict(saved)
    rep = audit(ds, progress)
    try:
        atomic_write_json(path, rep.to_dict())
    except OSError:
        pass  # a read-only store still audits, just every time
    return rep


def audit(ds: Dataset, progress: Callable[[float, str], None] | None = None) -> AuditReport:
    progress = progress or (lambda f, m: None)
    items = ds.items
    n = len(items)
    labels = items["label"].astype(str).to_numpy()
    progress(0.05, "Finding exact duplicates")
    keys = ds.kind.duplicate_keys(items)
    exact_id = pd.factorize(keys)[0]
    first_of = pd.Series(np.arange(n)).groupby(exact_id).first().to_numpy()
    progress(0.3, "Searching for near duplicates")
    uniq = first_of
    pairs_u = ds.kind.near_pairs(items, keys, uniq)
    near_u = _components(len(uniq), pairs_u)
    group = near_u[exact_id]
    progress(0.8, "Checking label conflicts and leakage")

    exact_groups = _groups_of(exact_id)
    near_groups = [g for g in _groups_of(group) if len(set(exact_id[g])) > 1]
    conflicts = []
    sep = detect_separator(labels.tolist())  # several labels per cell: "b; a" and "a;b" are the same set
    sets = np.array(without_labels(labels.tolist(), set(), sep), dtype=object) if sep else labels
    for g in _groups_of(group):
        labs = Counter(sets[g])
        if len(labs) > 1:
            kind = "exact" if len(set(exact_id[g])) == 1 else "near"
            conflicts.append({"rows": g, "labels": dict(labs), "kind": kind,
                              "example": ds.display(g[0])[:200]})
    rep = AuditReport(rows=n, classes={str(k): int(v) for k, v in pd.Series(labels).value_counts().items()},
                      exact_groups=exact_groups, near_groups=near_groups, conflicts=conflicts,
                      group_ids=group.tolist())
    rep.naive_leaks = _naive_leaks(group)
    rep.lookalike_labels = lookalike_labels(labels)
    rep.numeric_labels = looks_numeric(labels)
    rep.label_numbers = label_numbers(labels)
    rep.advice = _advice(rep, ds)
    progress(1.0, "Audit done")
    return rep


def _label_key(label: str) -> str:
    """What two labels that a person would call the same have in common: Unicode composition, case, spacing,
    and for numbers their value ('1', '1.0', ' 01')."""
    norm = WHITESPACE.sub(" ", unicodedata.normalize("NFKC", label)).strip()
    try:
        return f"number:{float(norm)!r}"
    except ValueError:
        return "text:" + norm.casefold()


def lookalike_labels(labels) -> list[dict[str, Any]]:
    """Groups of labels written differently that look like one class; merged only when a person says so."""
    counts = Counter(str(v) for v in labels)
    groups: dict[str, list[str]] = {}
    for lab in counts:
        groups.setdefault(_label_key(lab), []).append(lab)
    out = []
    for members in groups.values():
        if len(members) > 1:
            ranked = sorted(members, key=lambda m: (-counts[m], m))
            out.append({"labels": {m: counts[m] for m in ranked}, "into": ranked[0]})
    return sorted(out, key=lambda g: -sum(g["labels"].values()))


def label_numbers(labels) -> dict[str, Any] | None:
    """Labels that are numbers with three or more distinct values (1-5 stars, 0-10 scores): they could be classes
    (each value its own category, unordered) or a number to predict (regression, which knows 4 lies between 3 and
    5). Returned so a person is asked, with this: how many values, a few of them, and whether so many distinct
    values point to regression. None when the labels are not such numbers (two values read as two classes)."""
    values = pd.to_numeric(pd.Series(labels, dtype=object).astype(str).str.strip(), errors="coerce")
    if not len(values) or values.notna().mean() < 0.95 or values.nunique() < 3:
        return None
    distinct = np.sort(values.dropna().unique())
    shown = [f"{v:g}" for v in distinct[:6]] + (["…"] if len(distinct) > 6 else [])
    return {"distinct": int(len(distinct)), "values": shown, "regression_likely": bool(len(distinct) > 20),
            "why": f"The labels are numbers ({', '.join(shown)}; {len(distinct)} distinct): as classes each value is "
                   "its own category and their order is ignored; as numbers (regression) the model predicts a "
                   "value and knows that a 4 lies between a 3 and a 5."}


def looks_numeric(labels, min_distinct: int = 20) -> bool:
    values = pd.to_numeric(pd.Series(labels, dtype=object).astype(str).str.strip(), errors="coerce")
    return bool(len(values) and values.notna().mean() >= 0.95 and values.nunique() > min_distinct)


def merge_lookalikes(items: pd.DataFrame, groups: list[dict[str, Any]]) -> pd.DataFrame:
    items = items.copy()
    for g in groups:
        items.loc[items["label"].isin(list(g["labels"])), "label"] = g["into"]
    return items


def _naive_leaks(group: np.ndarray, seed: int = 0) -> int:
    """How many duplicate groups a plain random 80/10/10 split would spread over more than one split."""
    rng = np.random.default_rng(seed)
    split = rng.choice(3, size=len(group), p=[0.8, 0.1, 0.1])
    df = pd.DataFrame({"g": group, "s": split})
    per = df.groupby("g")["s"].nunique()
    return int((per > 1).sum())


def _advice(rep: AuditReport, ds: Dataset) -> list[str]:
    out = []
    counts = pd.Series(rep.classes)
    if len(counts) < 2:
        out.append(f"Only one class ({counts.index[0]}): a classifier needs at least two. Add examples of other classes.")
    elif counts.max() / max(counts.min(), 1) >= 5:
        out.append(f"Imbalanced: '{counts.idxmax()}' has {counts.max()} examples, '{counts.idxmin()}' only "
                   f"{counts.min()}. Use class weighting (Train page) and judge by macro-F1, not accuracy.")
    if rep.numeric_labels:
        out.append(f"The labels are numbers with {len(counts)} distinct values: this looks like a number to "
                   "predict (regression) rather than classes. Choose 'numbers (regression)' on the Train page.")
    elif rep.label_numbers:
        out.append(rep.label_numbers["why"] + " Say which on the Train page.")
    if rep.lookalike_labels:
        names = "; ".join(" / ".join(repr(k) for k in g["labels"]) for g in rep.lookalike_labels[:3])
        out.append(f"{len(rep.lookalike_labels)} group(s) of labels look alike but are written differently ({names}); "
                   "they count as separate classes until you merge them.")
    rare = counts[counts < 3]
    if len(rare):
        out.append(f"Too few examples to split: {', '.join(f'{k} ({v})' for k, v in rare.items())}. "
                   "Merge, drop, or use a non-stratified split.")
    if rep.exact_duplicates:
        out.append(f"{rep.exact_duplicates} example(s) repeat an earlier one; drop them to avoid inflated scores.")
    if rep.conflicts:
        out.append(f"{len(rep.conflicts)} input(s) appear with different labels; resolve by majority or drop.")
    if rep.naive_leaks:
        out.append(f"A random split would put {rep.naive_leaks} duplicate group(s) on both sides; "
                   "the studio's split keeps each group together.")
    return out


# --------------------------------------------------------------------------- fixes (each returns kept rows)
def drop_duplicates(items: pd.DataFrame, rep: AuditReport, near: bool = False) -> pd.DataFrame:
    """Keep one example per duplicate group: the first one carrying the group's majority label."""
    groups = rep.near_groups + rep.exact_groups if near else rep.exact_groups
    drop: set[int] = set()
    labels = items["label"].to_numpy()
    for g in groups:
        g = [i for i in g if i not in drop]
        if len(g) < 2:
            continue
        top = Counter(labels[g]).most_common(1)[0][0]
        keep = next(i for i in g if labels[i] == top)
        drop.update(i for i in g if i != keep)
    return items.drop(index=items.index[sorted(drop)])


def resolve_conflicts(items: pd.DataFrame, rep: AuditReport, mode: str = "majority") -> pd.DataFrame:
    """majority: relabel each conflicting group to its most common label (ties are dropped); drop: remove them."""
    items = items.copy()
    drop: list[int] = []
    for c in rep.conflicts:
        rows = c["rows"]
        ranked = Counter(c["labels"]).most_common()
        if mode == "drop" or (len(ranked) > 1 and ranked[0][1] == ranked[1][1]):
            drop.extend(rows)
        else:
            items.iloc[rows, items.columns.get_loc("label")] = ranked[0][0]
    return items.drop(index=items.index[drop])


def drop_classes(items: pd.DataFrame, classes: list[str]) -> pd.DataFrame:
    return items[~items["label"].isin(classes)]


def drop_labels(items: pd.DataFrame, labels: list[str], sep: str) -> pd.DataFrame:
    """Several labels per example: take these labels out of every cell; an example left with none is dropped."""
    items = items.copy()
    items["label"] = without_labels(items["label"].tolist(), set(labels), sep)
    return items[items["label"] != ""]


def merge_classes(items: pd.DataFrame, classes: list[str], into: str = "other") -> pd.DataFrame:
    items = items.copy()
    items.loc[items["label"].isin(classes), "label"] = into
    return items


# --------------------------------------------------------------------------- a test file against training data
def cross_duplicates(train: Dataset, test: Dataset, max_examples: int = 5) -> dict[str, Any]:
    """Test rows that repeat, exactly or nearly, a row of the training data: scores on them measure memory, not
    generalisation. Same methods as the audit (normalised text / file content, MinHash / perceptual hashes)."""
    n = len(train.items)
    both = pd.concat([train.items, test.items], ignore_index=True)
    keys = train.kind.duplicate_keys(both)
    pairs = train.kind.near_pairs(both, keys, np.arange(len(both)))
    exact_id = pd.factorize(keys)[0]
    in_train = set(exact_id[:n].tolist())
    exact = [i - n for i in range(n, len(both)) if exact_id[i] in in_train]
    cross = pairs[(pairs[:, 0] < n) != (pairs[:, 1] < n)] if len(pairs) else pairs
    near_pairs = {(int(max(a, b)) - n, int(min(a, b))) for a, b in cross}
    near = sorted({t for t, _ in near_pairs} - set(exact))
    partner = {t: s for t, s in sorted(near_pairs)}
    first_train = {k: i for i, k in reversed(list(enumerate(exact_id[:n])))}
    examples = [{"test_row": t, "test": test.display(t)[:200], "train": train.display(first_train[exact_id[n + t]])[:200],
                 "kind": "exact"} for t in exact[:max_examples]]
    examples += [{"test_row": t, "test": test.display(t)[:200], "train": train.display(partner[t])[:200],
                  "kind": "near"} for t in near[:max(0, max_examples - len(examples))]]
    return {"test_rows_total": int(len(test.items)), "exact": len(exact), "near": len(near),
            "test_rows": sorted(exact + near), "examples": examples}
