"""Only flows/ and the thin task wrappers may import Prefect; no module is named after a library."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ["tasks", "warehouse", "flows", "replica"]
ALLOWED_PREFECT = {"tasks/steps.py"}
LIBRARY_NAMES = {
    "http",
    "duckdb",
    "prefect",
    "requests",
    "trafilatura",
    "pyarrow",
    "parquet",
    "lxml",
}


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_prefect_only_in_flows_and_wrappers() -> None:
    offenders = [
        str(path.relative_to(ROOT))
        for package in PACKAGES
        if package != "flows"
        for path in (ROOT / package).rglob("*.py")
        if "prefect" in _imports(path) and str(path.relative_to(ROOT)) not in ALLOWED_PREFECT
    ]
    assert offenders == []


def test_no_module_named_after_a_library() -> None:
    clashes = [
        str(path.relative_to(ROOT))
        for package in PACKAGES
        for path in (ROOT / package).rglob("*.py")
        if path.stem in LIBRARY_NAMES
    ]
    assert clashes == []
