"""Leakage-free stratified train/val/test split, saved with the dataset version and reused by every run."""
from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pandas as pd
from sklearn.model_selection import GroupShuffleSplit, StratifiedGroupKFold

from ..errors import DataError
from ..fsutil import atomic_write_json, read_json
from ..tasks import get_task
from .audit import cached_audit
from .datasets import Dataset


def _fold(labels: np.ndarray, groups: np.ndarray, fraction: float, seed: int, stratified: bool) -> np.ndarray:
    """Boolean mask of about `fraction` of the rows, whole groups only."""
    n_splits = max(2, int(round(1 / fraction)))
    n_groups = len(np.unique(groups))
    if stratified and _fewest_groups(labels, groups) < n_splits:
        return _per_class(labels, groups, fraction, seed)
    if n_groups < 2:
        raise DataError(f"Only {n_groups} distinct example left (after grouping duplicates): too few for a "
                        f"{fraction:.0%} split. Add data or lower the validation/test fraction.")
    if stratified:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            cv = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
            _, idx = next(cv.split(np.zeros(len(labels)), labels, groups))
    else:
        cv = GroupShuffleSplit(n_splits=1, test_size=fraction, random_state=seed)
        _, idx = next(cv.split(np.zeros(len(labels)), labels, groups))
    mask = np.zeros(len(labels), dtype=bool)
    mask[idx] = True
    return mask


def _group_labels(labels: np.ndarray, groups: np.ndarray) -> dict[Any, str]:
    """Each duplicate group's most common label (a group is never split, so it is placed by one label)."""
    frame = pd.DataFrame({"g": groups, "y": labels})
    return frame.groupby("g", sort=False)["y"].agg(lambda s: s.value_counts().index[0]).to_dict()


def _fewest_groups(labels: np.ndarray, groups: np.ndarray) -> int:
    return int(pd.Series(_group_labels(labels, groups)).value_counts().min())


