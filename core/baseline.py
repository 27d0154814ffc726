"""A fast scikit-learn baseline on the run's own split: the bar a fine-tuned model has to clear.

Text: TF-IDF (word 1-2-grams + char 2-5-grams) + logistic regression.
Images: logistic regression on the pretrained backbone's pooled features.
"""
from __future__ import annotations

from typing import Any

import numpy as np
from scipy.sparse import hstack
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from .evaluate import evaluate

NAME = {"text": "TF-IDF + logistic regression", "image": "logistic regression on pretrained features"}


def _fit_predict(x_tr, y_tr, x_te, n_classes: int) -> np.ndarray:
    clf = LogisticRegression(C=2.0, max_iter=2000, class_weight="balanced")
    clf.fit(x_tr, y_tr)
    probs = np.zeros((x_te.shape[0], n_classes))
    probs[:, clf.classes_] = clf.predict_proba(x_te)
    return probs


def text_baseline(texts: list[str], y: np.ndarray, train: np.ndarray, test: np.ndarray,
                  classes: list[str]) -> dict[str, Any]:
    word = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=1, max_features=200_000)
    char = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True, min_df=2, max_features=200_000)
    tr = [texts[i] for i in train]
    te = [texts[i] for i in test]
    x_tr = hstack([word.fit_transform(tr), char.fit_transform(tr)]).tocsr()
    x_te = hstack([word.transform(te), char.transform(te)]).tocsr()
    probs = _fit_predict(x_tr, y[train], x_te, len(classes))
    return _summary(evaluate(y[test], probs, classes), "text")


def feature_baseline(features: np.ndarray, y: np.ndarray, train: np.ndarray, test: np.ndarray,
                     classes: list[str]) -> dict[str, Any]:
    scaler = StandardScaler().fit(features[train])
    probs = _fit_predict(scaler.transform(features[train]), y[train], scaler.transform(features[test]), len(classes))
    return _summary(evaluate(y[test], probs, classes), "image")


def _summary(res: dict[str, Any], modality: str) -> dict[str, Any]:
    return {"name": NAME[modality], "accuracy": res["accuracy"], "macro_f1": res["macro_f1"], "n": res["n"]}
