"""The README and ``docs/`` as readers use them: the commands shown work, the links resolve.

Every ``finews …`` command in a fenced block of README.md or docs/*.md (shell line
continuations with ``\\`` joined, ``# comments`` dropped, ``--opt=value`` understood) is
checked against the real click group, ``flows.cli.cli``: each command and subcommand must
exist and each option must be one of its parameters; the whole line must then parse as click
would parse it (types, choices, required arguments). ``finews …`` in inline code is checked
for commands and option names. The cheap examples run for real: every ``--help`` one, and
every ``finews sql`` one, plus the example SQL, against a warehouse from a crawl of the replica.
``python -m replica`` and ``tests/bench_*.py`` examples must name options their scripts have,
every relative link must point at an existing file (and heading, when it names one), and
every requirement of pyproject.toml must be in the README's dependency table with its range.
"""

from __future__ import annotations

import math
import re
import shlex
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from flows.cli import cli
from replica.server import ReplicaServer

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"


def doc_files() -> list[Path]:
    return [README, *sorted((ROOT / "docs").glob("*.md"))]


# CI runs this line (.ci/run); the README shows it as "the test command".
CI_TEST_COMMAND = (
    "python3 -m venv .venv && .venv/bin/pip install -e '.[dev]' && .venv/bin/ruff check . "
    "&& .venv/bin/ruff format --check . && .venv/bin/pytest"
)

_FENCE = re.compile(r"^\s*(`{3,}|~{3,})\s*([\w+-]*)")
_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
_CODE_SPAN = re.compile(r"(`+)(.+?)\1")
_LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_LINK_DEFINITION = re.compile(r"^\s*\[[^\]]+\]:\s*<?(\S+?)>?(?:\s.*)?$")
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")
_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
_PLACEHOLDER = re.compile(r"^<[^<>]+>$")
_OPERATORS = frozenset(";&|")
_BENCH = re.compile(r"^(?:\./)?(tests/bench_\w+\.py)$")


# --------------------------------------------------------------------------------------------
# Reading the Markdown


@dataclass(frozen=True)
class Snippet:
    """One logical line of a fenced block, or one inline code span, where it was written."""

    path: Path
    line: int
    text: str
    fenced: bool
    lang: str = ""

    def where(self) -> str:
        try:
            name = self.path.relative_to(ROOT)
        except ValueError:
            name = self.path
        return f"{name}:{self.line}: {self.text}"


@dataclass(frozen=True)
class Example:
    """One command of a snippet: its words, from the program on (environment left out)."""

    snippet: Snippet
    words: tuple[str, ...]

    @property
    def program(self) -> str:
        return self.words[0]


def _logical_lines(lines: list[tuple[int, str]]) -> Iterator[tuple[int, str]]:
    """Lines of a fenced block with shell continuations (a trailing backslash) joined."""
    start, parts = None, []
    for number, line in lines:
        if start is None:
            start = number
        stripped = line.rstrip()
        if stripped.endswith("\\") and not stripped.endswith("\\\\"):
            parts.append(stripped[:-1])
            continue
        parts.append(line)
        yield start, " ".join(part.strip() for part in parts)
        start, parts = None, []
    if parts and start is not None:
        yield start, " ".join(part.strip() for part in parts)


