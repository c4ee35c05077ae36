"""Evidence files (佐证材料): fetched within a size cap, told apart by their content, kept by
SHA-256.

A file someone sends is downloaded by its channel, before the handler's transaction, into a
temporary file under DATA_DIR/evidence/tmp through a `CappedWriter`, which hashes what it
writes and stops at the first byte past EVIDENCE_MAX_BYTES (a declared size is never trusted
alone). The content then says what the file is (`sniff`: magic bytes, and the part names of an
Office zip or OLE file); what the sender declared (MIME type, file name) must agree with it,
and the type must be one of EVIDENCE_TYPES. Only then is it moved to
DATA_DIR/evidence/sha256/<ab>/<sha256>: the path comes from the content alone, the sender's
file name is display text. Anything refused or failed leaves no file behind.

A stored file no row refers to (the handler refused the message, a question about it was
cancelled) is deleted again by `EvidenceStore.prune`, unless another message with the same
content is in hand.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import re
import shutil
import threading
import unicodedata
import uuid
import zipfile
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from bot.events import Attachment, FileFetcher, IncomingMessage, StoredFile

if TYPE_CHECKING:  # the settings check their types with this module: no import at run time
    from sqlalchemy.engine import Engine

    from bot.settings import Settings

log = logging.getLogger(__name__)

MB = 1024 * 1024
HEAD = 4096  # the bytes kept from a download's start for telling its type
DEFAULT_TYPES = "pdf,doc,docx,xls,xlsx,jpg,png,mp4,mov"


class FileTooBig(Exception):
    """A download went past the size cap (or said it would)."""


class FetchFailed(Exception):
    """A download failed; its text names the cause and never a token or a URL."""


class FileRefused(Exception):
    """A file's content is not an allowed type, or not what its sender said it was."""


@dataclass(frozen=True)
class FileType:
    """A kind of file Duban knows by its content."""

    ext: str  # the usual extension
    mime: str  # the MIME type it is stored and sent as
    family: str  # pdf | word | excel | powerpoint | image | video
    exts: frozenset[str]  # the extensions a name of this type may carry
    mimes: frozenset[str]  # the MIME types a sender may declare for it


def _type(ext: str, mime: str, family: str, exts: str = "", mimes: str = "") -> FileType:
    return FileType(
        ext, mime, family, frozenset({ext, *exts.split()}), frozenset({mime, *mimes.split()})
    )


_OLE = "application/x-ole-storage application/cdfv2"
_ZIP = "application/zip application/x-zip-compressed"
TYPES: dict[str, FileType] = {
    t.ext: t
    for t in (
        _type("pdf", "application/pdf", "pdf", mimes="application/x-pdf"),
        _type("doc", "application/msword", "word", "wps", f"application/kswps {_OLE}"),
        _type(
            "docx",
            "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
            "word",
            mimes=_ZIP,
        ),
        _type(
            "xls",
            "application/vnd.ms-excel",
            "excel",
            "et",
            f"application/x-excel application/x-msexcel application/kset {_OLE}",
        ),
        _type(
            "xlsx",
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            "excel",
            mimes=_ZIP,
        ),
        _type("ppt", "application/vnd.ms-powerpoint", "powerpoint", "dps", _OLE),
        _type(
            "pptx",
            "application/vnd.openxmlformats-officedocument.presentationml.presentation",
            "powerpoint",
            mimes=_ZIP,
        ),
        _type("jpg", "image/jpeg", "image", "jpeg jpe jfif", "image/jpg image/pjpeg"),
        _type("png", "image/png", "image"),
        _type("webp", "image/webp", "image"),
        _type("heic", "image/heic", "image", "heif", "image/heif"),
        _type("mp4", "video/mp4", "video", "m4v 3gp", "video/x-m4v video/3gpp"),
        _type("mov", "video/quicktime", "video", "qt"),
    )
}
# Names of the same type, as EVIDENCE_TYPES may give them.
ALIASES = {"jpeg": "jpg", "jpe": "jpg", "heif": "heic", "m4v": "mp4", "qt": "mov"}
# What a sender may declare when they say nothing particular.
GENERIC_MIMES = frozenset(
    {"", "application/octet-stream", "binary/octet-stream", "application/x-download"}
)
_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
# An OLE file names its streams in UTF-16 in its directory: the main stream says the program.
_OLE_STREAMS = (
    ("doc", "WordDocument".encode("utf-16-le")),
    ("xls", "Workbook".encode("utf-16-le")),
    ("xls", "Book\x00".encode("utf-16-le")),
    ("ppt", "PowerPoint Document".encode("utf-16-le")),
)
_OOXML_PARTS = (
    ("docx", "word/document.xml"),
    ("xlsx", "xl/workbook.xml"),
    ("pptx", "ppt/presentation.xml"),
)
_MP4_BRANDS = frozenset(
    {b"isom", b"iso2", b"iso4", b"iso5", b"iso6", b"mp41", b"mp42", b"avc1", b"M4V ", b"M4VH",
     b"dash", b"MSNV", b"3gp4", b"3gp5", b"3gp6", b"3g2a", b"f4v ", b"mmp4"}
)  # fmt: skip
_HEIC_BRANDS = frozenset({b"heic", b"heix", b"heim", b"heis", b"hevc", b"mif1", b"msf1"})
_MOV_ATOMS = frozenset({b"moov", b"mdat", b"wide", b"free", b"skip", b"pnot"})


