"""SIGKILL of ``finews crawl`` (its whole process group) mid-run, then a rerun to completion.

One trial per phase worth killing in: while listing, while a batch is fetched (others landed),
inside a batch commit (data files written, catalog not updated), inside the last commit, and
once everything has landed. After each kill the lake must open and read whole; the rerun must
land exactly what is missing, asking only for the posts that had not landed. The machinery
and the checks are in ``tests/bench_crash.py``, which also kills at uniform times.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

import pytest

from replica.posts import Post
from tests.bench_crash import (
    IN_FLIGHT,
    CrashLab,
    CrashReplica,
    check_after_kill,
    check_lake,
    table,
)
from warehouse.lake import attach, new_session, open_writer

SEED = 20261126


@pytest.fixture(scope="module")
def lab(
    posts: list[Post],
    site: dict[str, bytes],
    cli_env: dict[str, str],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[CrashLab]:
    with CrashReplica(site) as server:
        yield CrashLab(server, posts, tmp_path_factory.mktemp("crash"), cli_env)


@pytest.mark.parametrize(
    ("number", "kind"),
    [(1, "listing"), (2, "mid-batch"), (3, "commit"), (4, "final-commit"), (5, "end")],
    ids=[
        "while-listing",
        "mid-batch",
        "inside-a-batch-commit",
        "inside-the-last-commit",
        "after-the-last-commit",
    ],
)
def test_killed_crawl_leaves_a_sound_lake(lab: CrashLab, number: int, kind: str) -> None:
    trial = lab.trial(number, kind, random.Random(f"{SEED}-{kind}"), duration=10.0)
    report = table([trial])
    print(report)
    assert trial.killed_at is not None, f"the run ended before the kill point\n{report}"
    assert trial.ok, report
    assert trial.articles == len(lab.expected), report
    expected = len(lab.expected)
    # what each kill point means, seen in what had landed and what the rerun asked for
    if kind == "listing":
        assert (trial.posts_asked, trial.landed_at_kill) == (0, 0), report
        assert trial.rerun_posts == expected, report
    elif kind in ("mid-batch", "commit"):
        assert 0 < trial.landed_at_kill < expected, report
        assert 0 < trial.in_flight <= IN_FLIGHT, report
        assert trial.rerun_posts == expected - trial.landed_at_kill, report
    else:
        assert trial.landed_at_kill == expected and trial.in_flight == 0, report
        assert trial.rerun_posts == 0, report
    if kind in ("commit", "final-commit"):
        assert trial.orphans > 0, f"killed with the commit's files written\n{report}"


def test_the_checks_catch_a_broken_lake(tmp_path: Path) -> None:
    """The checker itself: no lake, a repeated article, a missing one, a damaged data file."""
    root = tmp_path / "warehouse"
    assert check_lake(root, {"1"}) == [f"no lake at {root}"]
    assert check_after_kill(root) == ([], set())
    root.mkdir()
    with new_session() as session:  # a catalog without the tables: killed creating the lake
        attach(session, root, read_only=False)
    assert check_after_kill(root) == ([], set())
    assert check_lake(root, {"1"})[0].startswith("lake unreadable")
    with open_writer(root) as session:
        session.execute("INSERT INTO articles (info_code, url) VALUES ('1', 'u1'), ('1', 'u1')")
    problems = check_lake(root, {"1", "2"})
    assert any("articles repeat ['1']" in p for p in problems), problems
    assert any("1 listed article(s) missing, e.g. ['2']" in p for p in problems), problems
    assert any("no completed run" in p for p in problems), problems
    assert check_after_kill(root) == (["after kill: articles repeat ['1']"], {"1"})
    (data,) = (root / "data" / "main" / "articles").glob("*.parquet")
    data.write_bytes(b"PAR1 half a parquet file")
    problems, landed = check_after_kill(root)
    assert landed == set() and len(problems) == 1, problems
    assert problems[0].startswith("after kill: lake unreadable"), problems
    assert check_lake(root, {"1"})[0].startswith("lake unreadable"), problems
