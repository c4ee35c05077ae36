"""The importer's limits, measured: hostile files refused in seconds, the largest plans inside
the limits imported in seconds, and the text that makes the readers work hardest.

    uv run python bench/importer_limits.py [--quick] [--keep DIR]

Every file is generated at run time into a temporary folder (a .docx bomb is a zip of a few
hundred KB; a 50 MB text file is sparse). Three tables:

1. Hostile files, each through `python -m bot import FILE` in its own process, as an admin
   would run it, against a SQLite path that does not exist yet: the file's size on disk, the
   exit code, the wall time (including the interpreter's start, about 1 s), whether the
   database file was created, and the message.
2. Plans at the size limits (and the 100,000-line plan the issue asks about): parse time, the
   time to store the plan in a fresh SQLite database (`plans.import_plan`, as `duban import`
   does), and the peak RSS of the process that did both.
3. Text inside the limits shaped to be slow to read (runs of digits, numbers in one endless
   clause, a column of vertically merged cells, ...): parse time and peak RSS.

--quick skips the plans at the item limit in table 2 and the slowest rows of table 3.
Limits are in bot/importer/limits.py; the README's importer section lists them.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterable
from pathlib import Path
from queue import Empty

from sqlmodel import Session

from bot import db
from bot.i18n import Translator
from bot.importer import limits
from bot.importer.model import PlanFormatError
from bot.importer.parse import parse_plan_file
from bot.services import plans

ROOT = Path(__file__).resolve().parent.parent
TIMEOUT = 600.0

# ---- generators --------------------------------------------------------------------------

_CONTENT_TYPES = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
    '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
    '<Default Extension="rels" '
    'ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
    '<Default Extension="xml" ContentType="application/xml"/>'
    '<Default Extension="png" ContentType="image/png"/>'
    '<Override PartName="/word/document.xml" ContentType="application/'
    'vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/></Types>'
)
_RELS = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
    '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
    '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/'
    'relationships/officeDocument" Target="word/document.xml"/></Relationships>'
)
_DOC_HEAD = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?><w:document '
    'xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"><w:body>'
)
_DOC_TAIL = "</w:body></w:document>"


def write_docx(path: Path, body: Iterable[str], extra: dict[str, bytes] | None = None) -> Path:
    """A minimal .docx whose body is the given XML pieces, streamed into the zip."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        archive.writestr("[Content_Types].xml", _CONTENT_TYPES)
        archive.writestr("_rels/.rels", _RELS)
        with archive.open("word/document.xml", "w") as stream:
            stream.write(_DOC_HEAD.encode())
            batch: list[str] = []
            for piece in body:
                batch.append(piece)
                if len(batch) >= 10_000:
                    stream.write("".join(batch).encode())
                    batch.clear()
            stream.write(("".join(batch) + _DOC_TAIL).encode())
        for name, data in (extra or {}).items():
            archive.writestr(name, data)
    return path


def para(text: str) -> str:
    """One paragraph of a .docx body."""
    return f"<w:p><w:r><w:t>{text}</w:t></w:r></w:p>"


def table(rows: Iterable[list[str]]) -> Iterable[str]:
    """A .docx table, one row at a time."""
    yield "<w:tbl>"
    for row in rows:
        yield "<w:tr>" + "".join(f"<w:tc>{para(cell)}</w:tc>" for cell in row) + "</w:tr>"
    yield "</w:tbl>"


def understate_size(path: Path, member: str, declared: int) -> Path:
    """Rewrite the zip's central directory to declare `declared` bytes for `member`."""
    data = bytearray(path.read_bytes())
    for found in re.finditer(rb"PK\x01\x02", data):
        at = found.start()
        name_len = int.from_bytes(data[at + 28 : at + 30], "little")
        if data[at + 46 : at + 46 + name_len] == member.encode():
            data[at + 24 : at + 28] = declared.to_bytes(4, "little")
    path.write_bytes(bytes(data))
    return path