def type_names(value: str) -> frozenset[str]:
    """The file types a setting names (extensions or MIME types, comma-separated), as the
    extensions of TYPES; ValueError for a name Duban does not know."""
    names: set[str] = set()
    by_mime = {t.mime: t.ext for t in TYPES.values()}
    for raw in value.split(","):
        name = raw.strip().lower().lstrip(".")
        if not name:
            continue
        ext = by_mime.get(name) or ALIASES.get(name, name)
        if ext not in TYPES:
            known = ", ".join(TYPES)
            raise ValueError(f"unknown file type {raw.strip()!r}; known: {known}")
        names.add(ext)
    if not names:
        raise ValueError(f"name at least one file type, e.g. {DEFAULT_TYPES}")
    return frozenset(names)


def sniff(path: Path, head: bytes) -> FileType | None:
    """What a file is by its content (head: its first bytes), or None when Duban cannot tell."""
    if head.startswith(b"\xff\xd8\xff"):
        return TYPES["jpg"]
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return TYPES["png"]
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return TYPES["webp"]
    if b"%PDF-" in head[:1024]:
        return TYPES["pdf"]
    box = head[4:8]
    if box == b"ftyp":
        brand = head[8:12]
        if brand in _HEIC_BRANDS:
            return TYPES["heic"]
        if brand == b"qt  ":
            return TYPES["mov"]
        if brand in _MP4_BRANDS:
            return TYPES["mp4"]
        return None
    if box in _MOV_ATOMS:
        return TYPES["mov"]
    if head.startswith(b"PK\x03\x04"):
        return _ooxml(path)
    if head.startswith(_OLE_MAGIC):
        return _ole(path)
    return None


def _ooxml(path: Path) -> FileType | None:
    """Word, Excel or PowerPoint by the parts its zip names (read from the zip's directory,
    nothing is unpacked)."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
    except (zipfile.BadZipFile, OSError, ValueError):
        return None
    if "[Content_Types].xml" not in names:
        return None
    return next((TYPES[ext] for ext, part in _OOXML_PARTS if part in names), None)


def _ole(path: Path) -> FileType | None:
    """An old Word, Excel or PowerPoint file by the name of its main stream (read in chunks,
    each overlapping the last by a name's length, so memory stays small whatever the cap)."""
    overlap = max(len(stream) for _, stream in _OLE_STREAMS)
    tail = b""
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            window = tail + chunk
            for ext, stream in _OLE_STREAMS:
                if stream in window:
                    return TYPES[ext]
            tail = window[-overlap:]
    return None


def declared_ext(name: str) -> str:
    """The extension a file name carries, lower case ("" when none)."""
    stem, dot, ext = name.rpartition(".")
    return ext.strip().lower() if dot and stem.strip() and len(ext) <= 8 else ""


def check_declared(found: FileType, name: str, mime: str) -> None:
    """FileRefused unless what the sender declared agrees with the content: a declared MIME
    type (other than "binary") and a file name's extension must be of the same family."""
    same_family = [t for t in TYPES.values() if t.family == found.family]
    declared = mime.split(";", 1)[0].strip().lower()
    if declared not in GENERIC_MIMES and not any(declared in t.mimes for t in same_family):
        raise FileRefused("declared MIME type does not match the content")
    ext = declared_ext(name)
    if ext and not any(ext in t.exts for t in same_family):
        raise FileRefused("file name does not match the content")


_UNSAFE = re.compile(r"[^\w\-.（）()\[\]【】 ]+")


def display_name(name: str, found: FileType, fallback: str) -> str:
    """The name a file is shown by: the sender's, cleaned (no path, no control or odd
    characters, at most 80 characters) and ending in the content's extension; fallback
    when nothing is left of it."""
    base = unicodedata.normalize("NFC", name.replace("\\", "/").rsplit("/", 1)[-1])
    base = "".join(ch for ch in base if unicodedata.category(ch)[0] != "C")
    base = _UNSAFE.sub("_", base).strip(" _").rstrip(".")
    ext = declared_ext(base)
    stem = base[: -len(ext) - 1] if ext else ("" if base.startswith(".") else base)
    stem = stem.strip(" ._")[:72] or fallback
    return f"{stem}.{found.ext}"


def safe_part(text: str, limit: int = 40) -> str:
    """Text safe as one part of a path on any system: letters, digits, - and _ only, at most
    limit characters ("file" when nothing is left)."""
    safe = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in text)
    return re.sub(r"_+", "_", safe).strip("_")[:limit] or "file"


