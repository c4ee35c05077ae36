"""Reading plan files into text or into paragraphs and tables.

Text files (``read_text_file``)
    The encoding is decided from the bytes, in this order:

    1. a UTF-8 byte order mark: UTF-8;
    2. a UTF-16 byte order mark (little or big endian): UTF-16;
    3. otherwise UTF-8 if the bytes are valid UTF-8, else GB18030, a superset of GBK and
       GB2312 (what Chinese Windows saves as "ANSI").

    A file without a UTF-16 mark that holds a NUL byte, or in which more than 5% of the
    bytes are control characters other than tab, line feed, carriage return, vertical tab and
    form feed, is binary and refused; so is decoded text (UTF-16) with the same traits.
    In UTF-8 and GB18030 every byte below 0x80 is ASCII, so the test on the raw bytes is
    exact for both.

    The text is then normalised, and only this much: line breaks (``\\r\\n``, ``\\r`` and the
    other breaks ``str.splitlines`` knows) become ``\\n``; whitespace at the end of each line
    (including the full-width space U+3000, tabs and zero-width spaces) is removed, and so
    are blank lines at the end and a stray byte order mark at the start of a line. Leading
    whitespace and leading blank lines are kept (YAML indentation and line numbers, and the
    leading empty cells of tab-separated tables, depend on them). There is deliberately no
    Unicode (NFKC) normalisation: it would rewrite the document's own full-width punctuation.

Word files (``read_docx``)
    A ``.docx`` is read with python-docx into ``DocxContent``: the body's paragraphs and its
    top-level tables, each in document order (paragraphs and tables inside a content control
    are included; headers, footers, text boxes and footnotes are not). Empty paragraphs are
    dropped; soft line breaks inside a paragraph stay as ``\\n``. ``table_positions[k]`` is
    the number of (kept) paragraphs that come before table ``k``, so the paragraphs around a
    table can be found.

    A table is a list of rows, a row a list of cell texts (the cell's paragraphs joined with
    ``\\n``, each line stripped). Merged cells are resolved so columns stay aligned:

    * a cell spanning several columns gives its text in its first column and ``""`` in the
      others (a heading row spanning the table has one non-empty cell);
    * a cell merged over several rows gives its text in every row it covers (a unit or a
      section written once for several tasks applies to each of them);
    * grid columns a row skips at its start or end are ``""``.

    Merges are resolved from the XML, one row at a time (a cell continuing a vertical merge
    takes the text found at its grid column in the row above), not with python-docx's
    ``_Row.cells``, which walks a vertical merge back up row by row and so takes time
    quadratic in its height.

Limits (``limits``)
    A text file larger than 2 MB is refused before it is read, and so is text with more than
    500,000 characters, more than 20,000 lines or a line over 10,000 characters. A .docx
    larger than 20 MB is refused before it is opened; then from its zip directory, before
    python-docx sees it, one whose parts unpack to more than 50 MB, or whose XML parts unpack
    to more than 20 MB; then ``word/document.xml`` is unpacked once as a stream, counting its
    bytes (whatever the directory declares) and its paragraphs, tables, rows and cells
    (``<w:p>``, ``<w:tbl>``, ``<w:tr>``, ``<w:tc>``; at most 50,000). While the text is read: a
    paragraph or cell over 10,000 characters, more than 500,000 characters of text (a cell
    merged down several rows counts in each), more than 20,000 lines in the paragraphs, a
    table row wider than 64 grid columns.

Errors are ``PlanFormatError`` with a one-line message that names the file and says what is
wrong, e.g. ``plan.docx: not a valid .docx file (not a zip archive)`` (key
``importer.docx.not_zip``; zh-CN by default when rendered for a user).
"""

from __future__ import annotations

import codecs
import re
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from docx import Document
from docx.oxml.ns import qn
from docx.oxml.table import CT_Tbl
from docx.oxml.text.paragraph import CT_P
from docx.oxml.xmlchemy import BaseOxmlElement
from docx.table import Table, _Cell
from docx.text.paragraph import Paragraph
from docx.types import ProvidesStoryPart

