"""Benchmark of the warehouse at scale: synthetic articles straight to Parquet, queried by DuckDB.

Run it by hand (pytest does not collect it):

    .venv/bin/python tests/bench_warehouse.py --articles 1000000 [--out DIR] [--keep]

It lands N articles as a crawl would (several run files per day partition, ~3 % of articles
with a second version, sightings), compacts, times the analyst queries through the read-only
catalog, then simulates 100 small incremental runs (each merging its delta, as a crawl does),
times the queries between compactions, and compacts again. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from warehouse.catalog import connect_read_only, refresh_catalog
from warehouse.compaction import compact, merge_delta
from warehouse.retired import retired
from warehouse.schema import ARTICLES, SIGHTINGS
from warehouse.snapshot import data_files
from warehouse.writer import ensure_layout, write_rows

DAYS = 90
CATEGORIES = 200
RUNS_PER_DAY = 8
SECOND_VERSION_SHARE = 0.03
KEYWORD = "固态电池"
FIRST_DAY = dt.date(2026, 8, 28)
SHANGHAI = dt.timezone(dt.timedelta(hours=8))
SITE = "https://finews.withounder.com"
EXTRACTOR = "finews-0.1/trafilatura-2.3.1"
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

Query = Callable[[duckdb.DuckDBPyConnection], object]


def main(argv: Sequence[str] | None = None) -> int:
    """Build, measure and print; returns 0 even when a target is missed (the table says so)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--articles", type=int, default=1_000_000)
    parser.add_argument("--out", type=Path, help="warehouse folder (default: a temporary one)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary warehouse")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    root = args.out or Path(tempfile.mkdtemp(prefix="finews-bench-"))
    if root.exists() and any(root.iterdir()):
        parser.error(f"{root} is not empty")
    try:
        for line in run(root, args.articles, args.seed):
            print(line, flush=True)
    finally:
        if args.out is None and not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    return 0