def snippets(path: Path) -> list[Snippet]:
    """Fenced-block lines and inline code spans of a Markdown file, in order."""
    found: list[Snippet] = []
    fence: str | None = None
    lang = ""
    block: list[tuple[int, str]] = []
    paragraph: list[tuple[int, str]] = []

    def flush_paragraph() -> None:
        if not paragraph:
            return
        first = paragraph[0][0]
        text = "\n".join(line for _, line in paragraph)
        for match in _CODE_SPAN.finditer(text):
            line = first + text.count("\n", 0, match.start())
            found.append(Snippet(path, line, " ".join(match.group(2).split()), fenced=False))
        paragraph.clear()

    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        opening = _FENCE.match(line)
        if fence is None:
            if opening:
                flush_paragraph()
                fence, lang, block = opening.group(1), opening.group(2).lower(), []
            elif line.strip():
                paragraph.append((number, line))
            else:
                flush_paragraph()
            continue
        if line.strip().startswith(fence[0] * len(fence)) and not line.strip().strip(fence[0]):
            found.extend(
                Snippet(path, start, text, fenced=True, lang=lang)
                for start, text in _logical_lines(block)
                if text.strip()
            )
            fence = None
            continue
        block.append((number, line))
    flush_paragraph()
    assert fence is None, f"{path}: a fenced block is never closed"
    return found


def _strip_comment(text: str) -> str:
    """The line without its shell comment: a ``#`` starting a word, outside quotes."""
    quote: str | None = None
    escaped = False
    for index, char in enumerate(text):
        if escaped:
            escaped = False
        elif char == "\\" and quote != "'":
            escaped = True
        elif quote:
            if char == quote:
                quote = None
        elif char in "'\"":
            quote = char
        elif char == "#" and (index == 0 or text[index - 1].isspace()):
            return text[:index]
    return text


def shell_commands(text: str) -> list[list[str]]:
    """The simple commands of a shell line: words split as the shell would, operators apart."""
    lexer = shlex.shlex(_strip_comment(text), posix=True, punctuation_chars=";&|")
    lexer.whitespace_split = True
    lexer.commenters = ""
    commands: list[list[str]] = [[]]
    for token in lexer:
        if token and set(token) <= _OPERATORS:
            commands.append([])
        else:
            commands[-1].append(token)
    return [command for command in commands if command]


def examples(snippet: Snippet) -> list[Example]:
    """The commands a snippet shows (``FOO=bar finews …`` counts as ``finews …``)."""
    if snippet.lang == "sql" or not snippet.text.strip():
        return []
    if not snippet.fenced and not re.match(r"\S*\bfinews(\s|$)", snippet.text):
        return []  # inline code is prose: only what reads as a finews command is checked
    try:
        commands = shell_commands(snippet.text)
    except ValueError as exc:
        if "finews" in snippet.text:
            raise AssertionError(f"{snippet.where()}\n  cannot be split: {exc}") from None
        return []
    found = []
    for command in commands:
        while command and _ASSIGNMENT.match(command[0]):
            command = command[1:]
        if command:
            found.append(Example(snippet, tuple(command)))
    return found


def all_examples(paths: list[Path]) -> list[Example]:
    return [example for path in paths for s in snippets(path) for example in examples(s)]


def is_finews(example: Example) -> bool:
    return example.program == "finews" or example.program.endswith("/finews")


def sql_statements(paths: list[Path]) -> list[tuple[Snippet, str]]:
    """The statements of the ```sql blocks (``--`` comment lines dropped)."""
    statements = []
    for path in paths:
        current: list[str] = []
        first: Snippet | None = None
        for snippet in snippets(path):
            if snippet.lang != "sql":
                continue
            text = snippet.text.strip()
            if not text or text.startswith("--"):
                continue
            first = first or snippet
            current.append(text)
            if text.endswith(";"):
                statements.append((first, " ".join(current).rstrip(";")))
                current, first = [], None
        assert not current, f"{path}: a SQL example does not end with ';'"
    return statements


# --------------------------------------------------------------------------------------------
# Checking a finews command against the click group


def _context(command: click.Command, name: str, parent: click.Context | None) -> click.Context:
    return click.Context(command, info_name=name, parent=parent, **command.context_settings)


def _option(params: list[click.Parameter], token: str) -> click.Option | None:
    name = token.split("=", 1)[0] if token.startswith("--") else token
    for param in params:
        if isinstance(param, click.Option) and name in (*param.opts, *param.secondary_opts):
            return param
    return None


