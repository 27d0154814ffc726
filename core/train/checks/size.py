"""What small data means for the scores, said once the split is known."""
from __future__ import annotations

import numpy as np

SMALL_TEST = 30  # below this, one example moves accuracy by more than 3 points


def size_note(split: np.ndarray, n_classes: int | None) -> str | None:
    n_test, n_val = int((split == "test").sum()), int((split == "val").sum())
    if n_test >= SMALL_TEST or n_test == 0:
        return None
    per = f" (about {n_test / n_classes:.1f} per class)" if n_classes else ""
    return (f"Small data: the test split holds {_n(n_test)}{per} and validation {n_val}, so each example weighs "
            f"{100 / n_test:.0f}% of every test score and the best epoch is picked on very few. Read the scores as a "
            "rough look, not a measurement; more examples per class make them worth trusting.")


def _n(k: int) -> str:
    return f"{k} example" + ("" if k == 1 else "s")