def run(root: Path, articles: int, seed: int) -> list[str]:
    started = time.perf_counter()
    landed = generate(root, articles, seed)
    generation_s = time.perf_counter() - started
    note(f"generated {landed['rows']:,} article rows in {generation_s:.1f} s")
    refresh_catalog(root)
    files_landed = count_files(root)

    initial = compact(root)
    note(f"initial compaction: {initial.elapsed_s:.1f} s")
    refresh_catalog(root)

    load_before = load_average()
    connection = connect_read_only(root)
    per_day = timed(lambda c: c.execute(CATEGORY_DAY).fetchall(), connection)
    like = timed(lambda c: c.execute(LIKE, [f"%{KEYWORD}%"]).fetchone(), connection)
    code = connection.execute("SELECT info_code FROM articles USING SAMPLE 1 ROWS").fetchone()[0]
    lookup = timed(lambda c: c.execute(LOOKUP, [code]).fetchall(), connection)
    view_count = timed(lambda c: c.execute("SELECT count(*) FROM articles").fetchone(), connection)
    plain_sql = PLAIN.format(files=landed_files(root))
    plain_count = timed(lambda c: c.execute(plain_sql).fetchone(), connection)
    counted = connection.execute("SELECT count(*) FROM articles").fetchone()[0]
    distinct = connection.execute(plain_sql).fetchone()[0]
    matches = connection.execute(LIKE, [f"%{KEYWORD}%"]).fetchone()[0]
    groups = len(connection.execute(CATEGORY_DAY).fetchall())
    column_view, column_plain = scan_pair(connection, root)
    connection.close()
    assert counted == distinct == articles, (counted, distinct, articles)
    overhead = view_count / plain_count - 1
    load_after = load_average()

    incremental, merging = simulate_runs(root, seed, runs=100)
    files_before = max_files_per_partition(root)
    retired_files = len(retired(root))
    plain_sql = PLAIN.format(files=landed_files(root))
    refresh_catalog(root)
    connection = connect_read_only(root)
    per_day_uncompacted = timed(lambda c: c.execute(CATEGORY_DAY).fetchall(), connection)
    lookup_delta = timed(lambda c: c.execute(LOOKUP, [code]).fetchall(), connection)
    view_delta = timed(lambda c: c.execute("SELECT count(*) FROM articles").fetchone(), connection)
    plain_delta = timed(lambda c: c.execute(plain_sql).fetchone(), connection)
    assert (
        connection.execute("SELECT count(*) FROM articles").fetchone()
        == connection.execute(plain_sql).fetchone()
    )
    column_view_delta, column_plain_delta = scan_pair(connection, root)
    connection.close()
    overhead_delta = view_delta / plain_delta - 1
    report = compact(root)
    files_after = max_files_per_partition(root)
    connection = connect_read_only(root)
    per_day_after = timed(lambda c: c.execute(CATEGORY_DAY).fetchall(), connection)
    connection.close()

    rows: list[tuple[str, str, str, str, bool | None]] = [
        ("a", "articles per category per day", f"{per_day:.3f} s", "≤ 0.3 s", per_day <= 0.3),
        ("b", f"`body LIKE '%{KEYWORD}%'` ({matches:,} hits)", f"{like:.3f} s", "≤ 2 s", like <= 2),
        ("c", "lookup of one info_code", f"{lookup * 1000:.1f} ms", "≤ 50 ms", lookup <= 0.05),
        ("d", "`count(*) FROM articles` (view, dedupe)", f"{view_count:.3f} s", "", None),
        ("d", "`count(DISTINCT info_code)` plain scan", f"{plain_count:.3f} s", "", None),
        ("d", "dedupe overhead (view / plain − 1)", f"{overhead:.0%}", "≤ 30 %", overhead <= 0.3),
        (
            "d'",
            "`sum(length(title))`: view vs every landed row, no dedupe",
            f"{column_view:.3f} s vs {column_plain:.3f} s ({column_view / column_plain - 1:+.0%})",
            "",
            None,
        ),
        (
            "e",
            "max files per partition after 100 runs (each merging its delta, as a crawl does)",
            str(files_before),
            "",
            None,
        ),
        (
            "e",
            f"delta merges of those runs: total (slowest); {retired_files} merged files retired",
            f"{sum(merging):.2f} s ({max(merging):.2f} s)",
            "",
            None,
        ),
        ("e", "(a) between compactions", f"{per_day_uncompacted:.3f} s", "", None),
        ("e", "(c) between compactions", f"{lookup_delta * 1000:.1f} ms", "", None),
        ("e", "(d) between compactions", f"{overhead_delta:.0%}", "", None),
        (
            "e",
            "(d') between compactions",
            f"{column_view_delta:.3f} s vs {column_plain_delta:.3f} s "
            f"({column_view_delta / column_plain_delta - 1:+.0%})",
            "",
            None,
        ),
        (
            "e",
            f"compaction of {report.files_before} files (of which snapshot rebuild)",
            f"{report.elapsed_s:.2f} s ({report.snapshot_s:.2f} s)",
            "",
            None,
        ),
        ("e", "max files per partition, compacted", str(files_after), "≤ 2", files_after <= 2),
        ("e", "(a) after compaction", f"{per_day_after:.3f} s", "", None),
    ]
    size = sum(path.stat().st_size for path in (root / "articles").rglob("*.parquet"))
    header = [
        "",
        f"- articles: {articles:,} ({landed['rows']:,} rows incl. second versions), "
        f"{DAYS} day partitions, {CATEGORIES} categories, {groups:,} (category, day) groups",
        f"- body: {landed['body_bytes']:.0f} bytes on average; articles on disk "
        f"{size / 1e6:,.0f} MB (zstd); sightings rows {landed['sightings']:,}",
        f"- landed as {files_landed:,} files, generated in {generation_s:.1f} s; initial "
        f"compaction {initial.elapsed_s:.1f} s (snapshot {initial.snapshot_s:.1f} s) to "
        f"{count_files(root):,} article files + {snapshot_files(root)} snapshot files",
        f"- incremental: {incremental} rows over 100 runs",
        f"- os.cpu_count() = {os.cpu_count()}, duckdb {duckdb.__version__}, "
        f"pyarrow {pa.__version__}; timings: median of 5 after 1 warm-up; load average "
        f"{load_before} before the timings, {load_after} after",
        "",
        "| # | measure | value | target | met |",
        "| --- | --- | --- | --- | --- |",
    ]
    table = [
        f"| {key} | {what} | {value} | {target} | {'' if ok is None else 'yes' if ok else 'NO'} |"
        for key, what, value, target, ok in rows
    ]
    return header + table