def file_name(name: str, limit: int = 40) -> str:
    """A display name made safe as a file name (for files written out, never read back)."""
    ext = declared_ext(name)
    if not (ext.isascii() and ext.isalnum()):
        return safe_part(name, limit)
    return f"{safe_part(name[: -len(ext) - 1], limit)}.{ext}"


class CappedWriter:
    """Writes a download to a new file, hashing it and keeping its first bytes; FileTooBig at
    the first chunk past the cap (the download stops there)."""

    def __init__(self, path: Path, limit: int) -> None:
        self.path = path
        self.limit = limit
        self.size = 0
        self.head = b""
        self._hash = hashlib.sha256()
        self._file = path.open("xb")  # a fresh name: never writes through to another file

    def write(self, chunk: bytes) -> None:
        """Take the next chunk of the download."""
        if self.size + len(chunk) > self.limit:
            raise FileTooBig(f"over {self.limit} bytes")
        self._file.write(chunk)
        self._hash.update(chunk)
        self.size += len(chunk)
        if len(self.head) < HEAD:
            self.head = (self.head + chunk)[:HEAD]

    def finish(self) -> str:
        """Flush to disk and close; the SHA-256 of what was written."""
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        return self._hash.hexdigest()

    def discard(self) -> None:
        """Close and delete what was written."""
        self._file.close()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