def _takes_value(option: click.Option) -> bool:
    return not option.is_flag and not option.count


@dataclass
class Resolved:
    """Where a finews command line leads: the command, its context's parent, its own args."""

    command: click.Command
    parent: click.Context | None
    path: str
    args: list[str]


def resolve(words: tuple[str, ...]) -> tuple[list[Resolved], list[str]]:
    """Resolve commands and option names as click would; placeholders expand to every command.

    Returns the commands reached (several when ``<command>`` stands for any of them) and the
    problems found (unknown command, unknown option, option missing its value, extra argument).
    """
    reached: list[Resolved] = []
    problems: list[str] = []
    pending = [(list(words[1:]), cli, _context(cli, "finews", None), "finews")]
    while pending:
        args, command, ctx, path = pending.pop(0)
        params = command.get_params(ctx)
        index = 0
        positional: list[str] = []
        only_arguments = False
        while index < len(args):
            token = args[index]
            index += 1
            if token == "--" and not only_arguments:
                only_arguments = True
                continue
            if token.startswith("-") and token != "-" and not only_arguments:
                option = _option(params, token)
                if option is None:
                    problems.append(f"'{path}' has no option {token.split('=', 1)[0]!r}")
                    continue
                if _takes_value(option) and "=" not in token:
                    if index + option.nargs > len(args):
                        problems.append(f"'{path}' option {token!r} is missing its value")
                    index += option.nargs
                continue
            if isinstance(command, click.Group):
                names = command.list_commands(ctx) if _PLACEHOLDER.match(token) else [token]
                for name in names:
                    sub = command.get_command(ctx, name)
                    if sub is None:
                        problems.append(f"'{path}' has no command {name!r}")
                        continue
                    pending.append((args[index:], sub, _context(sub, name, ctx), f"{path} {name}"))
                break
            positional.append(token)
        else:
            if isinstance(command, click.Group):
                reached.append(Resolved(command, ctx.parent, path, args))
                continue
            arguments = [p for p in params if isinstance(p, click.Argument)]
            room = sum(math.inf if p.nargs < 0 else p.nargs for p in arguments)
            if len(positional) > room:
                problems.append(f"'{path}' takes no argument {positional[int(room)]!r}")
            reached.append(Resolved(command, ctx.parent, path, args))
    return reached, problems


def _asks_for_help(resolved: Resolved) -> bool:
    ctx = _context(resolved.command, resolved.path.split()[-1], resolved.parent)
    return any(token in ctx.help_option_names for token in resolved.args)


def cli_problems(example: Example) -> list[str]:
    """What is wrong with a finews example, as it would reach the real command line."""
    reached, problems = resolve(example.words)
    if problems or not example.snippet.fenced:
        return problems
    for resolved in reached:
        if isinstance(resolved.command, click.Group) or _asks_for_help(resolved):
            continue  # a group without a command shows its help; --help is run for real
        name = resolved.path.split()[-1]
        try:
            resolved.command.make_context(name, list(resolved.args), parent=resolved.parent)
        except click.ClickException as exc:
            problems.append(f"'{resolved.path}': {exc.format_message()}")
    return problems


def report(problems: list[tuple[Example | Snippet, str]]) -> str:
    lines = []
    for where, problem in problems:
        snippet = where.snippet if isinstance(where, Example) else where
        lines.append(f"{snippet.where()}\n    {problem}")
    return "\n".join(lines)


def all_cli_problems(paths: list[Path]) -> list[tuple[Example, str]]:
    return [
        (example, problem)
        for example in all_examples(paths)
        if is_finews(example)
        for problem in cli_problems(example)
    ]