CATEGORY_DAY = "SELECT category, published_at::DATE, count(*) FROM articles GROUP BY ALL"
LIKE = "SELECT count(*) FROM articles WHERE body LIKE ?"
LOOKUP = "SELECT * FROM articles WHERE info_code = ?"
COLUMN_VIEW = "SELECT sum(length(title)) FROM articles"
COLUMN_PLAIN = "SELECT sum(length(title)) FROM read_parquet({files}, union_by_name = true)"
PLAIN = (
    "SELECT count(DISTINCT info_code) FROM read_parquet({files}, union_by_name = true, "
    "hive_partitioning = false)"
)


def scan_pair(connection: duckdb.DuckDBPyConnection, root: Path) -> tuple[float, float]:
    """One column read through the view, and over every landed row without any dedupe."""
    plain = COLUMN_PLAIN.format(files=landed_files(root))
    view = timed(lambda c: c.execute(COLUMN_VIEW).fetchone(), connection)
    return view, timed(lambda c: c.execute(plain).fetchone(), connection)


def load_average() -> str:
    """The timings share the machine: the 1-minute load says how much they were disturbed."""
    return f"{os.getloadavg()[0]:.1f}"


def note(message: str) -> None:
    print(f"# {message}", file=sys.stderr, flush=True)


def timed(query: Query, connection: duckdb.DuckDBPyConnection, runs: int = 5) -> float:
    """Median wall time of ``runs`` runs after one warm-up (file cache and metadata hot)."""
    query(connection)
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        query(connection)
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def landed_files(root: Path) -> str:
    """The ``articles`` table's data files as an SQL list: every landed row, and only those
    (not the snapshot; not files a delta merge retired, which hold copies until deleted)."""
    folder = (root / "articles").resolve()
    paths = [str(folder / name).replace("'", "''") for name in data_files(root, "articles")]
    return "[" + ", ".join(f"'{path}'" for path in paths) + "]"


def count_files(root: Path) -> int:
    return sum(1 for _ in (root / "articles").rglob("part-*.parquet"))


def snapshot_files(root: Path) -> int:
    return sum(1 for _ in (root / "articles_current").glob("snapshot-*.parquet"))


def max_files_per_partition(root: Path) -> int:
    """Data files per partition (retired files, waiting out their grace period, not counted)."""
    gone = retired(root)
    counts = [
        sum(1 for path in folder.glob("part-*.parquet") if str(path.relative_to(root)) not in gone)
        for table in ("articles", "sightings", "fetch_log", "failures")
        for folder in (root / table).glob("dt=*")
    ]
    return max(counts, default=0)


def generate(root: Path, articles: int, seed: int) -> dict[str, float]:
    """Land ``articles`` articles over ``DAYS`` partitions, each day as ``RUNS_PER_DAY`` files."""
    ensure_layout(root)
    vocab = phrase_vocabulary(seed)
    words = pa.array(WORDS)
    categories = pa.array([f"c{index:03d}" for index in range(CATEGORIES)])
    outlets = pa.array(OUTLETS)
    total_rows = sightings = 0
    body_bytes = 0.0
    for day_index in range(DAYS):
        count = articles // DAYS + (1 if day_index < articles % DAYS else 0)
        day = FIRST_DAY + dt.timedelta(days=day_index)
        table = day_articles(day, count, seed + day_index, vocab, words, categories, outlets)
        body_bytes += pc.sum(pc.binary_length(table.column("body"))).as_py()
        total_rows += table.num_rows
        seen = day_sightings(table)
        sightings += seen.num_rows
        land(root, day, table, seen, seed + day_index)
    return {"rows": total_rows, "body_bytes": body_bytes / total_rows, "sightings": sightings}


def phrase_vocabulary(seed: int, size: int = 4000) -> pa.Array:
    """Phrases of 2-5 words with punctuation; three rare ones carry the search keyword."""
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
    """``count`` strings, each ``low``..``high`` random tokens joined: no Python per row."""
    lengths = uniform(count, low, high, seed).cast(pa.int32())
    offsets = pa.concat_arrays([pa.array([0], pa.int32()), pc.cumulative_sum(lengths)])
    picks = uniform(pc.sum(lengths).as_py(), 0, len(tokens) - 1, seed + 1)
    lists = pa.ListArray.from_arrays(offsets, tokens.take(picks))
    return pc.binary_join(lists, sep)