def _per_class(labels: np.ndarray, groups: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Small data: a stratified fold cannot give every class a member, so take round(fraction × groups) of each
    class's groups, at least one, leaving at least one for the rest of the split."""
    rng = np.random.default_rng(seed)
    by_class: dict[str, list] = {}
    for g, y in _group_labels(labels, groups).items():
        by_class.setdefault(y, []).append(g)
    chosen = []
    for y in sorted(by_class):
        members = list(by_class[y])
        rng.shuffle(members)
        take = min(len(members) - 1, max(1, int(round(fraction * len(members)))))
        chosen += members[:take]
    return np.isin(groups, chosen)


def rare_classes(labels: pd.Series, need: int) -> dict[str, int]:
    counts = labels.value_counts()
    return {str(k): int(v) for k, v in counts[counts < need].items()}


def _sets_fold(y: np.ndarray, groups: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Boolean mask of about `fraction` of the rows, whole duplicate groups only, by iterative stratification
    (Sechidis et al. 2011, the iterative-stratification package): each group carries the union of its rows'
    labels, and every label is spread over both sides as far as its count allows."""
    from iterstrat.ml_stratifiers import MultilabelStratifiedShuffleSplit

    uniq, inverse = np.unique(groups, return_inverse=True)
    if len(uniq) < 2:
        raise DataError(f"Only {len(uniq)} distinct example left (after grouping duplicates): too few for a "
                        f"{fraction:.0%} split. Add data or lower the validation/test fraction.")
    per_group = np.zeros((len(uniq), y.shape[1]), dtype=np.int8)
    np.maximum.at(per_group, inverse, y)
    cv = MultilabelStratifiedShuffleSplit(n_splits=1, test_size=fraction, random_state=seed)
    _, idx = next(cv.split(np.zeros((len(uniq), 1)), per_group))
    return np.isin(inverse, idx)


def make_sets_split(y: np.ndarray, groups: np.ndarray, val: float = 0.1, test: float = 0.1,
                    seed: int = 0) -> np.ndarray:
    """Several labels per row (a 0/1 matrix): 'train'/'val'/'test' by iterative stratification. A label too rare
    for every split is not refused (most tag sets have a long tail): the audit names it."""
    y, groups = np.asarray(y, dtype=np.int8), np.asarray(groups)
    out = np.full(len(y), "train", dtype=object)
    if test > 0:
        out[_sets_fold(y, groups, test, seed)] = "test"
    rest = np.flatnonzero(out == "train")
    out[rest[_sets_fold(y[rest], groups[rest], val / (1 - test), seed + 1)]] = "val"
    _check_filled(out, np.array([";".join(map(str, np.flatnonzero(r))) for r in y]), groups, val, test)
    return out


def make_split(labels: np.ndarray, groups: np.ndarray, val: float = 0.1, test: float = 0.1, seed: int = 0,
               rare_policy: str = "error") -> np.ndarray:
    """'train'/'val'/'test' per row; each duplicate group lands in exactly one split. labels: one stratum per row,
    or a 0/1 matrix of several labels per row."""
    if np.ndim(labels) == 2:
        return make_sets_split(labels, groups, val, test, seed)
    labels = np.asarray(labels).astype(str)
    groups = np.asarray(groups)
    n_classes = len(np.unique(labels))
    if n_classes < 2:
        raise DataError(f"Only one class ({labels[0]}): training needs at least two classes.")
    need = 1 + (val > 0) + (test > 0)
    rare = rare_classes(pd.Series(labels), need)
    stratified = True
    if rare:
        if rare_policy != "unstratified":
            names = ", ".join(f"'{k}' ({v} example{'s' if v > 1 else ''})" for k, v in rare.items())
            raise DataError(f"Too few examples to put in every split: {names}. Merge them into another class, "
                            "drop them, or choose a non-stratified split (Explore page, Split: 'Rare classes'; "
                           "CLI: --rare-policy unstratified).")
        stratified = False
    out = np.full(len(labels), "train", dtype=object)
    idx_all = np.arange(len(labels))
    if test > 0:
        t = _fold(labels, groups, test, seed, stratified)
        out[t] = "test"
    rest = idx_all[out == "train"]
    v = _fold(labels[rest], groups[rest], val / (1 - test), seed + 1, stratified)
    out[rest[v]] = "val"
    _check_filled(out, labels, groups, val, test)
    return out


def _check_filled(out: np.ndarray, labels: np.ndarray, groups: np.ndarray, val: float, test: float) -> None:
    """Every split asked for holds rows: duplicate groups (near ones too) never split, so a handful of groups
    may leave one empty; that is said here, with the counts, not found by a metric on no rows."""
    empty = [name for name, asked in (("train", 1), ("validation", val), ("test", test))
             if asked > 0 and not (out == name.replace("validation", "val")).any()]
    if not empty:
        return
    per = pd.Series(_group_labels(labels, groups)).value_counts()
    counts = ", ".join(f"'{k}' {v}" for k, v in per.items())
    raise DataError(f"The {' and '.join(empty)} split would be empty: after grouping exact and near duplicates "
                    f"(a group never spans two splits) the data holds {len(per)} distinct group(s) ({counts}). "
                    "Add examples, or look at the duplicate groups on the Explore page.")


def dataset_split(ds: Dataset, group_ids: list[int] | np.ndarray | None = None, val: float = 0.1,
                  test: float = 0.1, seed: int = 0, rare_policy: str = "error",
                  task: str = "classification", label_sep: str | None = None) -> np.ndarray:
    """The split for this dataset version and these settings: computed once, then read from disk.
    Stratified by what the task balances (classes, bins of a numeric target, or each of several labels)."""
    kind = get_task(task)
    sep = {";": "semicolon", "|": "bar", ",": "comma"}.get(label_sep or "", "") if kind.several else ""
    key = f"val{val:g}-test{test:g}-seed{seed}-{rare_policy}{kind.split_suffix}{'-' + sep if sep else ''}"
    path = ds.splits_dir / f"{key}.json"
    saved = read_json(path)
    if saved and len(saved["split"]) == len(ds.items):
        return np.array(saved["split"], dtype=object)
    if group_ids is None:
        group_ids = cached_audit(ds).group_ids
    strata = kind.strata(kind.read_labels(ds.items["label"].tolist(), label_sep), label_sep)
    split = make_split(strata, np.asarray(group_ids), val, test, seed, rare_policy)
    atomic_write_json(path, {"key": key, "split": split.tolist()})
    return split


def carry_splits(parent: Dataset, child: Dataset, keep: np.ndarray) -> int:
    """Every split made for parent, as child's (child's rows are parent's rows at keep, in order): an example keeps
    its split across versions. Returns how many split settings were carried."""
    n = 0
    for f in sorted(parent.splits_dir.glob("*.json")):
        saved = read_json(f)
        if saved and len(saved["split"]) == len(parent.items):
            atomic_write_json(child.splits_dir / f.name,
                              {**saved, "split": np.asarray(saved["split"], dtype=object)[keep].tolist()})
            n += 1
    return n


def label_split_summary(rows: list[tuple[str, ...]], split: np.ndarray) -> pd.DataFrame:
    """Several labels per row: how many examples carry each label in each split."""
    long = pd.DataFrame([(c, s) for r, s in zip(rows, split) for c in r], columns=["label", "split"])
    return split_summary(long["label"].rename("label"), long["split"].to_numpy()).rename_axis("label")


def split_summary(labels: pd.Series, split: np.ndarray) -> pd.DataFrame:
    return pd.crosstab(pd.Series(labels.to_numpy(), name="class"), pd.Series(split, name="split")).reindex(
        columns=[c for c in ("train", "val", "test") if c in set(split)])
