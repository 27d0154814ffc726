"""Duplicates, near duplicates, conflicts, leakage, fixes and the leakage-free split."""
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from core.data import audit as A
from core.data import near
from core.data.split import dataset_split, make_split
from core.errors import DataError


def text_ds(stores, tmp_path, rows):
    datasets, _ = stores
    p = tmp_path / "d.csv"
    pd.DataFrame(rows, columns=["text", "label"]).to_csv(p, index=False)
    return datasets.ingest(p).dataset


_rng = np.random.default_rng(0)
_VOCAB = [f"w{i}" for i in range(2000)]
BASE = [(" ".join(_rng.choice(_VOCAB, 30)), f"c{i % 3}") for i in range(60)]


def one_word_changed(text: str) -> str:
    words = text.split()
    words[15] = "changed"
    return " ".join(words)


def test_exact_near_and_conflicts(stores, tmp_path):
    rows = BASE + [
        ("  " + BASE[1][0].upper().replace(" ", "  "), BASE[1][1]),  # exact after normalisation
        (BASE[2][0], "c0"),  # exact, conflicting label
        (one_word_changed(BASE[5][0]), BASE[5][1]),  # near duplicate of row 5
    ]
    ds = text_ds(stores, tmp_path, rows)
    rep = A.audit(ds)
    s = rep.summary()
    assert s["exact_duplicates"] == 2 and s["exact_duplicate_groups"] == 2
    assert s["near_duplicate_groups"] == 1
    assert s["label_conflicts"] == 1 and rep.conflicts[0]["labels"] == {"c2": 1, "c0": 1}
    assert rep.near_groups == [[5, 62]]
    assert len(set(rep.group_ids)) == 60


def test_fixes_make_new_versions(stores, tmp_path):
    datasets, _ = stores
    rows = BASE + [(BASE[0][0], BASE[0][1]), (BASE[1][0], "c0"), (BASE[1][0], BASE[1][1])]
    ds = text_ds(stores, tmp_path, rows)
    rep = A.audit(ds)
    dedup = datasets.derive(ds, A.drop_duplicates(ds.items, rep), "dedupe")
    assert len(dedup.items) == 60 and dedup.manifest["parent"] == ds.id
    maj = A.resolve_conflicts(ds.items, rep, "majority")
    assert (maj[maj["text"] == BASE[1][0]]["label"] == "c1").all()
    dropped = A.resolve_conflicts(ds.items, rep, "drop")
    assert BASE[1][0] not in set(dropped["text"])
    assert len(datasets.get(ds.id).items) == 63  # the original is untouched


def test_split_keeps_groups_together_and_is_stratified(stores, tmp_path):
    rows = BASE * 2 + BASE[:10]
    ds = text_ds(stores, tmp_path, rows)
    rep = A.audit(ds)
    assert rep.naive_leaks > 0
    split = dataset_split(ds, rep.group_ids, 0.1, 0.1, seed=0)
    per_group = pd.DataFrame({"g": rep.group_ids, "s": split}).groupby("g")["s"].nunique()
    assert (per_group == 1).all()
    tab = pd.crosstab(ds.items["label"], split)
    assert (tab[["train", "val", "test"]] > 0).all().all()
    again = dataset_split(ds, None, 0.1, 0.1, seed=0)  # read back from disk, same split
    assert (again == split).all()


def test_rare_classes_named_with_choices():
    labels = np.array(["a"] * 20 + ["b"] * 20 + ["lonely"])
    with pytest.raises(DataError, match="'lonely' \\(1 example\\).*Merge.*drop.*non-stratified"):
        make_split(labels, np.arange(len(labels)))
    split = make_split(labels, np.arange(len(labels)), rare_policy="unstratified")
    assert set(split) == {"train", "val", "test"}


def test_one_class_blocks_training():
    with pytest.raises(DataError, match="Only one class"):
        make_split(np.array(["a"] * 10), np.arange(10))


def test_merge_and_drop_rare():
    items = pd.DataFrame({"text": list("abcde"), "label": ["x", "x", "y", "z", "z"]})
    assert A.merge_classes(items, ["y"], "other")["label"].tolist() == ["x", "x", "other", "z", "z"]
    assert A.drop_classes(items, ["y"])["label"].tolist() == ["x", "x", "z", "z"]


def test_image_near_duplicates_found(stores, tmp_path):
    datasets, _ = stores
    rng = np.random.default_rng(0)
    for c in ("a", "b"):
        (tmp_path / "im" / c).mkdir(parents=True)
    pics = [Image.fromarray((rng.random((16, 16, 3)) * 255).astype(np.uint8)).resize((128, 128)) for _ in range(6)]
    for i, p in enumerate(pics):
        p.save(tmp_path / "im" / ("a" if i % 2 else "b") / f"{i}.png")
    pics[0].resize((97, 97)).save(tmp_path / "im" / "a" / "copy0.jpg", quality=85)  # re-encoded, other label
    ds = datasets.ingest(tmp_path / "im").dataset
    rep = A.audit(ds)
    assert len(rep.near_groups) == 1 and len(rep.near_groups[0]) == 2
    assert len(rep.conflicts) == 1 and rep.conflicts[0]["kind"] == "near"


def test_band_pairs_star_for_degenerate_buckets():
    keys = np.zeros((1000, 1), dtype=np.uint64)
    pairs = near._band_pairs(keys, max_bucket=64)
    assert len(pairs) == 999  # linked as a star, not 499,500 pairs


