"""A trained model's predictions with nothing but numpy and Pillow (and onnxruntime, tokenizers where the model
needs them). This file is the studio's own code for the parts of prediction that are not the network: reading
and cropping images, TF-IDF, the linear partner, turning logits into outputs, blending. The studio imports it, and
every ONNX export carries it as predict.py, so the exported folder predicts exactly as the studio does.

    python predict.py INPUT [--json]      INPUT: a CSV with the training text column, an image, or a folder

It must not import the studio: a folder that carries it runs without it."""
from __future__ import annotations

import argparse
import csv
import io
import json
import math
import re
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

PARTNER = "partner"  # the linear partner's folder, beside the network, in a run or an export
IMAGE_EXTS = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"}
# what a reader does not see: white space, format and control characters (zero-width spaces, joiners, BOMs,
# direction marks, soft hyphens, variation selectors, Hangul fillers)
INVISIBLE = re.compile("[\\s\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180b-\u180f\u200b-\u200f\u202a-\u202e"
                       "\u2060-\u206f\u3164\ufe00-\ufe0f\ufeff\uffa0\x00-\x1f\x7f-\x9f]+")


def text_problem(t: Any) -> str | None:
    """Why an input cannot be read as a text (None: it can). A text of only invisible characters is empty: a
    model would score it, and the score would mean nothing."""
    if not isinstance(t, str):
        return f"not a text ({type(t).__name__}); this model reads text"
    if not INVISIBLE.sub("", t):
        return "empty text" + (" (only invisible characters)" if t.strip() else "")
    return None


MAX_IMAGE_PIXELS = 50_000_000  # stated rather than Pillow's default: about 7000x7000
Image.MAX_IMAGE_PIXELS = MAX_IMAGE_PIXELS
ImageFile.LOAD_TRUNCATED_IMAGES = False  # a truncated file must fail, not load half grey


# --------------------------------------------------------------------------- images
class BadImage(Exception):
    """An image that cannot be used; str() is the reason, in words."""


def is_image_name(name: str) -> bool:
    n = Path(name).name
    return Path(n).suffix.lower() in IMAGE_EXTS and not n.startswith((".", "._"))


def _to_uint8(arr: np.ndarray, full_scale: float) -> np.ndarray:
    """Scale by the format's own range (never by this image's maximum, which would make a dark scan and a
    bright scan of the same thing identical); NaN reads as black, +Inf as white."""
    with np.errstate(invalid="ignore", over="ignore"):
        arr = np.nan_to_num(arr.astype(np.float64), nan=0.0, posinf=full_scale, neginf=0.0)
        return np.clip(np.rint(arr / full_scale * 255.0), 0, 255).astype(np.uint8)


def float_range(arr: np.ndarray) -> float:
    """The range floating-point pixels are written in: [0, 1] (the usual convention), else 8- or 16-bit
    levels stored as floats. Decided from the value range, so images written the same way scale the same."""
    with np.errstate(invalid="ignore"):
        finite = arr[np.isfinite(arr)]
    top = float(finite.max()) if finite.size else 0.0
    return 1.0 if top <= 1.0 else 255.0 if top <= 255.0 else 65535.0


