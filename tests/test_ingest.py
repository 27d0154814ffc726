"""Zips, folders and tables into versioned datasets (CASES.md: images and archives)."""
import io
import stat
import zipfile

import numpy as np
import pytest
from PIL import Image

from core.data.archives import ZipLimits, extract_zip, inspect_zip
from core.errors import DataError
from tests.conftest import make_image_folder


def png(colour=(200, 0, 0), size=16) -> bytes:
    b = io.BytesIO()
    Image.new("RGB", (size, size), colour).save(b, "PNG")
    return b.getvalue()


def make_zip(path, entries: dict[str, bytes], symlink: str | None = None):
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
        if symlink:
            info = zipfile.ZipInfo(symlink)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            zf.writestr(info, "/etc/passwd")
    return path


@pytest.mark.parametrize("bad", ["../evil.png", "/abs/evil.png", "C:/evil.png", "a/../../evil.png"])
def test_unsafe_paths_reject_whole_archive(tmp_path, bad):
    z = make_zip(tmp_path / "x.zip", {"cats/1.png": png(), bad: png()})
    out = tmp_path / "out"
    with pytest.raises(DataError, match="rejected"):
        extract_zip(z, out)
    assert not out.exists() or not any(out.rglob("*"))
    assert not (tmp_path / "evil.png").exists()


def test_symlink_entry_rejected(tmp_path):
    z = make_zip(tmp_path / "x.zip", {"cats/1.png": png()}, symlink="cats/link.png")
    with pytest.raises(DataError, match="symbolic link"):
        inspect_zip(z)


def test_zip_bomb_ratio_and_total_caps(tmp_path):
    z = make_zip(tmp_path / "bomb.zip", {"a/big.png": b"\0" * (8 << 20)})
    with pytest.raises(DataError, match="zip bomb"):
        inspect_zip(z)
    z2 = make_zip(tmp_path / "many.zip", {f"a/{i}.png": png() for i in range(5)})
    with pytest.raises(DataError, match="limit"):
        inspect_zip(z2, ZipLimits(max_total_bytes=100))


def test_streaming_cap_catches_lying_headers(tmp_path):
    z = make_zip(tmp_path / "x.zip", {"a/1.png": b"\1" * 5000})
    raw = bytearray(z.read_bytes())  # declare 10 bytes uncompressed in both headers
    for sig, off in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):
        i = raw.find(sig)
        raw[i + off:i + off + 4] = (10).to_bytes(4, "little")
    z.write_bytes(bytes(raw))
    limits = ZipLimits(max_entry_bytes=10**9, max_total_bytes=1000, max_ratio=1e9)
    inspect_zip(z, limits)  # the headers alone look fine
    with pytest.raises(DataError, match="size limit|damaged"):
        extract_zip(z, tmp_path / "out", limits)
    assert not (tmp_path / "out").exists()


def test_encrypted_zip_not_supported(tmp_path):
    z = make_zip(tmp_path / "enc.zip", {"a/1.png": png()})
    raw = bytearray(z.read_bytes())
    for sig, off in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        i = raw.find(sig)
        raw[i + off] |= 0x1
    z.write_bytes(bytes(raw))
    with pytest.raises(DataError, match="encrypted"):
        inspect_zip(z)


def test_zip_with_wrapper_folder_and_mac_junk(tmp_path, stores):
    datasets, _ = stores
    entries = {"photos/cats/1.png": png((200, 0, 0)), "photos/cats/2.png": png((190, 10, 0)),
               "photos/dogs/1.png": png((0, 0, 200)), "photos/dogs/2.png": png((0, 10, 190)),
               "__MACOSX/photos/cats/._1.png": b"junk", "photos/.DS_Store": b"junk", "photos/dogs/.hidden.png": png()}
    res = datasets.ingest(make_zip(tmp_path / "pets.zip", entries))
    ds = res.dataset
    assert ds.modality == "image" and sorted(ds.classes) == ["cats", "dogs"]
    assert any("wrapper" in n for n in res.notes)
    assert len(ds.items) == 4