def plan_lines(items: int, body_lines: int = 0) -> Iterable[str]:
    """A Chinese work plan: a title, sections 一、... (at most 99) and items 1. .. N (numbered
    on), each item with `body_lines` lines of body."""
    per_section = max(100, -(-items // 99))
    yield "江门市教育局2023年工作要点"
    for number in range(1, items + 1):
        if (number - 1) % per_section == 0:
            yield f"{_cn(1 + (number - 1) // per_section)}、第{(number - 1) // per_section + 1}板块"
        yield f"{number}. 完成第{number}项工作任务。新增学位超1万个，年底前完成。"
        for _ in range(body_lines):
            yield "推进相关工作，确保按时完成，由基础教育科牵头。"


def _cn(n: int) -> str:
    digits = "零一二三四五六七八九"
    if n < 10:
        return digits[n]
    tens, ones = divmod(n, 10)
    return ("" if tens == 1 else digits[tens]) + "十" + (digits[ones] if ones else "")


def write_lines(path: Path, lines: Iterable[str]) -> Path:
    """A UTF-8 text file of lines."""
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def yaml_plan(items: int) -> str:
    """A plain-YAML plan of `items` items, 100 to a section."""
    out = ["plan:", "  title: Big plan 2024", "sections:"]
    for number in range(1, items + 1):
        if (number - 1) % 100 == 0:
            out += [f"  - title: Section {(number - 1) // 100 + 1}", "    items:"]
        out += [
            f"      - title: 完成第{number}项工作任务，新增学位超1万个",
            "        body: 推进相关工作，确保年底前完成。",
            "        lead_units: [基础教育科, 计财科]",
            "        deadline: 2024-06-30",
        ]
    return "\n".join(out) + "\n"


def tsv_plan(items: int) -> str:
    """A tab-separated task table of `items` rows."""
    rows = ["2024年重点任务分工", "序号\t任务\t牵头单位\t配合单位\t完成时限"]
    rows += [
        f"{n}\t完成第{n}项工作任务，新增学位超1万个\t基础教育科\t计财科\t2024年6月底前"
        for n in range(1, items + 1)
    ]
    return "\n".join(rows) + "\n"


def billion_laughs(levels: int = 6, width: int = 10) -> str:
    """YAML whose aliases expand to width**levels targets, in about 2 KB."""
    lines = ['t0: &t0 {metric: 学位, comparator: ">=", value: 1}']
    lines += [
        f"t{k}: &t{k} [" + ", ".join([f"*t{k - 1}"] * width) + "]" for k in range(1, levels + 1)
    ]
    lines += [
        "plan: {title: x}",
        f"sections: [{{title: s, items: [{{title: i, targets: *t{levels}}}]}}]",
    ]
    return "\n".join(lines) + "\n"


# ---- running -----------------------------------------------------------------------------


def run_cli(path: Path, workdir: Path) -> tuple[int, float, bool, str]:
    """`python -m bot import path` against a database that does not exist yet."""
    database = workdir / f"{path.stem}.db"
    database.unlink(missing_ok=True)
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{database}", "LOCALE": "zh-CN"}
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "bot", "import", str(path)],
        capture_output=True,
        text=True,
        env=env,
        cwd=workdir,
        timeout=TIMEOUT,
        check=False,
    )
    seconds = time.perf_counter() - start
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    message = lines[-1] if lines else proc.stdout.splitlines()[0] if proc.stdout else ""
    return proc.returncode, seconds, database.exists(), message


def _measure(path: Path, store: bool, queue: mp.Queue) -> None:  # type: ignore[type-arg]
    start = time.perf_counter()
    outcome = ""
    parsed_at = stored_at = None
    try:
        parsed = parse_plan_file(path)
        parsed_at = time.perf_counter() - start
        outcome = f"{len(parsed.items)} items"
        if store:
            database = path.with_suffix(".db")
            database.unlink(missing_ok=True)
            engine = db.make_engine(f"sqlite:///{database}")
            db.upgrade(engine)
            began = time.perf_counter()
            with Session(engine) as session:
                plans.import_plan(session, parsed, source_file=path.name, actor="cli")
                session.commit()
            stored_at = time.perf_counter() - began
            engine.dispose()
    except PlanFormatError as exc:
        parsed_at = time.perf_counter() - start
        outcome = exc.render(Translator("en"))
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    queue.put((outcome, parsed_at, stored_at, rss))


def measure(path: Path, *, store: bool) -> tuple[str, float | None, float | None, float]:
    """Parse (and store) a plan file in a fresh process: outcome, seconds, seconds, peak MB."""
    queue: mp.Queue = mp.get_context("fork").Queue()  # type: ignore[type-arg]
    proc = mp.get_context("fork").Process(target=_measure, args=(path, store, queue))
    proc.start()
    try:
        result = queue.get(timeout=TIMEOUT)
    except Empty:
        proc.kill()
        result = (f"not done after {TIMEOUT:.0f} s", None, None, 0.0)
    proc.join()
    return result