# --------------------------------------------------------------------------------------------
# Links


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)
    text = re.sub(r"[^\w\- ]", "", text.lower())
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    seen: dict[str, int] = {}
    found = set()
    fence: str | None = None
    for line in path.read_text(encoding="utf-8").splitlines():
        opening = _FENCE.match(line)
        if opening and (fence is None or opening.group(1)[0] == fence):
            fence = None if fence else opening.group(1)[0]
            continue
        heading = _HEADING.match(line)
        if fence is None and heading:
            base = slug(heading.group(2))
            count = seen.get(base, 0)
            seen[base] = count + 1
            found.add(base if count == 0 else f"{base}-{count}")
    return found


def _prose(path: Path) -> Iterator[tuple[int, str]]:
    """Lines outside fenced blocks, inline code removed (links there are examples, not links)."""
    fence: str | None = None
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        opening = _FENCE.match(line)
        if opening and (fence is None or opening.group(1)[0] == fence):
            fence = None if fence else opening.group(1)[0]
            continue
        if fence is None:
            yield number, _CODE_SPAN.sub("", line)


def link_problems(path: Path) -> list[str]:
    problems = []
    for number, line in _prose(path):
        targets = [m.group(1) for m in _LINK.finditer(line)]
        definition = _LINK_DEFINITION.match(line)
        if definition:
            targets.append(definition.group(1))
        for target in targets:
            if _SCHEME.match(target) or target.startswith("//"):
                continue  # another site
            file_part, _, anchor = target.partition("#")
            linked = (path.parent / file_part).resolve() if file_part else path
            where = f"{path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}:{number}"
            if not linked.exists():
                problems.append(f"{where}: link to {target!r}: no such file")
            elif anchor and linked.suffix == ".md" and anchor not in anchors(linked):
                problems.append(f"{where}: link to {target!r}: no such heading")
    return problems


# --------------------------------------------------------------------------------------------
# The tests


def test_the_readme_shows_the_command_ci_runs() -> None:
    fenced = [s.text for s in snippets(README) if s.fenced]
    assert CI_TEST_COMMAND in fenced, "the README's test command must stay exactly what CI runs"


def _range(specifier: str) -> str:
    """``>=3.4,<4`` as the README writes it: ``≥ 3.4, < 4``; ``==2.3.1`` as ``pinned 2.3.1``."""
    if specifier.startswith("=="):
        return f"pinned {specifier[2:]}"
    signs = {">=": "≥ ", "<=": "≤ ", ">": "> ", "<": "< ", "!=": "≠ ", "~=": "~= "}
    parts = []
    for part in specifier.split(","):
        operator = re.match(r"[<>=!~]+", part.strip())
        assert operator, specifier
        parts.append(signs[operator.group(0)] + part.strip()[operator.end() :])
    return ", ".join(parts)


def test_every_dependency_and_its_range_is_explained_in_the_readme() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    requirements = [*project["dependencies"]]
    for extra in project.get("optional-dependencies", {}).values():
        requirements += extra
    section = README.read_text(encoding="utf-8").split("\n## Dependencies\n", 1)[1]
    section = section.split("\n## ", 1)[0]
    missing = []
    for requirement in requirements:
        name, specifier = re.match(r"([A-Za-z0-9_.-]+)\s*(.*)", requirement).groups()
        shown = f"{name} ({_range(specifier.replace(' ', ''))})"
        if shown not in section:
            missing.append(shown)
    assert not missing, f"pyproject.toml requirements the README does not explain: {missing}"


def test_the_examples_are_found() -> None:
    """The extraction itself: the README shows every command, and the docs' examples are seen."""
    readme = [
        e
        for e in all_examples([README])
        if is_finews(e) and e.snippet.fenced and not any(_PLACEHOLDER.match(w) for w in e.words)
    ]
    reached = {r.path for e in readme for r in resolve(e.words)[0]}
    assert {f"finews {name}" for name in cli.list_commands(click.Context(cli))} <= reached
    for path in doc_files():
        # Counted apart from the parser: lines inside fences that start with "finews ".
        shown, inside = 0, False
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.lstrip().startswith(("```", "~~~")):
                inside = not inside
            elif inside and re.match(r"\s*finews\s", line):
                shown += 1
        extracted = [e for e in all_examples([path]) if e.program == "finews" and e.snippet.fenced]
        assert len(extracted) == shown, f"{path}: {shown} finews lines, {len(extracted)} found"