from bot.importer import limits
from bot.importer.model import PlanFormatError

# Control bytes that do not occur in text: C0 controls except \t \n \v \f \r, and DEL.
_CONTROL_BYTES = bytes([*range(0x00, 0x09), *range(0x0E, 0x20), 0x7F])
_CONTROL_CHARS = frozenset(chr(b) for b in _CONTROL_BYTES)
_MAX_CONTROL_SHARE = 0.05
# Removed from line ends in addition to what str.rstrip removes (which includes U+3000).
_ZERO_WIDTH = "\u200b\u200c\u200d\u2060\ufeff"
# The first bytes of an OLE compound file: an old .doc, or an encrypted Office document.
_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
# The start tags of paragraphs, tables, rows and cells in word/document.xml; at most 7 bytes.
_BLOCK_TAG = re.compile(rb"<w:(?:p|tbl|tr|tc)[\s/>]")
_BLOCK_TAG_MAX = 7
_CHUNK = 1 << 20
# What a damaged or hostile zip raises while a member is unpacked (a bad CRC, a bad deflate
# stream, an encrypted member, an unknown compression method).
_UNPACK_ERRORS = (
    zipfile.BadZipFile,
    zlib.error,
    EOFError,
    OSError,
    RuntimeError,
    NotImplementedError,
)


@dataclass
class DocxContent:
    """The text of a .docx: body paragraphs and tables, each in document order."""

    paragraphs: list[str] = field(default_factory=list)
    tables: list[list[list[str]]] = field(default_factory=list)
    # table_positions[k]: how many paragraphs come before tables[k]
    table_positions: list[int] = field(default_factory=list)


def read_text_file(path: Path) -> str:
    """Read a plan text file (UTF-8, UTF-16 with BOM or GB18030) into normalised text."""
    data = _read_bytes(path)
    if data.startswith(codecs.BOM_UTF8):
        text = _decode(path, data[len(codecs.BOM_UTF8) :], "utf-8")
    elif data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        text = _decode(path, data, "utf-16")
        if _text_looks_binary(text):
            raise PlanFormatError("importer.binary", file=path.name)
    else:
        if _bytes_look_binary(data):
            raise PlanFormatError("importer.binary", file=path.name)
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            text = _decode(path, data, "gb18030")
    text = normalise_text(text)
    if not text.strip():
        raise PlanFormatError("importer.empty", file=path.name)
    limits.check_text(text, path.name)
    return text


def normalise_text(text: str) -> str:
    """Unify line breaks to \\n, strip line ends and drop blank lines at the end."""
    lines = [line.rstrip().rstrip(_ZERO_WIDTH).rstrip() for line in text.splitlines()]
    lines = [line.lstrip("\ufeff") for line in lines]
    while lines and not lines[-1]:
        lines.pop()
    return "\n".join(lines)


def read_docx(path: Path) -> DocxContent:
    """Read the body paragraphs and tables of a .docx file, in document order."""
    limits.check_file_size(path, limits.MAX_DOCX_FILE_BYTES)
    _check_docx_package(path)
    try:
        document = Document(str(path))
    except Exception as exc:  # python-docx raises many kinds for a damaged package
        raise PlanFormatError(
            "importer.docx.unreadable", file=path.name, detail=_one_line(exc)
        ) from exc
    content = DocxContent()
    budget = _TextBudget(path.name)
    try:
        for block in _iter_blocks(document.element.body, document):
            if isinstance(block, Paragraph):
                text = _clean_cell_text(block.text)
                if text:
                    if len(text) > limits.MAX_LINE_CHARS:
                        raise limits.paragraph_too_long(text, path.name)
                    budget.add(text, lines=True)
                    content.paragraphs.append(text)
            else:
                content.table_positions.append(len(content.paragraphs))
                content.tables.append(_table_rows(block, budget))
    except PlanFormatError:
        raise
    except Exception as exc:  # malformed merges and the like
        raise PlanFormatError(
            "importer.docx.damaged_content", file=path.name, detail=_one_line(exc)
        ) from exc
    return content