def _secs(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f} s"


def _size(path: Path) -> str:
    size = path.stat().st_size
    on_disk = path.stat().st_blocks * 512
    shown = f"{size / 1024:,.0f} KB" if size < 10 * limits.MB else f"{size / limits.MB:,.0f} MB"
    return shown + (" (sparse)" if on_disk < size // 2 else "")


Builder = Callable[[Path], Path]


def hostile_cases() -> list[tuple[str, Builder]]:
    """The files the issue names, and the other ways past a limit."""
    return [
        (
            "docx: a million paragraphs",
            lambda d: write_docx(d / "million.docx", (para("一、段落") for _ in range(1_000_000))),
        ),
        (
            "docx: a million empty paragraphs",
            lambda d: write_docx(d / "empty-paras.docx", ("<w:p/>" for _ in range(1_000_000))),
        ),
        (
            "docx: a 60 MB picture",
            lambda d: write_docx(
                d / "picture.docx",
                [para("一、x")],
                {"word/media/image1.png": bytes(60 * limits.MB)},
            ),
        ),
        (
            "docx: size understated in the zip",
            lambda d: understate_size(
                write_docx(d / "liar.docx", (para("一、段落") for _ in range(1_000_000))),
                "word/document.xml",
                1000,
            ),
        ),
        (
            "docx: a cell spanning 10^9 columns",
            lambda d: write_docx(
                d / "span.docx",
                [
                    '<w:tbl><w:tr><w:tc><w:tcPr><w:gridSpan w:val="1000000000"/></w:tcPr>'
                    f"{para('序号')}</w:tc></w:tr></w:tbl>"
                ],
            ),
        ),
        ("yaml: billion laughs", lambda d: _write(d / "laughs.yaml", billion_laughs())),
        (
            "yaml: nested 100,000 deep, one line",
            lambda d: _write(d / "deep1.yaml", "[" * 100_000 + "]" * 100_000 + "\n"),
        ),
        (
            "yaml: nested 100,000 deep, 200 lines",
            lambda d: _write(
                d / "deep.yaml", ("[" * 1000 + "\n") * 100 + ("]" * 1000 + "\n") * 100
            ),
        ),
        ("txt: 50 MB", _sparse_text),
        ("txt: one 50 MB line", lambda d: _write(d / "line.txt", "一" * (50 * limits.MB // 3))),
        ("txt: one 1.9 MB line", lambda d: _write(d / "line2.txt", "x" * (19 * limits.MB // 10))),
        (
            "txt: 500,001 characters",
            lambda d: write_lines(d / "chars.txt", ["一" * 9_999] * 50 + ["一" * 51]),
        ),
        (
            "txt: 100,000-line plan",
            lambda d: write_lines(d / "lines-100k.txt", plan_lines(100_000)),
        ),
        (
            "txt: 100,000 short lines",
            lambda d: write_lines(
                d / "short-100k.txt", ["一、板块", *(f"{n}.任务" for n in range(1, 100_000))]
            ),
        ),
        ("txt: 2,001 items", lambda d: write_lines(d / "items.txt", plan_lines(2_001))),
        (
            "txt: a 600-character title",
            lambda d: write_lines(d / "title.txt", ["一、板块", "1. " + "标题" * 300]),
        ),
    ]


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def _sparse_text(folder: Path) -> Path:
    path = folder / "sparse.txt"
    with path.open("wb") as handle:
        handle.write("一、板块\n1. 任务\n".encode())
        handle.truncate(50 * limits.MB)
    return path


def plan_cases(quick: bool) -> list[tuple[str, Builder]]:
    """Plans at the limits, and the 100,000-line plan of the issue."""
    cases: list[tuple[str, Builder]] = [
        ("txt: items 1..1,002", lambda d: write_lines(d / "k.txt", plan_lines(1_002))),
        (
            "txt: 100,000 lines (10,000 items)",
            lambda d: write_lines(d / "p100k.txt", plan_lines(10_000, 9)),
        ),
        (
            "txt: 19,001 short lines (19,000 items)",
            lambda d: write_lines(
                d / "p19k.txt", ["一、板块", *(f"{n}.任务{n}" for n in range(1, 19_001))]
            ),
        ),
    ]
    if not quick:
        cases += [
            (
                "txt: 2,000 items, 19,000 lines",
                lambda d: write_lines(d / "p2k.txt", plan_lines(2_000, 8)),
            ),
            ("yaml: 2,000 items", lambda d: _write(d / "p2k.yaml", yaml_plan(2_000))),
            ("tsv: 2,000 rows", lambda d: _write(d / "p2k.tsv", tsv_plan(2_000))),
            (
                "docx: 2,000-row table",
                lambda d: write_docx(
                    d / "p2k.docx",
                    table(
                        [["序号", "任务", "牵头单位", "完成时限"]]
                        + [
                            [
                                str(n),
                                f"完成第{n}项工作任务，新增学位超1万个",
                                "基础教育科",
                                "6月底前",
                            ]
                            for n in range(1, 2_001)
                        ]
                    ),
                ),
            ),
        ]
    return cases


def slow_text_cases(quick: bool) -> list[tuple[str, Builder]]:
    """Text inside every limit, shaped to be slow to read."""

    def items_of(unit: str, items: int, chars: int) -> Callable[[Path], Path]:
        def build(folder: Path) -> Path:
            body = (unit * (chars // len(unit) + 1))[:chars]
            lines = ["一、板块"]
            for number in range(1, items + 1):
                lines.append(f"{number}. 任务{number}。")
                lines += [body[k : k + 5_000] for k in range(0, len(body), 5_000)]
            name = "".join(ch for ch in unit if ch.isascii() and ch.isalnum()) or "cn"
            return write_lines(folder / f"slow-{name}-{items}.txt", lines)

        return build

    cases: list[tuple[str, Builder]] = [
        ("runs of digits (45 items x 9,900)", items_of("1", 45, 9_900)),
        ("runs of numerals 〇 (45 x 9,900)", items_of("〇", 45, 9_900)),
        (
            "docx: 1,999 vertically merged rows",
            lambda d: write_docx(
                d / "vmerge.docx",
                [
                    "<w:tbl>",
                    f"<w:tr><w:tc>{para('序号')}</w:tc><w:tc>{para('任务')}</w:tc></w:tr>",
                    *(
                        f"<w:tr><w:tc>{para(str(n))}</w:tc><w:tc><w:tcPr><w:vMerge/></w:tcPr>"
                        f"{para('')}</w:tc></w:tr>"
                        for n in range(1, 2_000)
                    ),
                    "</w:tbl>",
                ],
            ),
        ),
    ]
    if not quick:
        cases += [
            ("1个 in one clause (45 x 9,900)", items_of("1个", 45, 9_900)),
            ("6月底前 repeated (45 x 9,900)", items_of("6月底前", 45, 9_900)),
        ]
    return cases


def main() -> None:
    """Generate the files, run them, print the three tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="skip the slowest cases")
    parser.add_argument("--keep", type=Path, help="generate the files here and keep them")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="duban-limits-") as tmp:
        folder = args.keep or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)

        print("1. Hostile files: `python -m bot import FILE` (a fresh SQLite path)\n")
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "bot", "--help"], capture_output=True, check=True)
        print(f"(`python -m bot --help` alone takes {time.perf_counter() - started:.2f} s)\n")
        print(f"{'case':38} {'on disk':>16} {'exit':>4} {'wall':>8} {'db':>3}  message")
        for name, build in hostile_cases():
            path = build(folder)
            code, seconds, created, message = run_cli(path, folder)
            print(
                f"{name:38} {_size(path):>16} {code:>4} {seconds:>6.2f} s "
                f"{'yes' if created else 'no':>3}  {message}",
                flush=True,
            )
            path.unlink()

        print("\n2. Plans at the limits: parse, then store in a fresh SQLite database\n")
        print(f"{'case':38} {'on disk':>16} {'parse':>9} {'store':>9} {'peak RSS':>9}  outcome")
        for name, build in plan_cases(args.quick):
            path = build(folder)
            outcome, parsed, stored, rss = measure(path, store=True)
            print(
                f"{name:38} {_size(path):>16} {_secs(parsed):>9} {_secs(stored):>9} "
                f"{rss:>6.0f} MB  {outcome}",
                flush=True,
            )

        print("\n3. Slow text inside the limits: parse only\n")
        print(f"{'case':38} {'on disk':>16} {'parse':>9} {'peak RSS':>9}  outcome")
        for name, build in slow_text_cases(args.quick):
            path = build(folder)
            outcome, parsed, _, rss = measure(path, store=False)
            print(
                f"{name:38} {_size(path):>16} {_secs(parsed):>9} {rss:>6.0f} MB  {outcome}",
                flush=True,
            )


if __name__ == "__main__":
    main()
