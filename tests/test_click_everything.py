"""Every button, toggle, checkbox, radio option and download on every page is clicked, for an image run and a
text run, and none may end in an exception or 'failed unexpectedly'. A control no test clicks ships broken:
'Make the HTML report' did, with a NameError, because nothing pressed it."""
import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from tests.conftest import make_image_folder, make_text_csv
from tests.helpers import config, train

APP = str(Path(__file__).resolve().parents[1] / "app.py")
PAGES = ["pages/data.py", "pages/explore.py", "pages/train.py", "pages/monitor.py", "pages/evaluate.py",
         "pages/predict.py", "pages/runs.py", "pages/search.py", "pages/review.py"]
# controls whose click starts something long on purpose (a training run) or leaves the data behind for good
SKIP = {"Start training", "Start search"}  # the browser test starts a small search


def _controls(at):
    out = []
    for kind in ("button", "download_button", "toggle", "checkbox"):
        for w in getattr(at, kind):
            if not w.disabled and w.label not in SKIP:
                out.append((kind, w.key or w.label, None))
    for r in at.radio:
        for opt in r.options[:8]:
            out.append(("radio", r.key or r.label, opt))
    for s in at.selectbox:
        for opt in s.options[:4]:
            out.append(("selectbox", s.key or s.label, opt))
    return out


def _find(at, kind, ident):
    for w in getattr(at, kind):
        if (w.key or w.label) == ident:
            return w
    return None


def _act(w, kind, opt):
    if kind in ("button", "download_button"):
        w.click()
    elif kind in ("toggle", "checkbox"):
        w.set_value(not w.value)
    else:  # radio/selectbox: the options AppTest shows are the labels; pick by position
        w.__dict__["_pick"] = w.options.index(opt)
        w._value = opt


@pytest.fixture(autouse=True)
def _pick_by_position(monkeypatch):
    """AppTest sets a radio or selectbox by its raw value, which a format_func hides; the position is known."""
    from streamlit.testing.v1.element_tree import Radio, Selectbox

    for cls in (Radio, Selectbox):
        orig = cls.index

        def index(self, orig=orig):
            pick = self.__dict__.get("_pick")
            return pick if pick is not None else orig.fget(self)
        monkeypatch.setattr(cls, "index", property(index))


def _wait_for_jobs(timeout=180):
    from studio.services import services

    deadline = time.time() + timeout
    jobs = services().jobs
    while time.time() < deadline:
        if all(j.done for j in list(jobs._jobs.values())):
            return
        time.sleep(0.3)
    raise AssertionError("a page job did not finish")


# errors a click may rightly end in on these runs (a person's own choice leads there); everything else on a
# healthy run is a bug, plain words or not (the report for an 'auto' run once failed with a plain ConfigError)
EXPECTED = ("already holds files",)


def _problems(at) -> list[str]:
    errors = [e.value for e in at.error if not any(x in e.value for x in EXPECTED)]
    return errors + [f"exception: {x.value}" for x in at.exception]


def _click(at, w, kind, opt, what: str) -> list[str]:
    """The run right after a click shows what the click did (a button is pressed for that run only); a job
    it started is waited for and its result shown by the next run."""
    _act(w, kind, opt)
    at.run()
    found = [f"{what}: {p}" for p in _problems(at)]
    _wait_for_jobs()
    at.run()
    return found + [f"{what} (once its job finished): {p}" for p in _problems(at)]


def crawl(session: dict, page: str, seen: set, limit: int = 60) -> list[str]:
    """Click each control of the page once (controls that appear after a click are clicked too)."""
    problems: list[str] = []
    for _ in range(limit):
        at = AppTest.from_file(APP, default_timeout=240)
        for k, v in session.items():
            if k == "run":
                at.query_params["run"] = v
            else:
                at.session_state[k] = v
        at.switch_page(page).run()
        problems += [f"{page} on opening: {p}" for p in _problems(at)]
        todo = [c for c in _controls(at) if (page, *c) not in seen]
        if not todo:
            return problems
        kind, ident, opt = todo[0]
        seen.add((page, kind, ident, opt))
        w = _find(at, kind, ident)
        if w is None:
            continue
        what = f"{page}: {kind} {ident!r}{' = ' + repr(opt) if opt is not None else ''}"
        problems += _click(at, w, kind, opt, what)
        # the clicks a person would make next: whatever this one revealed
        for kind2, ident2, opt2 in _controls(at):
            if (page, kind2, ident2, opt2) in seen or kind2 not in ("button", "download_button", "toggle"):
                continue
            seen.add((page, kind2, ident2, opt2))
            w2 = _find(at, kind2, ident2)
            if w2 is not None:
                problems += _click(at, w2, kind2, opt2, f"{page}: after {ident!r}, {kind2} {ident2!r}")
    return problems


@pytest.fixture
def studio_with_runs(home, tmp_path):
    from studio.services import _services, services

    _services.clear()
    sv = services()
    runs = {}
    from tests.test_regression import text_numbers

    for name, src, backbone, strategy in (("image", make_image_folder(tmp_path / "colours"), "tiny-cnn", "full"),
                                          ("text", make_text_csv(tmp_path / "topics.csv"), "tiny-text", "auto"),
                                          ("regression", text_numbers(tmp_path / "scores.csv"), "tiny-text", "auto")):
        cfg = config(src, backbone, strategy, epochs=2)
        if name == "regression":
            cfg.data.task, cfg.data.label_col = "regression", "score"
        rec, st, _ = train((sv.datasets, sv.runs), cfg)
        assert st["status"] == "completed"
        runs[name] = (rec.status["dataset"], rec.id)
    yield runs
    _services.clear()


@pytest.mark.parametrize("which", ["image", "text", "regression"])
def test_every_control_on_every_page_works(studio_with_runs, which):
    ds_id, run_id = studio_with_runs[which]
    session = {"dataset_id": ds_id, "run": run_id, "run_id": run_id,
               "task": "regression" if which == "regression" else "classification"}
    if which == "image":  # the range test trains the real MobileNetV2: at 64 px it takes seconds, not minutes
        session.update({f"image_size_{s}": 64 for s in ("auto", "full", "lora", "partial", "differential")})
    seen: set = set()
    problems = []
    for page in PAGES:
        problems += crawl(session, page, seen)
    clicked = {(p, k) for p, k, _, _ in seen}
    assert problems == []
    for page in PAGES:
        assert any(p == page for p, _ in clicked), f"nothing clicked on {page}"
    labels = {i for _, k, i, _ in seen if k in ("button", "download_button")}
    assert {"mk_evaluate", "mk_runs"} <= labels, labels  # the report buttons on Evaluate and Runs