def to_rgb(img: Image.Image) -> Image.Image:
    """3-channel RGB whatever the mode: transparency composited on white, CMYK/palette converted, 16-bit and
    32-bit integer images by the 16-bit range, floating-point images by their format's range."""
    img = ImageOps.exif_transpose(img) or img
    if img.mode in ("RGBA", "LA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        bg = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(bg, rgba).convert("RGB")
    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        return Image.fromarray(_to_uint8(np.asarray(img), 65535.0)).convert("RGB")
    if img.mode == "F":
        arr = np.asarray(img, dtype=np.float64)
        return Image.fromarray(_to_uint8(arr, float_range(arr))).convert("RGB")
    return img.convert("RGB")


def open_rgb(source: Any, draft: tuple[int, int] | None = None) -> Image.Image:
    """Decode fully (so truncation shows) under the pixel cap; raise BadImage with a plain reason. source: a
    path, bytes or a PIL image."""
    if isinstance(source, Image.Image):
        return to_rgb(source)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            fp = io.BytesIO(source) if isinstance(source, (bytes, bytearray)) else source
            with Image.open(fp) as img:
                w, h = img.size
                if w * h > MAX_IMAGE_PIXELS:
                    raise BadImage(f"{w}x{h} pixels is over the {MAX_IMAGE_PIXELS:,}-pixel limit (possible "
                                   "decompression bomb)")
                if draft and img.format == "JPEG":
                    img.draft("RGB", draft)
                img.load()
                return to_rgb(img)
    except BadImage:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise BadImage(f"too many pixels (over {MAX_IMAGE_PIXELS:,}); possible decompression bomb") from None
    except UnidentifiedImageError:
        raise BadImage("not a readable image (wrong extension or corrupt file)") from None
    except FileNotFoundError:
        raise BadImage("file not found") from None
    except OSError as e:
        msg = str(e)
        if "truncated" in msg.lower() or "premature" in msg.lower():
            raise BadImage("the file is truncated (incomplete download or copy)") from None
        raise BadImage(f"cannot decode: {msg}") from None
    except (ValueError, SyntaxError, TypeError) as e:
        raise BadImage(f"cannot decode: {e}") from None
    except Exception as e:  # decoders raise a zoo of types on hostile input
        raise BadImage(f"cannot decode: {type(e).__name__}: {e}") from None


def square_crop(img: Image.Image, size: int) -> np.ndarray:
    """Shorter side to size, centre crop: uint8 [3, size, size]."""
    w, h = img.size
    s = size / min(w, h)
    img = img.resize((max(size, round(w * s)), max(size, round(h * s))), Image.Resampling.BILINEAR)
    w, h = img.size
    left, top = (w - size) // 2, (h - size) // 2
    img = img.crop((left, top, left + size, top + size))
    return np.ascontiguousarray(np.asarray(img, dtype=np.uint8).transpose(2, 0, 1))


def load_image(source: Any, size: int) -> np.ndarray:
    """uint8 [3, size, size] from a path, bytes or a PIL image, exactly as training saw it."""
    return square_crop(open_rgb(source, draft=(size, size)), size)


def normalise(x: np.ndarray, mean, std) -> np.ndarray:
    """uint8 [n, 3, S, S] to the backbone's input: (x / 255 - mean) / std, float32."""
    m = np.asarray(mean, dtype=np.float32).reshape(1, 3, 1, 1)
    s = np.asarray(std, dtype=np.float32).reshape(1, 3, 1, 1)
    return (x.astype(np.float32) / np.float32(255) - m) / s


# --------------------------------------------------------------------------- TF-IDF
TOKEN = re.compile(r"(?u)\b\w\w+\b")  # scikit-learn's default token pattern
SPACES = re.compile(r"\s\s+")


def word_ngrams(text: str, low: int, high: int) -> list[str]:
    """Word n-grams as scikit-learn's TfidfVectorizer(analyzer='word') makes them (lowercased)."""
    tokens = TOKEN.findall(text.lower())
    out = list(tokens) if low == 1 else []
    for n in range(max(low, 2), min(high, len(tokens)) + 1):
        out += [" ".join(tokens[i:i + n]) for i in range(len(tokens) - n + 1)]
    return out


def char_wb_ngrams(text: str, low: int, high: int) -> list[str]:
    """Character n-grams inside word boundaries, as TfidfVectorizer(analyzer='char_wb') makes them."""
    out = []
    for w in SPACES.sub(" ", text.lower()).split():
        w = " " + w + " "
        for n in range(low, high + 1):
            offset = 0
            out.append(w[offset:offset + n])
            while offset + n < len(w):
                offset += 1
                out.append(w[offset:offset + n])
            if offset == 0:  # a word shorter than n is counted once
                break
    return out


class Tfidf:
    """The transform of a fitted TfidfVectorizer (sublinear tf, l2 norm): its vocabulary and idf, nothing else."""

    def __init__(self, vocabulary: dict[str, int], idf: np.ndarray, analyzer: str, ngram_range: tuple[int, int]):
        self.vocabulary, self.idf = vocabulary, np.asarray(idf, dtype=np.float64)
        self.grams = word_ngrams if analyzer == "word" else char_wb_ngrams
        self.low, self.high = ngram_range

    def row(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        """(feature indices, values) of one text."""
        counts: dict[int, int] = {}
        for g in self.grams(text, self.low, self.high):
            j = self.vocabulary.get(g)
            if j is not None:
                counts[j] = counts.get(j, 0) + 1
        if not counts:
            return np.zeros(0, np.int64), np.zeros(0)
        idx = np.fromiter(counts, np.int64, len(counts))
        val = (1.0 + np.log(np.fromiter(counts.values(), np.float64, len(counts)))) * self.idf[idx]
        return idx, val / np.sqrt((val ** 2).sum())


# --------------------------------------------------------------------------- the linear partner
def softmax(z: np.ndarray) -> np.ndarray:
    z = np.asarray(z, dtype=np.float64)
    z = z - z.max(1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(1, keepdims=True)


def linear_outputs(z: np.ndarray, present: np.ndarray, n_classes: int) -> np.ndarray:
    """Class probabilities from a linear model's decision values, as scikit-learn's LogisticRegression gives
    them (one row of coefficients for two classes: a sigmoid); values in a one-column array for regression
    (n_classes 0)."""
    z = np.asarray(z, dtype=np.float64)
    if not n_classes:
        return z[:, :1]
    if z.shape[1] == 1:
        p1 = 1 / (1 + np.exp(-z[:, 0]))
        p = np.stack([1 - p1, p1], 1)
    else:
        p = softmax(z)
    out = np.zeros((len(z), n_classes))
    out[:, np.asarray(present, dtype=np.int64)] = p
    return out


class LinearPartner:
    """The blend's linear partner at prediction time: TF-IDF (word and character n-grams, text) and/or the
    pretrained encoder's features (standardised, at their weight) under one linear model."""

    def __init__(self, arrays: dict[str, np.ndarray], meta: dict[str, Any]):
        self.arrays, self.meta = arrays, meta
        self.kind, self.n_classes = meta["kind"], int(meta["n_classes"])
        self.coef, self.intercept, self.present = arrays["coef"], arrays["intercept"], arrays["present"]
        self.tfidf = []
        if self.kind == "lexical":
            self.tfidf = [Tfidf(meta["word_vocabulary"], arrays["word_idf"], "word", tuple(meta["word_ngrams"])),
                          Tfidf(meta["char_vocabulary"], arrays["char_idf"], "char_wb", tuple(meta["char_ngrams"]))]
            self.emb_weight = float(meta.get("emb_weight", 0.0))
        else:  # a probe: the pretrained features alone, at weight 1
            self.emb_weight = 1.0
        self.mean, self.scale = arrays.get("emb_mean"), arrays.get("emb_scale")
        if self.kind == "probe":
            self.mean, self.scale = arrays["mean"], arrays["scale"]

    @property
    def needs_features(self) -> bool:
        return self.emb_weight > 0

    def decision(self, texts: list[str] | None, features: np.ndarray | None) -> np.ndarray:
        n = len(texts) if texts is not None else len(features)
        z = np.zeros((n, self.coef.shape[0]))
        offset = 0
        for t in self.tfidf:
            for r, text in enumerate(texts):
                idx, val = t.row(text)
                if len(idx):
                    z[r] += self.coef[:, offset + idx] @ val
            offset += len(t.idf)
        if self.needs_features:
            x = (np.asarray(features, dtype=np.float64) - self.mean) / self.scale * self.emb_weight
            z += x @ self.coef[:, offset:offset + x.shape[1]].T.astype(np.float64)
        return z + self.intercept

    def predict(self, texts: list[str] | None = None, features: np.ndarray | None = None) -> np.ndarray:
        return linear_outputs(self.decision(texts, features), self.present, self.n_classes)

    @classmethod
    def load(cls, folder: Path) -> "LinearPartner":
        meta = json.loads((folder / "partner.json").read_text(encoding="utf-8"))
        with np.load(folder / "arrays.npz", allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
        return cls(arrays, meta)


# --------------------------------------------------------------------------- outputs
def outputs(logits: np.ndarray, labels: dict[str, Any]) -> np.ndarray:
    """Per-row outputs in the data's terms: class probabilities, each label's probability (multi-label), or
    values in the label's units."""
    logits = np.asarray(logits, dtype=np.float64)
    if labels.get("task") == "regression":
        mean, std = labels["scale"]
        return logits[:, :1] * std + mean
    if labels.get("task") == "multilabel":
        return 1 / (1 + np.exp(-np.clip(logits, -60, 60)))
    return softmax(logits)


def blend(net: np.ndarray | None, partner: np.ndarray | None, weight: float) -> np.ndarray:
    """weight x the network's outputs + (1 - weight) x the partner's; a part with no share is not needed."""
    if partner is None or weight >= 1.0:
        return net
    if net is None or weight <= 0.0:
        return partner
    return weight * net + (1 - weight) * partner


def join_labels(rows: np.ndarray, labels: dict[str, Any]) -> list[str]:
    """0/1 per label as text, in the data's own separator ("billing; urgent")."""
    sep = labels.get("label_sep") or ";"
    glue = f"{sep} " if sep in ";," else sep
    return [glue.join(c for c, on in zip(labels["classes"], r) if on) for r in rows]


def point(out: np.ndarray, labels: dict[str, Any]) -> list[Any]:
    """The prediction per row: the class name, the labels at or above their thresholds (multi-label, joined by
    the data's separator), or the value."""
    if labels.get("task") == "regression":
        return [float(v) for v in out[:, 0]]
    if labels.get("task") == "multilabel":
        cut = np.asarray(labels.get("thresholds") or [0.5] * len(labels["classes"]))
        return join_labels(np.asarray(out) >= cut, labels)
    return [labels["classes"][int(i)] for i in out.argmax(1)]


# --------------------------------------------------------------------------- an exported folder
class ExportedModel:
    """An ONNX export: the network (model.onnx, or model.int8.onnx), the pretrained encoder its partner reads
    (encoder.onnx), the partner, the blend weight, and the preprocessing, each present only where used."""

    def __init__(self, folder: str | Path, threads: int | None = None):
        self.dir = Path(folder)
        self.spec = json.loads((self.dir / "predictor.json").read_text(encoding="utf-8"))
        self.labels = self.spec["labels"]
        self.weight = float(self.spec["network_weight"])
        self.partner = LinearPartner.load(self.dir / PARTNER) if (self.dir / PARTNER).is_dir() else None
        self.network = self._session(self.spec.get("network"), threads)
        self.encoder = self._session(self.spec.get("encoder"), threads)
        self.tokenizer = None
        if self.spec["modality"] == "text":
            from tokenizers import Tokenizer

            self.tokenizer = Tokenizer.from_file(str(self.dir / "tokenizer.json"))
            self.tokenizer.enable_truncation(max_length=int(self.spec["max_length"]))
            self.tokenizer.no_padding()

    def _session(self, name: str | None, threads: int | None):
        if not name:
            return None
        import onnxruntime as ort

        opts = ort.SessionOptions()
        if threads:
            opts.intra_op_num_threads = threads
        return ort.InferenceSession(str(self.dir / name), opts, providers=["CPUExecutionProvider"])

    @property
    def classes(self) -> list[str]:
        return self.labels.get("classes", [])

    def inputs(self, items: list[Any]) -> tuple[dict[str, np.ndarray] | None, list[int], list[str | None]]:
        """The networks' inputs for the usable items, their positions, and a reason for each unusable one."""
        errors: list[str | None] = [None] * len(items)
        if self.spec["modality"] == "image":
            size, pixels, ok = int(self.spec["image_size"]), [], []
            for i, src in enumerate(items):
                try:
                    pixels.append(load_image(src, size))
                    ok.append(i)
                except BadImage as e:
                    errors[i] = str(e)
            if not ok:
                return None, ok, errors
            return {"pixel_values": normalise(np.stack(pixels), self.spec["mean"], self.spec["std"])}, ok, errors
        for i, t in enumerate(items):
            errors[i] = text_problem(t)
        ok = [i for i, e in enumerate(errors) if e is None]
        if not ok:
            return None, ok, errors
        enc = [self.tokenizer.encode(items[i]).ids for i in ok]
        width = max(len(e) for e in enc)
        ids = np.full((len(enc), width), int(self.spec["pad_id"]), dtype=np.int64)
        mask = np.zeros((len(enc), width), dtype=np.int64)
        for r, e in enumerate(enc):
            ids[r, :len(e)], mask[r, :len(e)] = e, 1
        return {"input_ids": ids, "attention_mask": mask}, ok, errors

    def predict(self, items: list[Any], batch_size: int = 32) -> tuple[np.ndarray, list[str | None]]:
        """Outputs per item (NaN where it cannot be read) and, for those, the reason."""
        n_out = len(self.classes) if self.classes else 1
        out = np.full((len(items), n_out), np.nan)
        errors: list[str | None] = [None] * len(items)
        for s in range(0, len(items), batch_size):
            chunk = items[s:s + batch_size]
            feed, ok, errs = self.inputs(chunk)
            errors[s:s + len(chunk)] = errs
            if feed is None:
                continue
            net = outputs(self.network.run(None, feed)[0], self.labels) if self.network is not None else None
            part = None
            if self.partner is not None:
                feats = self.encoder.run(None, feed)[0] if self.encoder is not None else None
                texts = [chunk[i] for i in ok] if self.spec["modality"] == "text" else None
                part = self.partner.predict(texts, feats)
            out[[s + i for i in ok]] = blend(net, part, self.weight)
        return out, errors


# --------------------------------------------------------------------------- command line
def _read_table(path: Path, column: str) -> list[str]:
    raw = path.read_bytes()
    for enc in ("utf-8-sig", "cp1252"):
        try:
            text = raw.decode(enc)
            break
        except UnicodeDecodeError:
            continue
    sample = text[:10000]
    try:
        dialect = csv.Sniffer().sniff(sample, delimiters=",;\t|")
    except csv.Error:
        dialect = csv.excel
    rows = list(csv.DictReader(io.StringIO(text), dialect=dialect))
    if rows and column not in rows[0]:
        raise SystemExit(f"error: {path.name} has no column {column!r}; columns: {', '.join(rows[0])}")
    return [r[column] for r in rows]


def _inputs(model: ExportedModel, arg: str) -> tuple[list[str], list[Any]]:
    src = Path(arg)
    if not src.exists():
        raise SystemExit(f"error: {src} not found")
    if model.spec["modality"] == "image":
        if src.is_dir():
            files = sorted(p for p in src.rglob("*") if p.is_file() and is_image_name(p.name)
                           and not any(part.startswith(".") for part in p.relative_to(src).parts))
            return [str(p.relative_to(src)) for p in files], [str(p) for p in files]
        if is_image_name(src.name):
            return [src.name], [str(src)]
        paths = _read_table(src, model.spec["input_col"])
        return paths, [str((src.parent / p).resolve()) for p in paths]
    texts = _read_table(src, model.spec["input_col"])
    return [f"row {i + 1}" for i in range(len(texts))], texts


def main(argv: list[str] | None = None) -> int:
    here = Path(__file__).resolve().parent
    ap = argparse.ArgumentParser(description=f"Predict with the model in {here.name}.")
    ap.add_argument("input", help="a CSV/TSV with the training input column, an image, or a folder of images")
    ap.add_argument("--json", action="store_true", help="one JSON object per input")
    args = ap.parse_args(argv)
    model = ExportedModel(here)
    names, items = _inputs(model, args.input)
    out, errors = model.predict(items)
    writer = None if args.json else csv.writer(sys.stdout)
    if writer is not None:
        writer.writerow(["input", "prediction", *(f"p:{c}" for c in model.classes), "error"])
    for name, row, err in zip(names, out, errors):
        ok = err is None and all(math.isfinite(v) for v in row)
        label = point(row[None, :], model.labels)[0] if ok else None
        probs = {c: float(p) for c, p in zip(model.classes, row)} if ok and model.classes else None
        if args.json:
            print(json.dumps({"input": name, "label": label, **({"probabilities": probs} if probs else {}),
                              "error": err}, ensure_ascii=False))
        else:
            writer.writerow([name, "" if label is None else label, *(probs or {}).values(), err or ""])
    return 0


if __name__ == "__main__":
    sys.exit(main())
