"""TF-IDF + logistic regression as a model a run can keep: saved as JSON + safetensors (no pickle), and
blended with the fine-tuned network where validation says the pair beats either alone.

Small text datasets often carry lexical cues (names, codes, set phrases) that a word-piece encoder
smooths over; a weighted average of the two models' probabilities keeps both kinds of evidence.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.sparse import hstack
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression

from .evaluate import evaluate

FOLDER = "lexical"
_WORD = dict(ngram_range=(1, 2), sublinear_tf=True, min_df=1, max_features=200_000)
_CHAR = dict(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True, min_df=2, max_features=200_000)


def vectorizers(texts: list[str]) -> tuple[TfidfVectorizer, TfidfVectorizer]:
    word, char = TfidfVectorizer(**_WORD), TfidfVectorizer(**_CHAR)
    word.fit(texts)
    char.fit(texts)
    return word, char


@dataclass
class LexicalModel:
    word: TfidfVectorizer
    char: TfidfVectorizer
    coef: np.ndarray  # [rows, features]; one row for two classes, as scikit-learn keeps it
    intercept: np.ndarray
    present: np.ndarray  # class indices seen in training
    n_classes: int

    @classmethod
    def fit(cls, texts: list[str], y: np.ndarray, n_classes: int) -> "LexicalModel":
        word, char = vectorizers(texts)
        clf = LogisticRegression(C=2.0, max_iter=2000, class_weight="balanced")
        clf.fit(hstack([word.transform(texts), char.transform(texts)]).tocsr(), y)
        return cls(word, char, clf.coef_.astype(np.float32), clf.intercept_.astype(np.float32),
                   clf.classes_.astype(np.int64), n_classes)

    def predict_proba(self, texts: list[str]) -> np.ndarray:
        x = hstack([self.word.transform(texts), self.char.transform(texts)]).tocsr()
        z = np.asarray(x @ self.coef.T) + self.intercept
        if self.coef.shape[0] == 1:  # binary: P(second class) = sigmoid
            p1 = 1 / (1 + np.exp(-z[:, 0]))
            p = np.stack([1 - p1, p1], 1)
        else:
            z = z - z.max(1, keepdims=True)
            p = np.exp(z) / np.exp(z).sum(1, keepdims=True)
        out = np.zeros((len(texts), self.n_classes))
        out[:, self.present] = p
        return out

    def save(self, folder: Path) -> None:
        from safetensors.numpy import save_file

        folder.mkdir(parents=True, exist_ok=True)
        meta = {"word_vocabulary": {k: int(v) for k, v in self.word.vocabulary_.items()},
                "char_vocabulary": {k: int(v) for k, v in self.char.vocabulary_.items()},
                "n_classes": self.n_classes}
        (folder / "vocabulary.json").write_text(json.dumps(meta), encoding="utf-8")
        arrays = {"word_idf": self.word.idf_, "char_idf": self.char.idf_, "coef": self.coef,
                  "intercept": self.intercept, "present": self.present}
        # scikit-learn may hand back Fortran-ordered arrays; safetensors writes memory order as row-major
        save_file({k: np.ascontiguousarray(v) for k, v in arrays.items()}, str(folder / "weights.safetensors"))

    @classmethod
    def load(cls, folder: Path) -> "LexicalModel":
        from safetensors.numpy import load_file

        meta = json.loads((folder / "vocabulary.json").read_text(encoding="utf-8"))
        arrays = load_file(str(folder / "weights.safetensors"))
        word, char = TfidfVectorizer(**_WORD), TfidfVectorizer(**_CHAR)
        word.vocabulary_, char.vocabulary_ = meta["word_vocabulary"], meta["char_vocabulary"]
        word.idf_, char.idf_ = arrays["word_idf"], arrays["char_idf"]
        return cls(word, char, arrays["coef"], arrays["intercept"], arrays["present"], meta["n_classes"])


def best_weight(net: np.ndarray, lex: np.ndarray, y: np.ndarray, classes: list[str]) -> tuple[float, dict]:
    """The network's share w in w*net + (1-w)*lex that maximises validation macro-F1 (ties go to the network)."""
    scores = {}
    for w in np.round(np.linspace(1.0, 0.0, 11), 2):
        scores[float(w)] = evaluate(y, w * net + (1 - w) * lex, classes)["macro_f1"]
    best = max(scores, key=lambda w: (round(scores[w], 6), w))
    return best, {"network_only": scores[1.0], "lexical_only": scores[0.0], "blend": scores[best]}


def blend(net: np.ndarray, lex: np.ndarray | None, weight: float) -> np.ndarray:
    return net if lex is None or weight >= 1.0 else weight * net + (1 - weight) * lex