def hex_strings(count: int, chooser: random.Random, width: int = 16) -> pa.Array:
    data = chooser.randbytes(count * width // 2).hex().encode()
    offsets = pa.array(range(0, count * width + 1, width), pa.int32())
    return pa.StringArray.from_buffers(count, offsets.buffers()[1], pa.py_buffer(data))


def day_articles(
    day: dt.date,
    count: int,
    seed: int,
    vocab: pa.Array,
    words: pa.Array,
    categories: pa.Array,
    outlets: pa.Array,
) -> pa.Table:
    """One day's articles (18-digit codes prefixed by the day) plus ~3 % second versions."""
    chooser = random.Random(seed)
    prefix = int(day.strftime("%Y%m%d")) * 10**10 + 3 * 10**9
    steps = pc.multiply(pa.array(range(count), pa.int64()), 7)
    codes = pc.add(pc.add(steps, uniform(count, 0, 6, seed)), prefix).cast(pa.string())
    skewed = pc.power(pc.random(count, initializer=seed + 2), 2.0)
    category = categories.take(pc.floor(pc.multiply(skewed, CATEGORIES)).cast(pa.int64()))
    also_emnews = pc.less(pc.random(count, initializer=seed + 3), 0.3)
    own = pa.ListArray.from_arrays(pa.array(range(count + 1), pa.int32()), category)
    both = pa.ListArray.from_arrays(
        pa.array(range(0, 2 * count + 1, 2), pa.int32()),
        interleave(pa.array(["emnews"] * count), category),
    )
    midnight = int(dt.datetime.combine(day, dt.time(), SHANGHAI).timestamp())
    published = pc.add(uniform(count, 0, 86_399, seed + 4), midnight)
    fetched = pc.multiply(pc.add(published, uniform(count, 60, 3_600, seed + 5)), 1000)
    nw = pc.less(pc.random(count, initializer=seed + 6), 0.5)
    has_digest = pc.less(pc.random(count, initializer=seed + 7), 0.2)
    title = token_strings(count, 3, 6, words, seed + 8)
    tags = pa.ListArray.from_arrays(
        pa.array([0] * (count + 1), pa.int32()), pa.array([], pa.string())
    )
    table = pa.table(
        {
            "info_code": codes,
            "info_code_raw": pc.if_else(nw, pc.binary_join_element_wise("NW", codes, ""), codes),
            "url": pc.binary_join_element_wise(f"{SITE}/", category, "/", codes, ".html", ""),
            "category": category,
            "categories": pc.if_else(also_emnews, both, own),
            "title": title,
            "published_at": published.cast(pa.timestamp("s", tz="+08:00")),
            "published_at_source": pa.array(["page"] * count),
            "source": outlets.take(uniform(count, 0, len(outlets) - 1, seed + 9)),
            "digest": pc.if_else(has_digest, title, pa.scalar(None, pa.string())),
            "body": token_strings(count, 22, 88, vocab, seed + 10),
            "source_url": pc.binary_join_element_wise(
                "https://finance.eastmoney.com/a/", codes, ".html", ""
            ),
            "content_hash": hex_strings(count, chooser),
            "fetched_at": fetched.cast(pa.timestamp("ms", tz="UTC")),
            "run_id": pa.array([f"run-{day}-{index % RUNS_PER_DAY}" for index in range(count)]),
            "extractor": pa.array([EXTRACTOR] * count),
            "extraction_path": pa.array(["region"] * count),
            "category_page": pc.binary_join_element_wise(f"{SITE}/", category, "/", ""),
            "tags": tags,
        },
        schema=ARTICLES,
    )
    changed = table.filter(pc.less(pc.random(count, initializer=seed + 11), SECOND_VERSION_SHARE))
    later = pc.add(changed.column("fetched_at").cast(pa.int64()), 6 * 3_600_000)
    changed = (
        changed.set_column(
            changed.schema.get_field_index("body"),
            "body",
            pc.binary_join_element_wise(changed.column("body"), "（更新）", ""),
        )
        .set_column(
            changed.schema.get_field_index("content_hash"),
            "content_hash",
            hex_strings(changed.num_rows, chooser),
        )
        .set_column(
            changed.schema.get_field_index("fetched_at"),
            "fetched_at",
            later.cast(pa.timestamp("ms", tz="UTC")),
        )
        .set_column(
            changed.schema.get_field_index("run_id"),
            "run_id",
            pa.array([f"run-{day}-{RUNS_PER_DAY - 1}"] * changed.num_rows, pa.string()),
        )
    )
    return pa.concat_tables([table, changed])


def interleave(first: pa.Array, second: pa.Array) -> pa.Array:
    """[first[0], second[0], first[1], second[1], …] computed by Arrow, not row by row."""
    position = pa.array(range(2 * len(first)), pa.int64())
    order = pc.add(pc.divide(position, 2), pc.multiply(pc.bit_wise_and(position, 1), len(first)))
    return pa.concat_arrays([first, second]).take(order)


def day_sightings(articles: pa.Table) -> pa.Table:
    """Every article seen on its category page; those also listed in emnews seen there too."""
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
    in_emnews = articles.filter(pc.greater(pc.list_value_length(articles.column("categories")), 1))
    emnews = pa.table(
        {
            "info_code": in_emnews.column("info_code"),
            "info_code_raw": in_emnews.column("info_code_raw"),
            "url": in_emnews.column("url"),
            "category": pa.array(["emnews"] * in_emnews.num_rows, pa.string()),
            "listed_on": pa.array([f"{SITE}/emnews/"] * in_emnews.num_rows, pa.string()),
            "seen_at": in_emnews.column("fetched_at"),
            "run_id": in_emnews.column("run_id"),
        },
        schema=SIGHTINGS,
    )
    return pa.concat_tables([own, emnews])


def land(root: Path, day: dt.date, articles: pa.Table, sightings: pa.Table, seed: int) -> None:
    """Split by run id into one file per run, like the crawl's batches land them."""
    for table_name, table in (("articles", articles), ("sightings", sightings)):
        folder = root / table_name / f"dt={day}"
        folder.mkdir(parents=True, exist_ok=True)
        for run in range(RUNS_PER_DAY):
            run_id = f"run-{day}-{run}"
            part = table.filter(pc.equal(table.column("run_id"), run_id))
            pq.write_table(part, folder / f"part-{run_id}-{seed}.parquet", compression="zstd")


def simulate_runs(root: Path, seed: int, runs: int) -> tuple[int, list[float]]:
    """Small crawl runs: a few new articles and sightings in the last two days, via write_rows,
    each ending with the delta merge a crawl does (its seconds are returned)."""
    chooser = random.Random(seed)
    last = FIRST_DAY + dt.timedelta(days=DAYS - 1)
    written = 0
    merging: list[float] = []
    for run in range(runs):
        run_id = f"inc-{run:03d}"
        now = dt.datetime.combine(last, dt.time(23), SHANGHAI) + dt.timedelta(minutes=run)
        articles, sightings, fetches = [], [], []
        for index in range(chooser.randint(5, 30)):
            day = last - dt.timedelta(days=chooser.randint(0, 1))
            code = f"{day:%Y%m%d}9{run:03d}{index:06d}"
            category = f"c{chooser.randrange(CATEGORIES):03d}"
            url = f"{SITE}/{category}/{code}.html"
            body = "".join(chooser.choices(WORDS, k=400))
            articles.append(
                {
                    "info_code": code,
                    "info_code_raw": code,
                    "url": url,
                    "category": category,
                    "categories": [category],
                    "title": "".join(chooser.choices(WORDS, k=4)),
                    "published_at": dt.datetime.combine(day, dt.time(12), SHANGHAI),
                    "source": chooser.choice(OUTLETS),
                    "digest": None,
                    "body": body,
                    "source_url": None,
                    "content_hash": f"{chooser.getrandbits(64):016x}",
                    "fetched_at": now,
                    "run_id": run_id,
                    "extractor": EXTRACTOR,
                    "extraction_path": "region",
                    "category_page": f"{SITE}/{category}/",
                    "tags": [],
                    "dt": str(day),
                }
            )
            sightings.append(
                {
                    "info_code": code,
                    "info_code_raw": code,
                    "url": url,
                    "category": category,
                    "listed_on": f"{SITE}/{category}/",
                    "seen_at": now,
                    "run_id": run_id,
                    "dt": str(day),
                }
            )
            fetches.append(
                {
                    "url": url,
                    "final_url": url,
                    "kind": "article",
                    "status": 200,
                    "bytes": len(body) * 3,
                    "elapsed_s": 0.2,
                    "attempts": 1,
                    "error": None,
                    "fetched_at": now,
                    "run_id": run_id,
                    "dt": str(day),
                }
            )
        for table, rows in (("articles", articles), ("sightings", sightings)):
            write_rows(root, table, rows, partition="dt", name=f"{run_id}-00000")
        write_rows(root, "fetch_log", fetches, partition="dt", name=f"{run_id}-00001")
        written += len(articles)
        started = time.perf_counter()
        merge_delta(root)
        merging.append(time.perf_counter() - started)
    return written, merging


if __name__ == "__main__":
    raise SystemExit(main())
