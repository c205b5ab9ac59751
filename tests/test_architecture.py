"""Only flows/ and the thin task wrappers may import Prefect; no module is named after a library."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ["common", "tasks", "warehouse", "flows", "replica"]
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


# Dependencies point one way: flows -> warehouse -> common; flows -> tasks -> common.
FORBIDDEN = {
    "common": {"tasks", "warehouse", "flows"},
    "tasks": {"warehouse", "flows"},
    "warehouse": {"tasks", "flows"},
}


def test_dependencies_point_one_way() -> None:
    offenders = sorted(
        f"{path.relative_to(ROOT)} imports {name}"
        for package, forbidden in FORBIDDEN.items()
        for path in (ROOT / package).rglob("*.py")
        for name in _imports(path) & forbidden  # lazy imports count too
    )
    assert offenders == []


def test_no_module_named_after_a_library() -> None:
    clashes = [
        str(path.relative_to(ROOT))
        for package in PACKAGES
        for path in (ROOT / package).rglob("*.py")
        if path.stem in LIBRARY_NAMES
    ]
    assert clashes == []


HEAVY_FOR_WORKERS = {"prefect", "pydantic", "pydantic_settings", "duckdb", "pandas", "pyarrow"}


def _batch_then_modules(settings: object, refs: list[object]) -> list[str]:
    """On a worker: run a batch the way a crawl does, then list heavy imports."""
    import sys

    import flows.cli  # noqa: F401  (spawn re-imports the `finews` script's module in workers)
    from tasks.batches import fetch_and_extract

    batch = fetch_and_extract(settings, refs)  # type: ignore[arg-type]
    assert len(batch.failures) == len(refs) == 1  # the fetch path ran (nothing listens there)
    return sorted({name.split(".")[0] for name in sys.modules} & HEAVY_FOR_WORKERS)


def test_worker_processes_import_no_prefect_pydantic_duckdb_or_pyarrow(tmp_path: Path) -> None:
    """Each extraction worker holds only what a batch needs (memory: several run at once)."""
    import pickle

    from common.records import ArticleRef
    from tasks.batches import WorkerSettings
    from tasks.settings import load_settings
    from tasks.workers import extraction_pool, run_on_worker

    settings = load_settings(
        None, site="http://127.0.0.1:9", warehouse=str(tmp_path / "warehouse"), rps=0
    )
    plain = WorkerSettings.of(settings)
    assert b"pydantic" not in pickle.dumps(plain)
    assert b"tasks.settings" not in pickle.dumps(plain)
    ref = ArticleRef(
        url="http://127.0.0.1:9/2026/11/26/x/NW1.html",
        info_code="1",
        info_code_raw="NW1",
        category="x",
        listed_on="http://127.0.0.1:9/category/x/",
    )
    future = extraction_pool(2).submit(run_on_worker, _batch_then_modules, plain, [ref])
    assert future.result(timeout=120) == []