def test_bad_files_listed_rest_loads(tmp_path, stores):
    datasets, _ = stores
    root = make_image_folder(tmp_path / "imgs", per_class=3)
    (root / "red" / "broken.jpg").write_bytes(png()[:40])
    (root / "red" / "readme.jpg").write_text("not an image", encoding="utf-8")
    ds = datasets.ingest(root).dataset
    bad = {b["item"]: b["reason"] for b in ds.manifest["bad"]}
    assert set(bad) == {"red/broken.jpg", "red/readme.jpg"}
    assert len(ds.items) == 9


def test_train_test_layout_takes_inner_classes(tmp_path, stores):
    datasets, _ = stores
    make_image_folder(tmp_path / "d" / "train", per_class=2)
    make_image_folder(tmp_path / "d" / "test", per_class=2, seed=1)
    res = datasets.ingest(tmp_path / "d")
    assert sorted(res.dataset.classes) == ["blue", "green", "red"]
    assert any("inner level" in n for n in res.notes)


def test_rgba_palette_cmyk_gray_all_load(tmp_path, stores):
    datasets, _ = stores
    base = Image.fromarray((np.random.default_rng(0).random((20, 20, 3)) * 255).astype(np.uint8))
    for i, mode in enumerate(["RGBA", "P", "L"]):
        (tmp_path / "m" / "a").mkdir(parents=True, exist_ok=True)
        base.convert(mode).save(tmp_path / "m" / "a" / f"{i}.png")
    (tmp_path / "m" / "b").mkdir()
    base.convert("CMYK").save(tmp_path / "m" / "b" / "c.jpg")
    base.save(tmp_path / "m" / "b" / "d.png")
    ds = datasets.ingest(tmp_path / "m").dataset
    assert len(ds.items) == 5 and not ds.manifest["bad"]
    assert set(ds.items["mode"]) == {"RGBA", "P", "L", "CMYK", "RGB"}


def test_image_csv_paths_resolved_and_checked(tmp_path, stores):
    datasets, _ = stores
    root = make_image_folder(tmp_path / "imgs", per_class=2)
    rows = ["path,label"] + [f"imgs/{p.parent.name}/{p.name},{p.parent.name}" for p in sorted(root.rglob("*.png"))]
    rows += ["imgs/missing.png,red", "../outside.png,red"]
    (tmp_path / "list.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    ds = datasets.ingest(tmp_path / "list.csv").dataset
    assert ds.modality == "image" and len(ds.items) == 6
    reasons = sorted(b["reason"] for b in ds.manifest["bad"])
    assert reasons == ["file not found", "path points outside the table's folder"]


def test_same_content_same_id_and_versions_are_immutable(text_csv, stores):
    datasets, _ = stores
    a = datasets.ingest(text_csv).dataset
    b = datasets.ingest(text_csv).dataset
    assert a.id == b.id
    child = datasets.derive(a, a.items.iloc[:-5], "drop five")
    assert child.id != a.id and child.manifest["parent"] == a.id
    assert len(datasets.get(a.id).items) == len(a.items)


def test_folder_without_classes_is_explained(tmp_path, stores):
    datasets, _ = stores
    (tmp_path / "flat").mkdir()
    (tmp_path / "flat" / "1.png").write_bytes(png())
    with pytest.raises(DataError, match="class folders"):
        datasets.ingest(tmp_path / "flat")


@pytest.mark.skipif(__import__("sys").platform != "linux", reason="byte file names are a POSIX matter")
def test_class_folders_the_studio_cannot_store_as_given_are_read_and_said(tmp_path, stores):
    """A folder name that is not UTF-8 (a Latin-1 'café' copied from an old disk) and one with a line break:
    both classes are kept, under names every file format can store, and the note says what was read."""
    import os

    from core.data.audit import audit

    root = make_image_folder(tmp_path / "odd", per_class=6, size=24)
    os.rename(os.fsencode(root / "red"), os.fsencode(root) + b"/caf\xe9")
    os.rename(root / "blue", root / "a\nb")
    ds = stores[0].ingest(root).dataset
    assert sorted(ds.items["label"].unique()) == ["a b", "café", "green"]
    assert any("not UTF-8 (b'caf\\xe9'); read as 'café'" in n for n in ds.manifest["notes"])
    assert any("line breaks" in n for n in ds.manifest["notes"])
    assert audit(ds).summary()["rows"] == 18
