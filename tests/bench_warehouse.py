"""Benchmark of the DuckLake warehouse at scale: N synthetic articles landed, compacted, queried.

Run it by hand (pytest does not collect it):

    .venv/bin/python tests/bench_warehouse.py --articles 1000000 [--build lander|bulk]
        [--batch 5000] [--runs 100] [--out DIR] [--keep]

It builds a lake of N articles published over 90 days in 200 categories (~3 % of them with a
second version, ~1.3 sightings each): ``--build lander`` lands them as runs do, one
``Lander`` run per day (listing commits for the sightings, batch commits of ``--batch``
articles, a batch of the day's second versions, a ``finish``); ``--build bulk`` inserts the
same rows through a writer session in a few big transactions. It compacts
(``warehouse.maintenance.compact``, what ``finews compact`` runs), times the analyst queries
(a warm ``connect_read_only`` session, and ``run_query`` which opens one per query as
``finews sql`` does) and the known-id check of a 5,000-reference run, then lands 100 small
runs timing every commit, times everything again between compactions, and compacts again.
Prints Markdown tables; progress goes to stderr.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import random
import resource
import shlex
import shutil
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, NamedTuple

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from common.records import Article, ArticleBatch, ArticleRef, FetchResult
from warehouse.lake import ALIAS, commit, open_reader, open_writer
from warehouse.landing import Lander
from warehouse.maintenance import CompactionReport, compact, table_files
from warehouse.query import connect_read_only, run_query
from warehouse.schema import ARTICLES, FETCH_LOG, LISTING_STATE, RUNS, SIGHTINGS, TABLES
from warehouse.state import known_refs, load_state

DAYS = 90
CATEGORIES = 200
SECOND_VERSION_SHARE = 0.03
EMNEWS_SHARE = 0.3  # articles also listed on the emnews page: ~1.3 sightings per article
KEYWORD = "固态电池"
FIRST_DAY = dt.date(2026, 8, 28)
SHANGHAI = dt.timezone(dt.timedelta(hours=8))
SITE = "https://finews.withounder.com"
EXTRACTOR = "finews-0.1/trafilatura-2.3.1"
RETENTION = dt.timedelta(days=7)
PAGE_BYTES = 40_000  # a post page as fetched (fetch_log.bytes)
LISTING_BYTES = 250_000  # a category page
RPS = 1.0  # the default politeness: a small run's requests take this long at least
DAYS_PER_TRANSACTION = 10  # --build bulk
KNOWN_REFS = 5_000
_WORD_TEXT = """
市场 投资者 公司 股份 有限公司 营业收入 净利润
同比增长 环比 下降 上涨 板块 指数 沪指 深成指 创业板
科创板 北向资金 主力资金 净流入 净流出 成交额 亿元
万元 百分点 央行 货币政策 流动性 降准 降息 利率 国债
收益率 人民币 汇率 美元 美联储 通胀 经济数据 制造业
采购经理指数 消费 零售 出口 进口 贸易 新能源 光伏
风电 储能 锂电池 新能源汽车 整车 零部件 半导体 芯片
人工智能 算力 大模型 数据中心 云计算 通信 消费电子
医药 生物医药 创新药 医疗器械 白酒 食品饮料 家电
房地产 地产 物业 银行 券商 保险 基金 公募 私募
资产管理 债券 可转债 期货 黄金 原油 有色金属 铜 铝
煤炭 钢铁 化工 建材 水泥 基建 交通运输 航运 港口
航空 旅游 酒店 传媒 游戏 教育 农业 养殖 生猪 分析师
研报 评级 买入 增持 目标价 估值 市盈率 业绩 预告
快报 年报 季报 分红 回购 增持计划 减持 股东 董事会
监管 证监会 交易所 问询函 公告 披露 重组 并购 定增
募资 上市 发行 招股书 产能 订单 出货量 毛利率 现金流
负债 杠杆 风险 机会 政策 支持 推动 加快 发展 高质量
转型 升级 数字化 绿色 低碳 碳中和 国际 全球 海外
国内 地方 省 市 区域 行业 龙头 企业 中小企业 表示
认为 指出 预计 显示 数据 报告 会议 发布 宣布 称
据悉 记者 获悉 近日 今日 昨日 本周 上半年 下半年
全年 季度 月份 截至 目前 其中 此外 同时 另外 因此
但是 不过 随着 由于 进一步
"""
WORDS = _WORD_TEXT.split()
PUNCTUATION = ["，", "，", "，", "。", "。", "、", "；"]
OUTLETS = [f"{city}{kind}" for city in "中证上海深圳北京华夏东方南方财经金融" for kind in "报网社"]
SLUGS = [f"c{index:03d}" for index in range(CATEGORIES)]

LOOKUP = "SELECT * FROM articles WHERE info_code = '{code}'"
PER_DAY = "SELECT category, date_trunc('day', published_at) d, count(*) FROM articles GROUP BY ALL"
LIKE = f"SELECT count(*) FROM articles WHERE body LIKE '%{KEYWORD}%'"


def main(argv: Sequence[str] | None = None) -> int:
    """Build, measure and print; returns 0 even when a target is missed (the tables say so)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--articles", type=int, default=1_000_000)
    parser.add_argument(
        "--build",
        choices=("lander", "bulk"),
        default="lander",
        help="land through Lander commits as runs do, or bulk INSERTs in big transactions",
    )
    parser.add_argument("--batch", type=int, default=5_000, help="articles per build commit")
    parser.add_argument("--runs", type=int, default=100, help="small runs between compactions")
    parser.add_argument("--out", type=Path, help="lake folder (default: a temporary one)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary lake")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    root = args.out or Path(tempfile.mkdtemp(prefix="finews-bench-"))
    if root.exists() and any(root.iterdir()):
        parser.error(f"{root} is not empty")
    command = shlex.join([Path(sys.executable).name, *sys.argv])
    try:
        bench = Bench(root, args.articles, args.seed, args.build, args.batch, args.runs)
        for line in bench.run(command):
            print(line, flush=True)
    finally:
        if args.out is None and not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    return 0