class EvidenceStore:
    """The evidence files under DATA_DIR/evidence: receive (fetch, check, keep), find, prune."""

    def __init__(self, root: Path, *, max_bytes: int, allowed: Iterable[str]) -> None:
        self.root = root
        self.max_bytes = max_bytes
        self.allowed = frozenset(allowed)
        self._lock = threading.Lock()  # a move into place and a prune never interleave
        self._in_hand: Counter[str] = Counter()  # files stored for events still being handled
        self._released: set[str] = set()  # files a handler let go of (checked after commit)

    @classmethod
    def from_settings(cls, settings: Settings) -> EvidenceStore:
        """The store of DATA_DIR, EVIDENCE_MAX_BYTES and EVIDENCE_TYPES."""
        return cls(
            settings.data_dir / "evidence",
            max_bytes=settings.evidence_max_bytes,
            allowed=type_names(settings.evidence_types),
        )

    def path_of(self, sha256: str) -> Path:
        """Where a stored file lies (from its hash alone)."""
        if not re.fullmatch(r"[0-9a-f]{64}", sha256):
            raise ValueError("not a SHA-256")
        return self.root / "sha256" / sha256[:2] / sha256

    async def receive(self, fetcher: FileFetcher, event: IncomingMessage) -> IncomingMessage:
        """The event with its attachment fetched and stored, or refused (too_big, type,
        failed) with nothing left on disk."""
        attachment = event.attachment
        assert attachment is not None
        stored: StoredFile | None = None
        refused: str | None = None
        if attachment.size is not None and attachment.size > self.max_bytes:
            refused = "too_big"  # said so: not even fetched
        else:
            try:
                stored = await self._fetch(fetcher, attachment)
            except FileTooBig:
                refused = "too_big"
            except FileRefused as exc:
                log.info("a %s file was refused: %s", event.platform, exc)
                refused = "type"
            except FetchFailed as exc:
                log.warning("fetching a %s file failed: %s", event.platform, exc)
                refused = "failed"
            except Exception as exc:  # a bug or the disk: the sender hears it failed
                log.error("fetching a %s file failed: %s", event.platform, type(exc).__name__)
                refused = "failed"
        return replace(event, attachment=replace(attachment, stored=stored, refused=refused))

    async def _fetch(self, fetcher: FileFetcher, attachment: Attachment) -> StoredFile:
        tmp = self.root / "tmp"
        await asyncio.to_thread(tmp.mkdir, parents=True, exist_ok=True)
        writer = CappedWriter(tmp / uuid.uuid4().hex, self.max_bytes)
        try:
            fetched = await fetcher.fetch_file(attachment, writer)
            sha256 = await asyncio.to_thread(writer.finish)
            if writer.size == 0:
                raise FetchFailed("empty file")
            found = await asyncio.to_thread(sniff, writer.path, writer.head)
            if found is None:
                raise FileRefused("content of no known type")
            check_declared(found, attachment.name or fetched.name, attachment.mime or fetched.mime)
            if found.ext not in self.allowed:
                raise FileRefused(f"{found.ext} is not allowed")
            name = display_name(attachment.name or fetched.name, found, attachment.kind)
            await asyncio.to_thread(self._keep, writer.path, sha256)
            return StoredFile(sha256, writer.size, found.mime, found.ext, name)
        finally:
            writer.discard()  # after a move there is nothing left to delete

    def _keep(self, path: Path, sha256: str) -> None:
        """Move a checked download into place (the same content may be there already)."""
        target = self.path_of(sha256)
        target.parent.mkdir(parents=True, exist_ok=True)
        with self._lock:
            self._in_hand[sha256] += 1
            os.replace(path, target)

    def handled(self, sha256: str) -> None:
        """The event that brought a stored file is handled: it may be pruned now."""
        with self._lock:
            self._in_hand[sha256] -= 1
            if self._in_hand[sha256] <= 0:
                del self._in_hand[sha256]
            self._released.add(sha256)

    def release(self, sha256: str) -> None:
        """A handler let go of a file (a question about it was cancelled): prune it once the
        transaction is over, unless a row still refers to it."""
        with self._lock:
            self._released.add(sha256)

    @property
    def has_released(self) -> bool:
        """Whether a prune has anything to look at."""
        return bool(self._released)

    def prune(self, engine: Engine) -> list[str]:
        """Delete the released files that no evidence row refers to and no event in hand
        holds; returns the hashes of those deleted."""
        import sqlalchemy as sa

        from bot.models import Evidence  # the models are not needed to fetch and check a file

        with self._lock:
            candidates = sorted(self._released - set(self._in_hand))
            self._released -= set(candidates)
            if not candidates:
                return []
            table: sa.Table = Evidence.__table__  # type: ignore[attr-defined]
            query = sa.select(table.c.sha256).where(table.c.sha256.in_(candidates)).distinct()
            try:
                with engine.connect() as conn:
                    kept = set(conn.execute(query).scalars())
            except Exception:
                self._released.update(candidates)  # looked at again after the next file
                raise
            gone = [sha for sha in candidates if sha not in kept]
            for sha in gone:
                with contextlib.suppress(FileNotFoundError):
                    self.path_of(sha).unlink()
                shutil.rmtree(self.root / "named" / sha[:16], ignore_errors=True)
        return gone

    def named_copy(self, sha256: str, name: str) -> Path | None:
        """The stored file under a readable name, for sending (a hard link where the file
        system allows, else a copy); None when the stored file is missing."""
        source = self.path_of(sha256)
        if not source.is_file():
            return None
        target = self.root / "named" / sha256[:16] / file_name(name)
        if target.is_file():
            return target
        target.parent.mkdir(parents=True, exist_ok=True)
        temporary = target.with_name(f".{uuid.uuid4().hex}.tmp")
        try:
            os.link(source, temporary)
        except OSError:
            shutil.copyfile(source, temporary)
        os.replace(temporary, target)
        return target

    def copy_to(self, sha256: str, target: Path) -> bool:
        """Write a stored file to target (a folder the admin chose); False when it is missing."""
        source = self.path_of(sha256)
        if not source.is_file():
            return False
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
        return True


def size_text(size: int) -> str:
    """A file size as people read it: 820 KB, 1.2 MB."""
    if size < MB:
        return f"{max(1, round(size / 1024))} KB"
    return f"{size / MB:.1f} MB"


__all__ = [
    "DEFAULT_TYPES",
    "TYPES",
    "CappedWriter",
    "EvidenceStore",
    "FetchFailed",
    "FileRefused",
    "FileTooBig",
    "FileType",
    "check_declared",
    "display_name",
    "file_name",
    "safe_part",
    "size_text",
    "sniff",
    "type_names",
]
