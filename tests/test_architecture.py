"""The design, checked: the engine stays UI-free; core/ has no import cycle; function-local imports of the
project's own modules are few and say why; files and functions stay small; a run folder's layout is spelled in
one place; every strategy, 'auto' included, is in the registry."""
import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CORE = ROOT / "core"
UI = [*(ROOT / "studio").rglob("*.py"), *(ROOT / "pages").rglob("*.py"), ROOT / "app.py"]


def streamlit_imports(path: Path) -> list[int]:
    lines = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            names = [node.module or ""]
        else:
            continue
        if any(n == "streamlit" or n.startswith("streamlit.") for n in names):
            lines.append(node.lineno)
    return lines


def test_core_never_imports_streamlit():
    offenders = {f.name: ln for f in CORE.rglob("*.py") if (ln := streamlit_imports(f))}
    assert offenders == {}


def test_the_check_catches_an_import(tmp_path):
    f = tmp_path / "x.py"
    f.write_text("def f():\n    from streamlit import session_state\n", encoding="utf-8")
    assert streamlit_imports(f) == [2]


# --------------------------------------------------------------------------- imports
def _module(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph(root: Path) -> tuple[dict[str, set[str]], list[tuple[str, str, int, bool]]]:
    """Edges between the project's modules under root/core, module-level and function-local alike (imports
    under `if TYPE_CHECKING:` never run and are left out), and each function-local one as (module, target,
    line, has a comment saying why)."""
    files = {_module(p, root): p for p in (root / "core").rglob("*.py")}
    graph: dict[str, set[str]] = {m: set() for m in files}
    local = []
    for mod, path in files.items():
        text = path.read_text(encoding="utf-8")
        lines = text.splitlines()
        tree = ast.parse(text)
        skip, top = set(), set()
        for node in ast.walk(tree):
            if isinstance(node, ast.If) and getattr(node.test, "id", getattr(node.test, "attr", "")) == "TYPE_CHECKING":
                skip |= {id(n) for n in ast.walk(node)}
        for node in tree.body:
            top |= {id(n) for n in ast.walk(node)} if isinstance(node, (ast.If, ast.Try)) else {id(node)}
        for node in ast.walk(tree):
            if id(node) in skip or not isinstance(node, (ast.Import, ast.ImportFrom)):
                continue
            for target in _targets(node, mod, path.name == "__init__.py", files):
                graph[mod].add(target)
                if id(node) not in top:
                    why = "#" in lines[node.lineno - 1] or lines[node.lineno - 2].strip().startswith("#")
                    local.append((mod, target, node.lineno, why))
    return graph, local


def _targets(node, mod: str, is_pkg: bool, files) -> list[str]:
    if isinstance(node, ast.Import):
        names = [a.name for a in node.names]
    else:
        base = node.module or ""
        if node.level:
            pkg = mod.split(".") if is_pkg else mod.split(".")[:-1]
            pkg = pkg[:len(pkg) - node.level + 1]
            base = ".".join(pkg + ([base] if base else []))
        names = [f"{base}.{a.name}" if f"{base}.{a.name}" in files else base for a in node.names]
    out = []
    for n in names:
        while n and n not in files:
            n = n.rpartition(".")[0]
        if n and n != mod:
            out.append(n)
    return out


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, found, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_no_import_cycle_in_core():
    graph, _ = import_graph(ROOT)
    assert cycles(graph) == []


def test_few_function_local_imports_of_our_own_modules_each_saying_why():
    _, local = import_graph(ROOT)
    assert len(local) < 20, local
    assert [f"{m} -> {t} (line {n})" for m, t, n, why in local if not why] == []


def test_the_cycle_check_catches_a_cycle_hidden_in_a_function(tmp_path):
    (tmp_path / "core").mkdir()
    (tmp_path / "core" / "__init__.py").write_text("")
    (tmp_path / "core" / "a.py").write_text("from .b import x\n")
    (tmp_path / "core" / "b.py").write_text("def x():\n    from .a import y\n")
    (tmp_path / "core" / "c.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .a import z\n")
    graph, local = import_graph(tmp_path)
    assert cycles(graph) == [["core.a", "core.b"]]
    assert local == [("core.b", "core.a", 2, False)]


# --------------------------------------------------------------------------- size
def test_no_core_file_over_400_lines_and_no_function_over_80():
    # core/portable.py is one file by design: every ONNX export carries it, whole, as predict.py
    long_files = {str(f.relative_to(ROOT)): n for f in CORE.rglob("*.py") if f != CORE / "portable.py"
                  and (n := len(f.read_text(encoding="utf-8").splitlines())) > 400}
    assert len((CORE / "portable.py").read_text(encoding="utf-8").splitlines()) <= 500
    assert long_files == {}
    long_functions = {}
    for f in CORE.rglob("*.py"):
        for node in ast.walk(ast.parse(f.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno + 1 > 80:
                long_functions[f"{f.relative_to(ROOT)}:{node.name}"] = node.end_lineno - node.lineno + 1
    assert long_functions == {}


# --------------------------------------------------------------------------- the run folder
RUN_FILES = {"config.json", "config.resolved.json", "status.json", "events.jsonl", "labels.json", "control.json",
             "worker.log", "error.txt", "blend.json", "trainer.pt", "model.safetensors", "val.json", "test.json",
             "test_predictions.parquet", "baseline_test_pred.npy", "suspect_labels.parquet", "distillation.json",
             "least_sure.parquet", "mistakes_explained.json", "vs_parent.json"}
RUN_DIRS = {"eval", "checkpoints", "partner", "best", "last"}


def run_folder_names(path: Path) -> list[int]:
    """Lines spelling a run folder's file name, or joining one of its folders onto a path (x / "eval")."""
    lines = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Constant) and node.value in RUN_FILES:
            lines.append(node.lineno)
        elif isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div) and \
                isinstance(node.right, ast.Constant) and node.right.value in RUN_DIRS:
            lines.append(node.lineno)
    return lines


def test_no_run_folder_name_outside_run_folder():
    files = [*CORE.rglob("*.py"), *UI]
    # core/backbones keeps downloaded weights in their own caches (torch hub, the offline packages)
    outside = {str(f.relative_to(ROOT)): ln for f in files if f != CORE / "runs" / "folder.py"
               and not f.is_relative_to(CORE / "backbones")
               and (ln := run_folder_names(f))}
    assert outside == {}


def test_the_folder_check_catches_a_name(tmp_path):
    f = tmp_path / "x.py"
    f.write_text("def f(d):\n    return d / 'eval' / 'x', d / 'status.json'\n", encoding="utf-8")
    assert run_folder_names(f) == [2, 2]


# --------------------------------------------------------------------------- registries
def test_every_strategy_auto_included_is_registered_and_offered():
    from dataclasses import fields

    from core.config import TrainConfig
    from core.settings import choices_of
    from core.strategies import REGISTRY, get_strategy

    offered = choices_of(next(f for f in fields(TrainConfig) if f.name == "strategy"))
    assert offered == REGISTRY.names() and "auto" in offered
    assert get_strategy("auto").planned and not any(get_strategy(n).planned for n in offered if n != "auto")


def _name_comparisons(path: Path) -> list[int]:
    """Lines comparing a value with a modality or task name ('image' == x, x != "regression", x in ("text",))."""
    from core.modalities import modality_names
    from core.tasks import task_names

    names = set(modality_names()) | set(task_names())
    lines = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if not isinstance(node, ast.Compare):
            continue
        sides = [node.left, *node.comparators]
        consts = [c for s in sides for c in ([s] if isinstance(s, ast.Constant) else
                                              list(s.elts) if isinstance(s, (ast.Tuple, ast.List, ast.Set)) else [])]
        if any(isinstance(c, ast.Constant) and c.value in names for c in consts):
            lines.append(node.lineno)
    return lines


def test_modality_and_task_names_are_compared_only_inside_their_registries():
    files = [*CORE.rglob("*.py"), *UI]
    outside = {str(f.relative_to(ROOT)): ln for f in files
               if not f.is_relative_to(CORE / "modalities") and not f.is_relative_to(CORE / "tasks")
               and f != CORE / "portable.py"  # stands alone in every export: no registry to ask
               and (ln := _name_comparisons(f))}
    assert not outside, outside


def test_the_name_check_catches_a_comparison(tmp_path):
    f = tmp_path / "x.py"
    f.write_text("def f(ds):\n    return 1 if ds.modality == 'image' else 2\n", encoding="utf-8")
    assert _name_comparisons(f) == [2]


def test_no_strategy_is_compared_with_auto_by_name():
    """'auto' is a registered strategy (planned=True); code asks the strategy, never compares its name."""
    hits = []
    for f in [*CORE.rglob("*.py"), *UI]:
        for node in ast.walk(ast.parse(f.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Compare) and any(isinstance(c, ast.Constant) and c.value == "auto"
                                                     for c in [node.left, *node.comparators]):
                text = ast.unparse(node)
                if "strategy" in text or text.startswith(("name", "s ==", "s !=")):
                    hits.append(f"{f.relative_to(ROOT)}:{node.lineno}: {text}")
    assert hits == []