@dataclass
class _TextBudget:
    """The text read so far from a .docx, held against the text and line limits."""

    file: str
    chars: int = 0
    lines: int = 0

    def add(self, text: str, *, lines: bool) -> None:
        """Count a paragraph (lines=True: its lines count too) or a table cell."""
        self.chars += len(text)
        if self.chars > limits.MAX_TEXT_CHARS:
            raise PlanFormatError(
                "importer.limit.text", file=self.file, limit=limits.MAX_TEXT_CHARS
            )
        if lines:
            self.lines += text.count("\n") + 1
            if self.lines > limits.MAX_LINES:
                raise PlanFormatError(
                    "importer.limit.lines", file=self.file, limit=limits.MAX_LINES
                )


def _read_bytes(path: Path) -> bytes:
    try:
        return limits.read_at_most(path, limits.MAX_TEXT_FILE_BYTES)
    except OSError as exc:
        raise _read_error(path, exc) from exc


def _read_head(path: Path) -> bytes:
    try:
        with path.open("rb") as handle:
            return handle.read(len(_OLE_MAGIC))
    except OSError as exc:
        raise _read_error(path, exc) from exc


def _read_error(path: Path, exc: OSError) -> PlanFormatError:
    if isinstance(exc, FileNotFoundError):
        return PlanFormatError("importer.no_such_file", file=str(path))
    if isinstance(exc, IsADirectoryError):
        return PlanFormatError("importer.is_directory", file=str(path))
    return PlanFormatError(
        "importer.unreadable", file=path.name, reason=exc.strerror or type(exc).__name__
    )


def _decode(path: Path, data: bytes, encoding: str) -> str:
    """Decode with one encoding; GB18030 is the last resort, after UTF-8 failed."""
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as exc:
        if encoding == "gb18030":
            raise PlanFormatError("importer.undecodable.legacy", file=path.name) from exc
        raise PlanFormatError(
            "importer.undecodable.bom", file=path.name, encoding=encoding.upper()
        ) from exc


def _bytes_look_binary(data: bytes) -> bool:
    if b"\x00" in data:
        return True
    controls = len(data) - len(data.translate(None, _CONTROL_BYTES))
    return controls > len(data) * _MAX_CONTROL_SHARE


def _text_looks_binary(text: str) -> bool:
    if "\x00" in text:
        return True
    controls = sum(1 for ch in text if ch in _CONTROL_CHARS)
    return controls > len(text) * _MAX_CONTROL_SHARE


def _check_docx_package(path: Path) -> None:
    """Refuse early, with a clear reason, what python-docx would fail on obscurely."""
    head = _read_head(path)
    if not zipfile.is_zipfile(path):
        if head.startswith(_OLE_MAGIC):
            raise PlanFormatError("importer.docx.old_or_encrypted", file=path.name)
        raise PlanFormatError("importer.docx.not_zip", file=path.name)
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
            if "word/document.xml" not in {member.filename for member in members}:
                raise PlanFormatError("importer.docx.no_document_xml", file=path.name)
            _check_unpacked_sizes(path, members)
            _count_blocks(path, archive)
    except _UNPACK_ERRORS as exc:
        raise PlanFormatError(
            "importer.docx.damaged_zip", file=path.name, detail=_one_line(exc)
        ) from exc