def test_identical_image_files_across_classes_are_exact_conflicts(stores, tmp_path):
    datasets, _ = stores
    rng = np.random.default_rng(1)
    for c in ("a", "b"):
        (tmp_path / "im" / c).mkdir(parents=True)
    for i in range(40):
        Image.fromarray((rng.random((8, 8, 3)) * 255).astype(np.uint8)).save(tmp_path / "im" / "a" / f"{i}.png")
    same = (tmp_path / "im" / "a" / "0.png").read_bytes()
    for i in range(30):  # many identical copies ingested concurrently
        (tmp_path / "im" / "b" / f"copy{i}.png").write_bytes(same)
    ds = datasets.ingest(tmp_path / "im").dataset
    assert len(ds.items) == 70 and not ds.manifest["bad"]
    rep = A.audit(ds)
    assert rep.exact_duplicates == 30 and len(rep.conflicts) == 1 and rep.conflicts[0]["kind"] == "exact"


def test_images_that_differ_only_in_colour_are_not_duplicates(tmp_path, stores):
    """A red and a blue part of the same shape used to become one near-duplicate group with a label
    conflict, and such a dataset could not be split ('Only 1 distinct examples')."""
    import numpy as np
    from PIL import Image

    from core.data.audit import audit
    from core.data.split import dataset_split

    datasets, _ = stores
    rng = np.random.default_rng(0)
    for label, rgb in {"red": (200, 30, 30), "blue": (30, 30, 200)}.items():
        d = tmp_path / "parts" / label
        d.mkdir(parents=True)
        for i in range(12):
            arr = np.zeros((48, 48, 3), np.uint8)
            arr[8:40, 12 + (i % 3):36 + (i % 3)] = rgb  # the same shape in both classes
            arr[rng.integers(0, 48), rng.integers(0, 48)] = rng.integers(0, 255, 3)  # every file unique
            Image.fromarray(arr).save(d / f"{i}.png")
    ds = datasets.ingest(tmp_path / "parts").dataset
    rep = audit(ds)
    assert rep.conflicts == []
    assert all(len(set(ds.items["label"].iloc[g])) == 1 for g in rep.near_groups)
    split = dataset_split(ds, rep.group_ids, 0.2, 0.2)
    assert set(split) == {"train", "val", "test"}


def test_labels_that_look_alike_are_shown_not_merged_and_merge_in_one_step(tmp_path, stores):
    import unicodedata

    import pandas as pd

    from core.data.audit import audit, merge_lookalikes

    datasets, _ = stores
    cafe, cafe_d = "café", unicodedata.normalize("NFD", "café")
    labels = ["1", "1.0", " 1 ", "01", "Tea", "tea", cafe, cafe_d, "2"] * 3
    p = tmp_path / "t.csv"
    pd.DataFrame({"text": [f"example number {i} with words" for i in range(len(labels))], "label": labels}).to_csv(p, index=False)
    ds = datasets.ingest(p).dataset
    assert len(ds.classes) == 9  # nothing merged silently
    rep = audit(ds)
    groups = {frozenset(g["labels"]) for g in rep.lookalike_labels}
    assert frozenset({"1", "1.0", " 1 ", "01"}) in groups and frozenset({"Tea", "tea"}) in groups
    assert frozenset({cafe, cafe_d}) in groups
    assert any("look alike" in a for a in rep.advice)
    merged = merge_lookalikes(ds.items, rep.lookalike_labels)
    assert sorted(merged["label"].unique()) == sorted({"1", "Tea", cafe, "2"}) or len(merged["label"].unique()) == 4


def test_many_distinct_numbers_suggest_regression(tmp_path, stores):
    import pandas as pd

    from core.data.audit import audit

    datasets, _ = stores
    p = tmp_path / "prices.csv"
    pd.DataFrame({"text": [f"a flat with {i % 7} rooms near the park number {i}" for i in range(80)],
                  "label": [f"{100 + i * 3.5:.1f}" for i in range(80)]}).to_csv(p, index=False)
    rep = audit(datasets.ingest(p).dataset)
    assert rep.numeric_labels and any("regression" in a for a in rep.advice)


def test_small_objects_of_another_colour_are_not_near_duplicates_but_re_encodes_are(tmp_path, stores):
    """A red and a blue disc of the same size on white move the quarters' mean colours only a little; the hues
    of the coloured pixels tell them apart. A JPEG re-encode of either stays its near duplicate."""
    from PIL import Image, ImageDraw

    from core.data.audit import audit

    datasets, _ = stores
    for label, rgb in {"red": (220, 30, 30), "blue": (30, 30, 220), "green": (30, 200, 30)}.items():
        d = tmp_path / "discs" / label
        d.mkdir(parents=True)
        for i in range(6):
            im = Image.new("RGB", (64, 64), (255, 255, 255))
            r = 6 + i * 4
            ImageDraw.Draw(im).ellipse((32 - r, 32 - r, 32 + r, 32 + r), fill=rgb)
            im.save(d / f"{i}.png")
        im.save(d / "copy.jpg", quality=80)  # the last disc again, re-encoded
    ds = datasets.ingest(tmp_path / "discs").dataset
    rep = audit(ds)
    assert rep.conflicts == []
    assert sorted(sorted(ds.items["source"].iloc[g].str.split("/").str[-1]) for g in rep.near_groups) == \
        [["5.png", "copy.jpg"]] * 3