def test_every_finews_example_matches_the_cli() -> None:
    problems = all_cli_problems(doc_files())
    assert not problems, "commands in the docs that the CLI refuses:\n" + report(problems)


def test_help_examples_run() -> None:
    runner = CliRunner()
    ran = 0
    for example in all_examples(doc_files()):
        if not (is_finews(example) and example.snippet.fenced):
            continue
        for resolved in resolve(example.words)[0]:
            if not _asks_for_help(resolved):
                continue
            args = [*resolved.path.split()[1:], *resolved.args]
            result = runner.invoke(cli, args, prog_name="finews")
            assert result.exit_code == 0, f"{example.snippet.where()}\n{result.output}"
            assert result.output.startswith(f"Usage: {resolved.path}"), result.output
            ran += 1
    assert ran >= len(cli.commands), "every command's --help is shown and run"


@pytest.fixture(scope="module")
def crawled(
    site: dict[str, bytes], tmp_path_factory: pytest.TempPathFactory, cli_env: dict[str, str]
) -> Path:
    """A warehouse from a crawl of the replica, as `finews crawl` makes it."""
    warehouse = tmp_path_factory.mktemp("docs") / "warehouse"
    # Prefect's temporary server gets as long to start as the suite's harness (20 s by default:
    # too short on a busy 2-core machine).
    env = {**cli_env, "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "90"}
    with ReplicaServer(site) as server:
        crawl = subprocess.run(
            [
                *(sys.executable, "-m", "flows.cli", "crawl"),
                f"--site={server.base_url}",
                *("--warehouse", str(warehouse), "--rps", "0"),
            ],
            capture_output=True,
            text=True,
            env=env,
            timeout=240,
            check=False,
        )
    assert crawl.returncode == 0, crawl.stdout + crawl.stderr
    return warehouse


def _with_warehouse(args: list[str], warehouse: Path) -> list[str]:
    """The example's arguments with its --warehouse (if any) pointing at ``warehouse``, and a
    ``<RUN_ID>`` placeholder naming the crawl's run."""
    if "<RUN_ID>" in args:
        from warehouse import connect

        with connect(warehouse) as session:
            run_id = session.execute("SELECT max(run_id) FROM runs").fetchone()[0]
        args = [run_id if token == "<RUN_ID>" else token for token in args]
    out: list[str] = []
    skip = False
    for token in args:
        if skip:
            out.append(str(warehouse))
            skip = False
        elif token == "--warehouse":
            out.append(token)
            skip = True
        elif token.startswith("--warehouse="):
            out.append(f"--warehouse={warehouse}")
        else:
            out.append(token)
    return out


def test_sql_examples_run_against_a_crawl_of_the_replica(
    crawled: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Examples without --warehouse use the setting, as they would for a reader.
    monkeypatch.setenv("FINEWS_WAREHOUSE", str(crawled))
    monkeypatch.delenv("FINEWS_CONFIG", raising=False)
    runner = CliRunner()
    runs: list[tuple[Example | Snippet, list[str]]] = []
    for example in all_examples(doc_files()):
        if not is_finews(example):
            continue
        for resolved in resolve(example.words)[0]:
            if resolved.path != "finews sql" or _asks_for_help(resolved):
                continue
            query = [
                arg
                for arg in resolved.args
                if not arg.startswith("-") and not _PLACEHOLDER.match(arg)
            ][:1]
            if query and query[0] not in ("…", "..."):  # prose may name the command alone
                runs.append((example, ["sql", *_with_warehouse(resolved.args, crawled)]))
    statements = sql_statements(doc_files())
    runs += [(snippet, ["sql", statement]) for snippet, statement in statements]
    assert len(statements) >= 4 and len(runs) > len(statements)
    failed = []
    for where, args in runs:
        result = runner.invoke(cli, args, prog_name="finews")
        if result.exit_code != 0 or "finews: error" in result.output:
            failed.append((where, f"exit {result.exit_code}: {result.output.strip()}"))
    assert not failed, "examples that do not run:\n" + report(failed)


def _script_options(command: list[str]) -> set[str]:
    result = subprocess.run(
        [*command, "--help"], capture_output=True, text=True, cwd=ROOT, timeout=120, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return set(re.findall(r"(?<![\w-])(--?[A-Za-z][\w-]*)", result.stdout))


def test_replica_and_benchmark_examples_name_real_options() -> None:
    known: dict[str, set[str]] = {}
    problems = []
    checked = 0
    for example in all_examples(doc_files()):
        words = list(example.words)
        if not re.search(r"(^|/)python3?$", example.program):
            continue
        if words[1:3] == ["-m", "replica"]:
            script, args = "replica", words[3:]
            command = [sys.executable, "-m", "replica"]
        elif len(words) > 1 and _BENCH.match(words[1]):
            script, args = _BENCH.match(words[1]).group(1), words[2:]
            if not (ROOT / script).exists():
                problems.append((example, f"no script {script}"))
                continue
            command = [sys.executable, str(ROOT / script)]
        else:
            continue
        if script not in known:
            known[script] = _script_options(command)
        for token in args:
            name = token.split("=", 1)[0]
            if name.startswith("-") and name not in known[script]:
                problems.append((example, f"{script} has no option {name!r}"))
        checked += 1
    assert checked >= 5, "the benchmark commands and the replica command are found"
    assert not problems, "script commands in the docs with unknown options:\n" + report(problems)


def test_relative_links_resolve() -> None:
    problems = [problem for path in doc_files() for problem in link_problems(path)]
    assert not problems, "broken links:\n" + "\n".join(problems)


def test_the_checks_catch_bad_examples(tmp_path: Path) -> None:
    """The checks above can fail: a doc with a bad option, command, value and link is refused."""
    doc = tmp_path / "bad.md"
    doc.write_text(
        "# Bad\n\n"
        "```bash\n"
        "finews crawl --rps=2 \\\n"
        "             --category emnews     # a comment, not --an-option\n"
        "finews crawl --no-such-option\n"
        "finews nosuchcommand --help\n"
        "finews backfill --since yesterday\n"
        "FINEWS_RPS=0 .venv/bin/finews sql 'SELECT 1' --format=xml\n"
        "finews <command> --bogus\n"
        "```\n\n"
        "Inline: `finews compact --full`, [gone](missing.md), [anchor](#nowhere), [ok](#bad).\n",
        encoding="utf-8",
    )
    found = all_examples([doc])
    assert found[0].words == ("finews", "crawl", "--rps=2", "--category", "emnews")
    assert found[0].snippet.line == 4
    problems = [problem for _, problem in all_cli_problems([doc])]
    assert problems[0] == "'finews crawl' has no option '--no-such-option'"
    assert problems[1] == "'finews' has no command 'nosuchcommand'"
    assert "'yesterday' does not match the format" in problems[2]
    assert "'xml' is not one of 'table', 'csv', 'json'" in problems[3]
    bogus = [p for p in problems if "'--bogus'" in p]
    assert len(bogus) == len(cli.commands), "a placeholder stands for every command"
    assert problems[-1] == "'finews compact' has no option '--full'"
    assert len(problems) == 5 + len(cli.commands)
    assert report(all_cli_problems([doc])[:1]).startswith(f"{doc}:6: finews crawl --no-such-option")
    links = link_problems(doc)
    assert [p.split(": ", 1)[1] for p in links] == [
        "link to 'missing.md': no such file",
        "link to '#nowhere': no such heading",
    ]