# ---------------------------------------------------------------------------------------------
# Measuring


def note(message: str) -> None:
    stamp = dt.datetime.now().strftime("%H:%M:%S")
    print(f"# {stamp} load {load_average()}: {message}", file=sys.stderr, flush=True)


def load_average() -> str:
    """The timings share the machine: the load averages say how much they were disturbed."""
    return "/".join(f"{value:.1f}" for value in os.getloadavg())


class Timing(NamedTuple):
    """Median wall seconds, and median CPU seconds of this process (every DuckDB thread): on a
    shared machine the wall time says how long one waited, the CPU time what the work costs
    (on an idle machine the wall time is at least CPU / cores)."""

    wall: float
    cpu: float

    def __str__(self) -> str:
        return f"{seconds(self.wall)} ({seconds(self.cpu)} cpu)"

    def met(self, target: float) -> str:
        cores = os.cpu_count() or 1
        return f"wall {met(self.wall <= target)}; cpu/{cores} {met(self.cpu / cores <= target)}"


NO_TIMING = Timing(0.0, 0.0)


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def timed(action: Callable[[], object], runs: int = 5) -> Timing:
    """Median wall and CPU time of ``runs`` runs after one warm-up (file cache and metadata
    hot)."""
    action()
    walls, cpus = [], []
    for _ in range(runs):
        started, cpu = time.perf_counter(), cpu_seconds()
        action()
        walls.append(time.perf_counter() - started)
        cpus.append(cpu_seconds() - cpu)
    return Timing(statistics.median(walls), statistics.median(cpus))


def p95(samples: Sequence[float]) -> float:
    if len(samples) < 2:
        return max(samples, default=0.0)
    return statistics.quantiles(samples, n=20, method="inclusive")[-1]


def disk_mb(root: Path) -> float:
    """Bytes under the lake folder: live files and those scheduled for deletion."""
    return sum(path.stat().st_size for path in root.rglob("*") if path.is_file()) / 1e6


def files_per_table(root: Path) -> dict[str, tuple[int, int]]:
    with open_reader(root) as session:
        return table_files(session)


def met(ok: bool) -> str:
    return "yes" if ok else "**NO**"


def seconds(value: float) -> str:
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.2f} s"


@dataclass
class QueryTimes:
    """Median seconds of each query, in a warm session and through ``run_query``."""

    session: dict[str, Timing] = field(default_factory=dict)
    fresh: dict[str, Timing] = field(default_factory=dict)
    known: Timing = NO_TIMING
    open_reader: Timing = NO_TIMING  # connect_read_only, opened and closed
    answers: dict[str, Any] = field(default_factory=dict)


# ---------------------------------------------------------------------------------------------
# The synthetic data: Arrow, no Python per row


def phrase_vocabulary(seed: int, size: int = 4000) -> pa.Array:
    """Phrases of 2-5 words with punctuation; three rare ones carry the search keyword (a body
    of ~55 phrases holds it with a probability of ~4 %)."""
    chooser = random.Random(seed)
    phrases = [
        "".join(chooser.choices(WORDS, k=chooser.randint(2, 5))) + chooser.choice(PUNCTUATION)
        for _ in range(size - 3)
    ]
    phrases += [f"{KEYWORD}产业链", f"布局{KEYWORD}，", f"{KEYWORD}量产。"]
    return pa.array(phrases)


def uniform(count: int, low: int, high: int, seed: int) -> pa.Array:
    """``count`` random integers in [low, high]."""
    draws = pc.random(count, initializer=seed)
    return pc.add(pc.floor(pc.multiply(draws, high - low + 1)).cast(pa.int64()), low)


def token_strings(
    count: int, low: int, high: int, tokens: pa.Array, seed: int, sep: str = ""
) -> pa.Array:
    """``count`` strings, each ``low``..``high`` random tokens joined."""
    lengths = uniform(count, low, high, seed).cast(pa.int32())
    offsets = pa.concat_arrays([pa.array([0], pa.int32()), pc.cumulative_sum(lengths)])
    picks = uniform(pc.sum(lengths).as_py(), 0, len(tokens) - 1, seed + 1)
    lists = pa.ListArray.from_arrays(offsets, tokens.take(picks))
    return pc.binary_join(lists, sep)


