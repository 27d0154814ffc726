"""Near duplicates in about linear time, by locality-sensitive hashing: texts by MinHash over word uni+bi-grams
(banded), images by 64-bit perceptual hashes (banded Hamming) and their colours."""
from __future__ import annotations

import re
import unicodedata

import numpy as np
import pandas as pd

from .images import colours_close

TEXT_JACCARD = 0.8
IMAGE_HAMMING = 5
_MERSENNE = np.uint64((1 << 61) - 1)
WHITESPACE = re.compile(r"\s+")


def normalise_text(t: str) -> str:
    return WHITESPACE.sub(" ", unicodedata.normalize("NFKC", t).casefold()).strip()


# --------------------------------------------------------------------------- candidate search
def _band_pairs(keys: np.ndarray, max_bucket: int = 64) -> np.ndarray:
    """Pairs of rows sharing a key in any band (column). Big buckets are linked as a star, not all-pairs,
    which keeps the cost sub-quadratic even on degenerate data."""
    pairs = []
    for b in range(keys.shape[1]):
        col = keys[:, b]
        order = np.argsort(col, kind="stable")
        s = col[order]
        starts = np.flatnonzero(np.r_[True, s[1:] != s[:-1]])
        ends = np.r_[starts[1:], len(s)]
        sizes = ends - starts
        for st, sz in zip(starts[sizes > 1], sizes[sizes > 1]):
            members = order[st:st + sz]
            if sz > max_bucket:
                pairs.append(np.stack([np.full(sz - 1, members[0]), members[1:]], 1))
            else:
                i, j = np.triu_indices(sz, 1)
                pairs.append(np.stack([members[i], members[j]], 1))
    if not pairs:
        return np.empty((0, 2), dtype=np.int64)
    return np.unique(np.concatenate(pairs).astype(np.int64), axis=0)


def minhash_signatures(texts: list[str], num_perm: int = 64, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """(signatures [n, num_perm], has_tokens [n]) over word uni- and bi-grams."""
    from sklearn.feature_extraction.text import HashingVectorizer

    vec = HashingVectorizer(analyzer="word", ngram_range=(1, 2), n_features=1 << 26, binary=True, norm=None,
                            alternate_sign=False, lowercase=False, token_pattern=r"(?u)\b\w+\b", dtype=np.float32)
    X = vec.transform(texts).tocsr()
    X.sort_indices()
    n = X.shape[0]
    has = np.diff(X.indptr) > 0
    rng = np.random.default_rng(seed)
    a = rng.integers(1, int(_MERSENNE), num_perm, dtype=np.uint64)
    b = rng.integers(0, int(_MERSENNE), num_perm, dtype=np.uint64)
    idx = X.indices.astype(np.uint64)
    sig = np.full((n, num_perm), np.iinfo(np.uint64).max, dtype=np.uint64)
    starts = X.indptr[:-1][has]
    with np.errstate(over="ignore"):
        for k in range(num_perm):
            hv = (a[k] * idx + b[k]) % _MERSENNE
            if len(hv):
                sig[has, k] = np.minimum.reduceat(hv, starts)
    return sig, has


def text_near_pairs(texts: list[str], threshold: float = TEXT_JACCARD, num_perm: int = 64,
                    bands: int = 16) -> np.ndarray:
    if len(texts) < 2:
        return np.empty((0, 2), dtype=np.int64)
    sig, has = minhash_signatures(texts, num_perm)
    r = num_perm // bands
    band_keys = np.stack([_hash_rows(sig[:, i * r:(i + 1) * r]) for i in range(bands)], 1)
    band_keys[~has] = np.arange((~has).sum())[:, None].astype(np.uint64) + np.uint64(1 << 40)
    pairs = _band_pairs(band_keys)
    if len(pairs):
        sim = (sig[pairs[:, 0]] == sig[pairs[:, 1]]).mean(1)
        pairs = pairs[sim >= threshold]
    return pairs


def _hash_rows(block: np.ndarray) -> np.ndarray:
    h = np.full(block.shape[0], 1469598103934665603, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for j in range(block.shape[1]):
            h = (h ^ block[:, j]) * np.uint64(1099511628211)
    return h


def image_near_pairs(hashes: np.ndarray, max_distance: int = IMAGE_HAMMING,
                     colours: np.ndarray | None = None) -> np.ndarray:
    """Pairs of 64-bit perceptual hashes within max_distance bits (and, where colour signatures are given, of
    about the same colours). Four 16-bit bands: any pair within 3 bits shares a band for certain; farther pairs
    usually do."""
    h = hashes.astype(np.int64).view(np.uint64)
    if len(h) < 2:
        return np.empty((0, 2), dtype=np.int64)
    keys = np.stack([(h >> np.uint64(16 * i)) & np.uint64(0xFFFF) for i in range(4)], 1)
    keys = keys + (np.arange(4, dtype=np.uint64) << np.uint64(16))[None, :]
    pairs = _band_pairs(keys)
    if len(pairs):
        x = h[pairs[:, 0]] ^ h[pairs[:, 1]]
        dist = np.unpackbits(x.view(np.uint8).reshape(-1, 8), axis=1).sum(1)
        pairs = pairs[dist <= max_distance]
    if colours is not None and len(pairs):
        pairs = pairs[[colours_close(colours[a], colours[b]) for a, b in pairs]]
    return pairs


def colours(items: pd.DataFrame) -> np.ndarray:
    if "colour" not in items.columns:
        return np.full(len(items), "", dtype=object)
    return items["colour"].fillna("").astype(str).to_numpy()
