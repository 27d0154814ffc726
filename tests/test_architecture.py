"""The engine stays UI-free: nothing under core/ imports streamlit."""
import ast
from pathlib import Path

CORE = Path(__file__).resolve().parents[1] / "core"


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