def hex_strings(count: int, chooser: random.Random, width: int = 16) -> pa.Array:
    data = chooser.randbytes(count * width // 2).hex().encode()
    offsets = pa.array(range(0, count * width + 1, width), pa.int32())
    return pa.StringArray.from_buffers(count, offsets.buffers()[1], pa.py_buffer(data))


def interleave(first: pa.Array, second: pa.Array) -> pa.Array:
    """[first[0], second[0], first[1], second[1], …] computed by Arrow, not row by row."""
    position = pa.array(range(2 * len(first)), pa.int64())
    order = pc.add(pc.divide(position, 2), pc.multiply(pc.bit_wise_and(position, 1), len(first)))
    return pa.concat_arrays([first, second]).take(order)


def run_id_of(day: dt.date, seed: int) -> str:
    """Sortable like a crawl's run ids (started-at, then a random suffix)."""
    return f"{day:%Y%m%d}T230000000000-bench{seed:03d}"


def category_url(slug: str) -> str:
    return f"{SITE}/category/{slug}.html"


@dataclass
class Day:
    """One day of the lake: its run, the first versions, the second versions, the sightings."""

    day: dt.date
    run_id: str
    first: pa.Table  # ARTICLES, one row per info_code
    second: pa.Table  # ARTICLES, the ~3 % that changed, fetched 6 hours later
    sightings: pa.Table  # SIGHTINGS, own category page + emnews for ~30 %


@dataclass
class Generator:
    seed: int
    vocab: pa.Array = field(init=False)
    words: pa.Array = field(init=False)
    categories: pa.Array = field(init=False)
    outlets: pa.Array = field(init=False)

    def __post_init__(self) -> None:
        self.vocab = phrase_vocabulary(self.seed)
        self.words = pa.array(WORDS)
        self.categories = pa.array(SLUGS)
        self.outlets = pa.array(OUTLETS)

    def day(self, day_index: int, count: int) -> Day:
        """One day's articles: 18-digit codes prefixed by the day, categories skewed."""
        day = FIRST_DAY + dt.timedelta(days=day_index)
        seed = self.seed * 1000 + day_index * 20
        chooser = random.Random(seed)
        run_id = run_id_of(day, self.seed)
        prefix = int(day.strftime("%Y%m%d")) * 10**10 + 3 * 10**9
        steps = pc.multiply(pa.array(range(count), pa.int64()), 7)
        codes = pc.add(pc.add(steps, uniform(count, 0, 6, seed)), prefix).cast(pa.string())
        skewed = pc.power(pc.random(count, initializer=seed + 2), 2.0)
        category = self.categories.take(pc.floor(pc.multiply(skewed, CATEGORIES)).cast(pa.int64()))
        also_emnews = pc.less(pc.random(count, initializer=seed + 3), EMNEWS_SHARE)
        own = pa.ListArray.from_arrays(pa.array(range(count + 1), pa.int32()), category)
        both = pa.ListArray.from_arrays(
            pa.array(range(0, 2 * count + 1, 2), pa.int32()),
            interleave(category, pa.array(["emnews"] * count)),  # sorted: c… < emnews
        )
        midnight = int(dt.datetime.combine(day, dt.time(), SHANGHAI).timestamp())
        published = pc.add(uniform(count, 0, 86_399, seed + 4), midnight)
        fetched = pc.multiply(pc.add(published, uniform(count, 60, 3_600, seed + 5)), 1000)
        nw = pc.less(pc.random(count, initializer=seed + 6), 0.5)
        has_digest = pc.less(pc.random(count, initializer=seed + 7), 0.2)
        title = token_strings(count, 3, 6, self.words, seed + 8)
        raw = pc.if_else(nw, pc.binary_join_element_wise("NW", codes, ""), codes)
        tags = pa.ListArray.from_arrays(
            pa.array([0] * (count + 1), pa.int32()), pa.array([], pa.string())
        )
        first = pa.table(
            {
                "info_code": codes,
                "info_code_raw": raw,
                "url": pc.binary_join_element_wise(
                    f"{SITE}/", category, f"/{day:%Y/%m/%d}/", raw, ".html", ""
                ),
                "category": category,
                "categories": pc.if_else(also_emnews, both, own),
                "title": title,
                "published_at": published.cast(pa.timestamp("s", tz="+08:00")),
                "published_at_source": pa.array(["page"] * count),
                "source": self.outlets.take(uniform(count, 0, len(OUTLETS) - 1, seed + 9)),
                "digest": pc.if_else(has_digest, title, pa.scalar(None, pa.string())),
                "body": token_strings(count, 22, 88, self.vocab, seed + 10),
                "source_url": pc.binary_join_element_wise(
                    "https://finance.eastmoney.com/a/", codes, ".html", ""
                ),
                "content_hash": hex_strings(count, chooser),
                "fetched_at": fetched.cast(pa.timestamp("ms", tz="UTC")),
                "run_id": pa.array([run_id] * count),
                "extractor": pa.array([EXTRACTOR] * count),
                "extraction_path": pa.array(["region"] * count),
                "category_page": pc.binary_join_element_wise(
                    f"{SITE}/category/", category, ".html", ""
                ),
                "tags": tags,
            },
            schema=ARTICLES,
        )
        changed = first.filter(
            pc.less(pc.random(count, initializer=seed + 11), SECOND_VERSION_SHARE)
        )
        later = pc.add(changed.column("fetched_at").cast(pa.int64()), 6 * 3_600_000)
        replaced = {
            "body": pc.binary_join_element_wise(changed.column("body"), "（更新）", ""),
            "content_hash": hex_strings(changed.num_rows, chooser),
            "fetched_at": later.cast(pa.timestamp("ms", tz="UTC")),
        }
        for name, column in replaced.items():
            changed = changed.set_column(changed.schema.get_field_index(name), name, column)
        return Day(day, run_id, first, changed, self.sightings(first))

    @staticmethod
    def sightings(articles: pa.Table) -> pa.Table:
        """Every article seen on its category page; those also listed in emnews seen there."""
        own = pa.table(
            {
                "info_code": articles.column("info_code"),
                "info_code_raw": articles.column("info_code_raw"),
                "url": articles.column("url"),
                "category": articles.column("category"),
                "listed_on": articles.column("category_page"),
                "seen_at": articles.column("fetched_at"),
                "run_id": articles.column("run_id"),
            },
            schema=SIGHTINGS,
        )
        listed = articles.filter(pc.greater(pc.list_value_length(articles.column("categories")), 1))
        emnews = pa.table(
            {
                "info_code": listed.column("info_code"),
                "info_code_raw": listed.column("info_code_raw"),
                "url": listed.column("url"),
                "category": pa.array(["emnews"] * listed.num_rows, pa.string()),
                "listed_on": pa.array([category_url("emnews")] * listed.num_rows, pa.string()),
                "seen_at": listed.column("fetched_at"),
                "run_id": listed.column("run_id"),
            },
            schema=SIGHTINGS,
        )
        return pa.concat_tables([own, emnews])


def listing_pages() -> list[tuple[str, str]]:
    """(URL, slug) of the pages a day's run lists: every category page and emnews."""
    return [(category_url(slug), slug) for slug in [*SLUGS, "emnews"]]


def fetch_result(url: str, size: int, at: dt.datetime, content: bytes = b"") -> FetchResult:
    return FetchResult(
        url=url,
        final_url=url,
        status=200,
        content=content or bytes(size),
        content_type="text/html; charset=utf-8",
        elapsed_s=0.3,
        attempts=1,
        fetched_at=at,
    )


def listing_row(url: str, slug: str, at: dt.datetime, run_id: str, refs: int) -> dict[str, Any]:
    return {
        "url": url,
        "kind": "category",
        "category": slug,
        "status": 200,
        "etag": None,
        "last_modified": at.strftime("%a, %d %b %Y %H:%M:%S GMT"),
        "content_hash": f"{hash((url, at)) & (2**64 - 1):016x}",
        "refs": refs,
        "checked_at": at,
        "run_id": run_id,
    }


def run_row(run_id: str, started: dt.datetime, articles: int, commits: int) -> dict[str, Any]:
    row: dict[str, Any] = {name: None for name in RUNS.names if name != "snapshot_id"}
    row.update(
        run_id=run_id,
        flow="crawl",
        status="completed",
        site=SITE,
        categories=["all"],
        started_at=started,
        finished_at=started + dt.timedelta(minutes=30),
        elapsed_s=1800.0,
        categories_listed=CATEGORIES + 1,
        pages_fetched=articles + CATEGORIES + 1,
        refs_seen=articles,
        new_articles=articles,
        new_versions=0,
        duplicates_skipped=0,
        failures=0,
        not_modified=0,
        retried=0,
        extractor=EXTRACTOR,
        commits=commits,
        commit_retries=0,
    )
    return row


def to_articles(table: pa.Table) -> list[Article]:
    """Arrow rows back into the records a crawl's batch task hands over."""
    names = [item.name for item in fields(Article) if item.name in table.column_names]
    return [
        Article(**{name: row[name] for name in names} | {"tags": tuple(row["tags"])})
        for row in table.select(names).to_pylist()
    ]


def to_refs(table: pa.Table) -> list[ArticleRef]:
    columns = ("url", "info_code", "info_code_raw", "category", "listed_on")
    return [ArticleRef(**row) for row in table.select(columns).to_pylist()]


# ---------------------------------------------------------------------------------------------
# The benchmark


class Bench:
    def __init__(
        self, root: Path, articles: int, seed: int, build: str, batch: int, runs: int
    ) -> None:
        self.root = root
        self.articles = articles
        self.seed = seed
        self.build = build
        self.batch = batch
        self.runs = runs
        self.generator = Generator(seed)
        self.commits: dict[str, list[float]] = defaultdict(list)  # build commits, by kind
        self.retries = 0
        self.stats: dict[str, float] = defaultdict(float)

    def _retry(self) -> None:
        self.retries += 1

    def run(self, command: str) -> list[str]:
        started_at = dt.datetime.now().astimezone()
        loads = {"start": load_average()}
        note(f"lake in {self.root}; building {self.articles:,} articles ({self.build})")
        started = time.perf_counter()
        if self.build == "lander":
            self.build_with_lander()
        else:
            self.build_in_bulk()
        build_s = time.perf_counter() - started
        loads["after build"] = load_average()
        files_built = files_per_table(self.root)
        disk_built = disk_mb(self.root)
        note(f"built in {build_s:.1f} s; compacting")

        first = compact(self.root, retention=RETENTION)
        loads["after compaction 1"] = load_average()
        note(f"compacted in {first.elapsed_s:.1f} s; timing queries")
        code, recent = self.sample_codes()
        compacted = self.measure(code)
        loads["after queries 1"] = load_average()
        note("queries timed; landing the small runs")

        small = self.small_runs(recent)
        loads["after small runs"] = load_average()
        files_between = files_per_table(self.root)
        note("small runs landed; timing queries between compactions")
        between = self.measure(code)
        loads["after queries 2"] = load_average()
        note("compacting again")
        second = compact(self.root, retention=RETENTION)
        files_after = files_per_table(self.root)
        after = self.measure(code)
        loads["end"] = load_average()
        note("done")
        return self.report(
            command,
            started_at,
            loads,
            build_s,
            disk_built,
            files_built,
            first,
            compacted,
            small,
            files_between,
            between,
            second,
            files_after,
            after,
        )

    # -- building ----------------------------------------------------------------------------

    def days(self) -> list[tuple[int, int]]:
        return [
            (index, self.articles // DAYS + (1 if index < self.articles % DAYS else 0))
            for index in range(DAYS)
        ]

    def count(self, day: Day) -> None:
        self.stats["versions"] += day.first.num_rows + day.second.num_rows
        self.stats["second"] += day.second.num_rows
        self.stats["sightings"] += day.sightings.num_rows
        self.stats["body_bytes"] += pc.sum(pc.binary_length(day.first.column("body"))).as_py()

    def build_with_lander(self) -> None:
        """One run per day, as a crawl lands it: listing commits for the sightings, batch
        commits of ``batch`` articles (their fetches in the fetch log), one batch of the day's
        second versions (fetched later), and the run's ``finish``."""
        session = open_writer(self.root)
        try:
            for index, count in self.days():
                day = self.generator.day(index, count)
                self.count(day)
                self.land_day(session, day)
                if index % 10 == 9:
                    note(
                        f"day {index + 1}/{DAYS}: {self.stats['versions']:,.0f} versions; "
                        f"last batch commit {self.commits['batch'][-1]:.2f} s, "
                        f"listing {self.commits['listing'][-1]:.2f} s"
                    )
        finally:
            session.close()

    def land_day(self, session: duckdb.DuckDBPyConnection, day: Day) -> None:
        lander = Lander(session, day.run_id, on_retry=self._retry)
        at = dt.datetime.combine(day.day, dt.time(23), SHANGHAI)
        pages = listing_pages()
        commits = 0
        refs = to_refs(day.sightings)
        chunks = range(0, max(len(refs), 1), self.batch)
        for number, start in enumerate(chunks):
            page_chunk = pages[
                number * len(pages) // len(chunks) : (number + 1) * len(pages) // len(chunks)
            ]
            fetches = [("category", fetch_result(url, LISTING_BYTES, at)) for url, _ in page_chunk]
            started = time.perf_counter()
            lander.listing(fetches, (), refs[start : start + self.batch])
            self.commits["listing"].append(time.perf_counter() - started)
            commits += 1
        categories: dict[str, list[str]] = {
            code: cats
            for code, cats in zip(
                day.first.column("info_code").to_pylist(),
                day.first.column("categories").to_pylist(),
                strict=True,
            )
        }
        for kind, table in (("batch", day.first), ("second versions", day.second)):
            for start in range(0, table.num_rows, self.batch):
                articles = to_articles(table.slice(start, self.batch))
                fetches = tuple(
                    ("article", fetch_result(article.url, PAGE_BYTES, article.fetched_at))
                    for article in articles
                )
                batch = ArticleBatch(tuple(articles), fetches, ())
                started = time.perf_counter()
                lander.batch(batch, categories)
                self.commits[kind].append(time.perf_counter() - started)
                commits += 1
        rows = [listing_row(url, slug, at, day.run_id, 20) for url, slug in pages]
        started = time.perf_counter()
        lander.finish(rows, run_row(day.run_id, at, day.first.num_rows, commits + 1))
        self.commits["finish"].append(time.perf_counter() - started)

    def build_in_bulk(self) -> None:
        """The same rows as ``build_with_lander``, inserted in transactions of
        ``DAYS_PER_TRANSACTION`` days through one writer session."""
        session = open_writer(self.root)
        try:
            days: list[Day] = []
            for index, count in self.days():
                days.append(self.generator.day(index, count))
                self.count(days[-1])
                if len(days) == DAYS_PER_TRANSACTION or index == DAYS - 1:
                    started = time.perf_counter()
                    tables = bulk_tables(days)
                    commit(
                        session,
                        lambda s, tables=tables: insert_tables(s, tables),
                        tag=f"bench-bulk-{index}",
                        message="bulk",
                    )
                    self.commits["bulk transaction"].append(time.perf_counter() - started)
                    note(f"day {index + 1}/{DAYS}: {self.stats['versions']:,.0f} versions")
                    days = []
        finally:
            session.close()

    # -- measuring ---------------------------------------------------------------------------

    def sample_codes(self) -> tuple[str, list[ArticleRef]]:
        """One info_code to look up; references of the last day's articles (already landed and
        sighted) that the small runs list again."""
        with open_reader(self.root) as session:
            code = session.execute(
                "SELECT info_code FROM articles USING SAMPLE reservoir(1 ROWS) REPEATABLE (7)"
            ).fetchone()[0]
            last = dt.datetime.combine(FIRST_DAY + dt.timedelta(days=DAYS - 1), dt.time(), SHANGHAI)
            rows = session.execute(
                "SELECT url, info_code, info_code_raw, category, category_page FROM articles "
                "WHERE published_at >= ? ORDER BY info_code LIMIT 2000",
                [last],
            ).fetchall()
        return code, [ArticleRef(*row) for row in rows]

    def measure(self, code: str) -> QueryTimes:
        times = QueryTimes()
        queries = {"lookup": LOOKUP.format(code=code), "per_day": PER_DAY, "like": LIKE}
        with connect_read_only(self.root) as session:
            for key, sql in queries.items():
                times.session[key] = timed(lambda sql=sql: session.execute(sql).fetchall())
                times.answers[key] = session.execute(sql).fetchall()
        for key, sql in queries.items():
            times.fresh[key] = timed(lambda sql=sql: run_query(self.root, sql))
        times.open_reader = timed(lambda: connect_read_only(self.root).close())
        assert len(times.answers["lookup"]) == 1, times.answers["lookup"]
        refs = self.known_check_refs()
        session = open_writer(self.root)
        try:
            times.known = timed(lambda: known_refs(session, refs))
            known = known_refs(session, refs)
        finally:
            session.close()
        half = KNOWN_REFS // 2
        assert len(known.info_codes) == half and len(known.urls) == half, (
            len(known.info_codes),
            len(known.urls),
        )
        return times

    def known_check_refs(self) -> list[ArticleRef]:
        """A 5,000-reference run: half the references landed already, half new."""
        half = KNOWN_REFS // 2
        with open_reader(self.root) as session:
            rows = session.execute(
                "SELECT url, info_code, info_code_raw, category, category_page FROM articles "
                f"USING SAMPLE reservoir({half} ROWS) REPEATABLE (11)"
            ).fetchall()
        known = [ArticleRef(*row) for row in rows]
        new = [
            ArticleRef(
                url=f"{SITE}/c000/2099/01/01/{20990101 * 10**10 + index}.html",
                info_code=str(20990101 * 10**10 + index),
                info_code_raw=str(20990101 * 10**10 + index),
                category="c000",
                listed_on=category_url("c000"),
            )
            for index in range(half)
        ]
        return known + new

    def small_runs(self, recent: list[ArticleRef]) -> dict[str, list[float]]:
        """``runs`` small runs on top of the lake, each as a crawl does it: open a writer, read
        the crawl state, check which references are known, one listing commit (its pages'
        fetches, 20 new posts' sightings and 80 known ones), one batch commit (20 articles,
        their fetches and raw pages), ``finish``."""
        chooser = random.Random(self.seed)
        last = FIRST_DAY + dt.timedelta(days=DAYS - 1)
        times: dict[str, list[float]] = defaultdict(list)
        for run in range(self.runs):
            run_started = time.perf_counter()
            now = dt.datetime.now(dt.UTC)
            run_id = f"{now:%Y%m%dT%H%M%S%f}-small{run:03d}"
            started = time.perf_counter()
            session = open_writer(self.root)
            times["open_writer"].append(time.perf_counter() - started)
            try:
                started = time.perf_counter()
                load_state(session)
                times["load_state"].append(time.perf_counter() - started)
                articles = [
                    self.small_article(chooser, last, run, index, now) for index in range(20)
                ]
                new_refs = [
                    ArticleRef(
                        a.url, a.info_code, a.info_code_raw, a.category, a.category_page or ""
                    )
                    for a in articles
                ]
                refs = new_refs + chooser.sample(recent, min(80, len(recent)))
                started = time.perf_counter()
                known_refs(session, refs)
                times["known_refs"].append(time.perf_counter() - started)
                lander = Lander(session, run_id, on_retry=self._retry)
                pages = chooser.sample(listing_pages(), 10)
                fetches = [("category", fetch_result(url, LISTING_BYTES, now)) for url, _ in pages]
                started = time.perf_counter()
                lander.listing(fetches, (), refs)
                times["listing"].append(time.perf_counter() - started)
                raw = [
                    (ref, fetch_result(a.url, 0, now, page_html(a)))
                    for ref, a in zip(new_refs, articles, strict=True)
                ]
                batch = ArticleBatch(
                    tuple(articles),
                    tuple(("article", result) for _, result in raw),
                    (),
                    tuple(raw),
                )
                started = time.perf_counter()
                lander.batch(batch, {a.info_code: [a.category] for a in articles})
                times["batch"].append(time.perf_counter() - started)
                rows = [listing_row(url, slug, now, run_id, 20) for url, slug in pages]
                started = time.perf_counter()
                lander.finish(rows, run_row(run_id, now, len(articles), 3))
                times["finish"].append(time.perf_counter() - started)
            finally:
                session.close()
            elapsed = time.perf_counter() - run_started
            times["run (warehouse work)"].append(elapsed)
            if run % 20 == 19:
                note(f"small run {run + 1}/{self.runs}: {elapsed:.2f} s")
        return times

    @staticmethod
    def small_article(
        chooser: random.Random, last: dt.date, run: int, index: int, now: dt.datetime
    ) -> Article:
        day = last - dt.timedelta(days=chooser.randint(0, 1))
        code = f"{day:%Y%m%d}9{run:03d}{index:06d}"
        slug = chooser.choice(SLUGS)
        body = "".join(chooser.choices(WORDS, k=200)) + ("" if chooser.random() > 0.04 else KEYWORD)
        return Article(
            info_code=code,
            info_code_raw=code,
            url=f"{SITE}/{slug}/{day:%Y/%m/%d}/{code}.html",
            category=slug,
            title="".join(chooser.choices(WORDS, k=4)),
            published_at=dt.datetime.combine(day, dt.time(12), SHANGHAI),
            source=chooser.choice(OUTLETS),
            digest=None,
            body=body,
            source_url=None,
            content_hash=f"{chooser.getrandbits(64):016x}",
            fetched_at=now,
            extractor=EXTRACTOR,
            extraction_path="region",
            category_page=category_url(slug),
        )

    # -- reporting ---------------------------------------------------------------------------

    def report(
        self,
        command: str,
        started_at: dt.datetime,
        loads: dict[str, str],
        build_s: float,
        disk_built: float,
        files_built: dict[str, tuple[int, int]],
        first: CompactionReport,
        compacted: QueryTimes,
        small: dict[str, list[float]],
        files_between: dict[str, tuple[int, int]],
        between: QueryTimes,
        second: CompactionReport,
        files_after: dict[str, tuple[int, int]],
        after: QueryTimes,
    ) -> list[str]:
        versions = int(self.stats["versions"])
        articles_landed = versions - int(self.stats["second"])
        how = (
            f"`Lander` commits: one run per day, listing and batch commits of {self.batch:,} "
            "articles, a batch of second versions, a `finish`"
            if self.build == "lander"
            else f"bulk INSERTs through a writer session, {DAYS_PER_TRANSACTION} days per "
            "transaction"
        )
        groups = len(compacted.answers["per_day"])
        hits = compacted.answers["like"][0][0]
        lines = [
            f"- command: `{command}`",
            f"- started {started_at:%Y-%m-%d %H:%M:%S %Z}; duckdb {duckdb.__version__}, "
            f"pyarrow {pa.__version__}, os.cpu_count() = {os.cpu_count()}",
            "- load averages (1/5/15 min): "
            + "; ".join(f"{phase} {value}" for phase, value in loads.items()),
            f"- lake: {articles_landed:,} articles ({versions:,} versions, "
            f"{int(self.stats['second']):,} second versions), {int(self.stats['sightings']):,} "
            f"sightings, {DAYS} days, {CATEGORIES} categories, {groups:,} (category, day) "
            f"groups; body {self.stats['body_bytes'] / articles_landed:,.0f} bytes on average; "
            f"`{KEYWORD}` in {hits:,} bodies ({hits / articles_landed:.1%})",
            f"- built through {how}; no raw pages in the build (the small runs land theirs)",
            "- timings: median of 5 after 1 warm-up; *session*: one `connect_read_only` session "
            "for all; *run_query*: a fresh sandboxed session per query, as `finews sql`",
            "",
            "| phase | time | notes |",
            "| --- | --- | --- |",
            f"| build | {build_s:.1f} s | {disk_built:,.0f} MB on disk; "
            f"{sum(count for count, _ in files_built.values()):,} data files |",
            f"| compaction 1 | {first.elapsed_s:.1f} s | {first.files_before:,} → "
            f"{first.files_after:,} files; {first.snapshots_expired} snapshots expired, "
            f"{first.files_deleted} files deleted |",
            f"| {self.runs} small runs | {sum(small['run (warehouse work)']):.1f} s | "
            f"{self.retries} commit retries (build and runs) |",
            f"| compaction 2 | {second.elapsed_s:.1f} s | {second.files_before:,} → "
            f"{second.files_after:,} files; {second.snapshots_expired} snapshots expired, "
            f"{second.files_deleted} files deleted; lake {disk_mb(self.root):,.0f} MB on disk |",
            "",
            "| table | files built | compacted | after small runs | compacted again | MB | ≤ 2 |",
            "| --- | --- | --- | --- | --- | --- | --- |",
        ]
        for table in TABLES:
            count, size = files_after.get(table, (0, 0))
            lines.append(
                f"| {table} | {files_built.get(table, (0, 0))[0]:,} | {first[table].files_after} "
                f"| {files_between.get(table, (0, 0))[0]:,} | {count} | {size / 1e6:,.1f} "
                f"| {met(count <= 2)} |"
            )
        lines += [
            "",
            "| measure | target | compacted: session; run_query | between compactions | "
            "compacted again | met (worst of the session timings) |",
            "| --- | --- | --- | --- | --- | --- |",
        ]
        phases = (compacted, between, after)
        for key, what, target in (
            ("lookup", "one `info_code` lookup in `articles`", 0.05),
            ("per_day", "articles per category per day", 0.3),
            ("like", f"`count(*) WHERE body LIKE '%{KEYWORD}%'`", 2.0),
        ):
            values = [f"{times.session[key]}; {times.fresh[key]}" for times in phases]
            worst = Timing(
                max(times.session[key].wall for times in phases),
                max(times.session[key].cpu for times in phases),
            )
            lines.append(
                f"| {what} | ≤ {seconds(target)} | {' | '.join(values)} | {worst.met(target)} |"
            )
        known = Timing(
            max(times.known.wall for times in phases), max(times.known.cpu for times in phases)
        )
        lines += [
            f"| `known_refs`, {KNOWN_REFS:,} refs (half known), writer session | ≤ 1 s | "
            + " | ".join(str(times.known) for times in phases)
            + f" | {known.met(1.0)} |",
            "| opening a `connect_read_only` session (part of every `run_query`) | | "
            + " | ".join(str(times.open_reader) for times in phases)
            + " | |",
            "",
        ]
        lines += self.commit_table(small)
        return lines

    def commit_table(self, small: dict[str, list[float]]) -> list[str]:
        requests = 10 + 20  # listing pages + articles of a small run
        lines = [
            "| commit (or step) | count | median | p95 | max |",
            "| --- | --- | --- | --- | --- |",
        ]
        for kind, samples in self.commits.items():
            lines.append(
                f"| build: {kind} | {len(samples):,} | {seconds(statistics.median(samples))} | "
                f"{seconds(p95(samples))} | {seconds(max(samples))} |"
            )
        for kind, samples in small.items():
            lines.append(
                f"| small run: {kind} | {len(samples):,} | {seconds(statistics.median(samples))} "
                f"| {seconds(p95(samples))} | {seconds(max(samples))} |"
            )
        work = statistics.median(small["run (warehouse work)"])
        commits = statistics.median(
            [
                sum(parts)
                for parts in zip(small["listing"], small["batch"], small["finish"], strict=True)
            ]
        )
        fetching = requests / RPS
        lines += [
            "",
            f"- a small run's 3 commits: {commits:.2f} s (median); its warehouse work (open, "
            f"state, known-id check, commits): {work:.2f} s, i.e. {work / (work + fetching):.0%} "
            f"of a run whose {requests} requests take {fetching:.0f} s at the default "
            f"{RPS:g} request/s",
        ]
        for kind in ("listing", "batch"):
            samples = self.commits.get(kind)
            if samples:
                tenth = max(1, len(samples) // 10)
                lines.append(
                    f"- build {kind} commits ({self.batch:,} rows each): median "
                    f"{statistics.median(samples[:tenth]):.2f} s over the first tenth of the "
                    f"build, {statistics.median(samples[-tenth:]):.2f} s over the last tenth"
                )
        return lines


def page_html(article: Article) -> bytes:
    """The page as fetched: the body in a page of boilerplate (~20 KB, as the site's)."""
    boilerplate = "<div class='nav'>" + "".join(
        f"<a href='/category/{s}.html'>{s}</a>" for s in SLUGS
    )
    return f"<html><body>{boilerplate}<article>{article.body}</article></body></html>".encode()


def bulk_tables(days: list[Day]) -> dict[str, pa.Table]:
    """What a run of Lander commits would leave for these days, as Arrow tables."""
    first = pa.concat_tables([day.first for day in days])
    second = pa.concat_tables([day.second for day in days])
    stays = pc.invert(pc.is_in(first.column("info_code"), value_set=second.column("info_code")))
    versions = pa.concat_tables([first, second])
    fetches = pa.table(
        {
            "url": versions.column("url"),
            "final_url": versions.column("url"),
            "kind": pa.array(["article"] * versions.num_rows),
            "status": pa.array([200] * versions.num_rows, pa.int32()),
            "bytes": pa.array([PAGE_BYTES] * versions.num_rows, pa.int64()),
            "elapsed_s": pa.array([0.3] * versions.num_rows),
            "attempts": pa.array([1] * versions.num_rows, pa.int32()),
            "error": pa.nulls(versions.num_rows, pa.string()),
            "fetched_at": versions.column("fetched_at"),
            "run_id": versions.column("run_id"),
        },
        schema=FETCH_LOG,
    )
    checks, runs, listing_fetches = [], [], []
    for day in days:
        at = dt.datetime.combine(day.day, dt.time(23), SHANGHAI)
        for url, slug in listing_pages():
            checks.append(listing_row(url, slug, at, day.run_id, 20))
            listing_fetches.append(
                {
                    "url": url,
                    "final_url": url,
                    "kind": "category",
                    "status": 200,
                    "bytes": LISTING_BYTES,
                    "elapsed_s": 0.3,
                    "attempts": 1,
                    "error": None,
                    "fetched_at": at,
                    "run_id": day.run_id,
                }
            )
        runs.append(run_row(day.run_id, at, day.first.num_rows, 1) | {"snapshot_id": None})
    return {
        "articles": pa.concat_tables([first.filter(stays), second]),
        "article_versions": versions,
        "sightings": pa.concat_tables([day.sightings for day in days]),
        "fetch_log": pa.concat_tables(
            [fetches, pa.Table.from_pylist(listing_fetches, schema=FETCH_LOG)]
        ),
        "listing_checks": pa.Table.from_pylist(checks, schema=LISTING_STATE),
        "runs": pa.Table.from_pylist(runs, schema=RUNS),
    }


def insert_tables(session: duckdb.DuckDBPyConnection, tables: dict[str, pa.Table]) -> None:
    for name, table in tables.items():
        session.register("bulk_rows", table)
        try:
            session.execute(f"INSERT INTO {ALIAS}.{name} BY NAME SELECT * FROM bulk_rows")
        finally:
            session.unregister("bulk_rows")


if __name__ == "__main__":
    raise SystemExit(main())