def _check_unpacked_sizes(path: Path, members: list[zipfile.ZipInfo]) -> None:
    """Refuse a .docx whose zip directory declares too much to unpack."""
    total = sum(member.file_size for member in members)
    if total > limits.MAX_DOCX_UNPACKED_BYTES:
        raise PlanFormatError(
            "importer.limit.docx_unpacked",
            file=path.name,
            limit=limits.megabytes(limits.MAX_DOCX_UNPACKED_BYTES),
        )
    xml = sum(
        member.file_size
        for member in members
        if member.filename.lower().endswith((".xml", ".rels"))
    )
    if xml > limits.MAX_DOCX_XML_BYTES:
        raise _xml_too_large(path)


def _count_blocks(path: Path, archive: zipfile.ZipFile) -> None:
    """Unpack word/document.xml as a stream: refuse it over the XML size or block limits.

    The declared size was checked already, but it is the archive's word: count what comes out.
    (CPython's zipfile stops a member at its declared size and then fails its CRC check, so
    an understated size gives a damaged-zip error; this holds whatever reads the member.)
    """
    size = blocks = 0
    tail = b""
    with archive.open("word/document.xml") as stream:
        while chunk := stream.read(_CHUNK):
            size += len(chunk)
            if size > limits.MAX_DOCX_XML_BYTES:
                raise _xml_too_large(path)
            buffer = tail + chunk
            # a tag that ends in the tail was counted with the chunk before
            blocks += sum(1 for m in _BLOCK_TAG.finditer(buffer) if m.end() > len(tail))
            if blocks > limits.MAX_DOCX_BLOCKS:
                raise PlanFormatError(
                    "importer.limit.docx_blocks", file=path.name, limit=limits.MAX_DOCX_BLOCKS
                )
            tail = buffer[-(_BLOCK_TAG_MAX - 1) :]


def _xml_too_large(path: Path) -> PlanFormatError:
    return PlanFormatError(
        "importer.limit.docx_xml", file=path.name, limit=limits.megabytes(limits.MAX_DOCX_XML_BYTES)
    )


def _iter_blocks(
    element: BaseOxmlElement, parent: ProvidesStoryPart
) -> Iterator[Paragraph | Table]:
    """Paragraphs and tables directly in ``element``, looking inside content controls."""
    for child in element:
        if isinstance(child, CT_P):
            yield Paragraph(child, parent)
        elif isinstance(child, CT_Tbl):
            yield Table(child, parent)
        elif child.tag == qn("w:sdt"):
            content = child.find(qn("w:sdtContent"))
            if isinstance(content, BaseOxmlElement):
                yield from _iter_blocks(content, parent)


def _table_rows(table: Table, budget: _TextBudget) -> list[list[str]]:
    rows: list[list[str]] = []
    above: dict[int, str] = {}  # grid column -> the text of the cell starting there, row above
    for tr in table._tbl.tr_lst:
        cells = tr.tc_lst
        spans = [max(1, tc.grid_span) for tc in cells]
        before, after = max(0, tr.grid_before), max(0, tr.grid_after)
        if before + sum(spans) + after > limits.MAX_TABLE_COLUMNS:
            raise PlanFormatError(
                "importer.limit.table_columns", file=budget.file, limit=limits.MAX_TABLE_COLUMNS
            )
        texts: list[str] = [""] * before
        current: dict[int, str] = {}
        for tc, span in zip(cells, spans, strict=True):
            if tc.vMerge == "continue":
                text = above.get(len(texts), "")
                budget.add(text, lines=False)  # read again in this row: it counts again
            else:
                text = _clean_cell_text(_Cell(tc, table).text)
                if len(text) > limits.MAX_LINE_CHARS:
                    raise limits.cell_too_long(text, budget.file)
                budget.add(text, lines=False)
            current[len(texts)] = text
            # a cell spanning several grid columns gives its text in the first of them
            texts.extend([text] + [""] * (span - 1))
        texts.extend([""] * after)
        above = current
        rows.append(texts)
    return rows


def _clean_cell_text(text: str) -> str:
    lines = (line.strip().strip(_ZERO_WIDTH).strip() for line in text.splitlines())
    return "\n".join(line for line in lines if line)


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text or type(exc).__name__
