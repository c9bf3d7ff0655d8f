"""Safe intake of uploaded ZIP archives.

Two steps, so that an unsafe archive is refused before a single byte lands on disk:

``inspect_zip(source, *, max_files, max_uncompressed_bytes, max_ratio=100) -> ZipReport``
    Reads only the central directory, and first only the end record that declares its size: a directory
    of more than ``ENTRIES_PER_FILE × max_files`` entries (folders and clutter included) or more bytes than
    those entries need is refused (``too_many_files``) before zipfile builds an object per entry. Then
    raises ``ArchiveError(message, code)`` for: a file that is not a ZIP (``not_a_zip``), absolute paths
    (``absolute_path``), ``..`` components (``parent_path``), symbolic links (``link``), encrypted
    entries (``encrypted``), archives inside the archive (``nested_archive``), more than ``max_files``
    files (``too_many_files``), a declared total uncompressed size over ``max_uncompressed_bytes``
    (``too_large``), or a compression ratio that only a zip bomb has (``compression_ratio``).
    macOS/Windows clutter (``__MACOSX/``, ``.DS_Store``, ``._*``, ``Thumbs.db``, ``desktop.ini``) is
    listed in ``ZipReport.ignored`` and never extracted.

``extract_images(source, dest_dir, report) -> list[ExtractedFile]``
    Writes each accepted member as a regular file directly under ``dest_dir`` with a server-made name
    (``000001.png``...); the archive's own path is kept only as ``ExtractedFile.original_name``. Bytes
    are counted while streaming, so a header that lies about sizes cannot get past the caps. On any
    failure every file written by this call is removed before ``ArchiveError`` is raised, so nothing
    half-extracted is left behind.
"""

from __future__ import annotations

import os
import stat
import struct
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from .errors import ArchiveError

NESTED_ARCHIVE_SUFFIXES = (".zip", ".tar", ".gz", ".tgz", ".bz2", ".xz", ".7z", ".rar", ".zst", ".jar")
# Magic numbers of archive formats, checked on content too: a renamed nested ZIP is still a ZIP.
NESTED_ARCHIVE_MAGIC = (b"PK\x03\x04", b"7z\xbc\xaf\x27\x1c", b"Rar!\x1a\x07", b"\x1f\x8b", b"BZh", b"\xfd7zXZ\x00")
IGNORED_NAMES = {".ds_store", "thumbs.db", "desktop.ini"}
SAFE_SUFFIXES = {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".dcm", ".dicom"}
# Below this size a high ratio is normal (a tiny blank image compresses well); above it, a ratio
# over max_ratio is what zip bombs look like.
RATIO_FLOOR_BYTES = 1024 * 1024
CHUNK_BYTES = 64 * 1024
# Entries a directory may list per file accepted: a folder entry and a macOS "._" twin per file are normal.
ENTRIES_PER_FILE = 3
# Central-directory bytes allowed per entry (46 fixed + name + extra fields): long paths fit, padding does not.
DIRECTORY_BYTES_PER_ENTRY = 1024
END_RECORD_SEARCH = 0xFFFF + 22


@dataclass(frozen=True)
class ZipMember:
    """One file of the archive that passed inspection."""

    original_name: str
    declared_size: int
    compressed_size: int


@dataclass
class ZipReport:
    """What ``inspect_zip`` found: the members to extract and the clutter it will skip."""

    members: list[ZipMember] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)
    total_declared_bytes: int = 0
    max_files: int = 0
    max_uncompressed_bytes: int = 0

    @property
    def file_count(self) -> int:
        return len(self.members)


@dataclass(frozen=True)
class ExtractedFile:
    """A member written to disk: the server-made ``path`` and the archive's ``original_name``."""

    path: Path
    original_name: str
    size: int


def _open_zip(source: str | os.PathLike | BinaryIO) -> zipfile.ZipFile:
    if hasattr(source, "seek"):
        source.seek(0)
    try:
        return zipfile.ZipFile(source)
    except (zipfile.BadZipFile, zlib.error, OSError, ValueError) as exc:
        raise ArchiveError("The file is not a readable ZIP archive.", "not_a_zip") from exc


def _read_tail(source: str | os.PathLike | BinaryIO) -> tuple[bytes, int, BinaryIO | None]:
    if hasattr(source, "seek"):
        source.seek(0, os.SEEK_END)
        size = source.tell()
        source.seek(max(0, size - END_RECORD_SEARCH))
        tail = source.read()
        source.seek(0)
        return tail, size, source
    with open(source, "rb") as handle:
        handle.seek(0, os.SEEK_END)
        size = handle.tell()
        handle.seek(max(0, size - END_RECORD_SEARCH))
        return handle.read(), size, None


def directory_extent(source: str | os.PathLike | BinaryIO) -> tuple[int, int] | None:
    """(entries, bytes) of the central directory as the end record declares them; None when there is no record.

    zipfile reads and turns into objects the whole directory when an archive is opened; these two numbers cost a
    few bytes, and zipfile itself never reads past the declared byte size, so the byte cap holds even if the
    declared entry count lies.
    """
    tail, size, stream = _read_tail(source)
    end = tail.rfind(b"PK\x05\x06")
    if end < 0 or len(tail) - end < 22:
        return None
    entries, directory_bytes = struct.unpack("<HI", tail[end + 10 : end + 16])
    locator = end - 20
    if (entries == 0xFFFF or directory_bytes == 0xFFFFFFFF) and tail[locator : locator + 4] == b"PK\x06\x07":
        (offset,) = struct.unpack("<Q", tail[locator + 8 : locator + 16])
        if offset + 56 <= size:
            if stream is not None:
                stream.seek(offset)
                record = stream.read(56)
                stream.seek(0)
            else:
                with open(source, "rb") as handle:
                    handle.seek(offset)
                    record = handle.read(56)
            if record[:4] == b"PK\x06\x06":
                entries, directory_bytes = struct.unpack("<QQ", record[32:48])
    return entries, directory_bytes


def _check_directory_extent(source: str | os.PathLike | BinaryIO, max_files: int) -> None:
    try:
        extent = directory_extent(source)
    except OSError as exc:
        raise ArchiveError("The file is not a readable ZIP archive.", "not_a_zip") from exc
    if extent is None:
        return  # zipfile gives the not_a_zip refusal
    entries, directory_bytes = extent
    max_entries = ENTRIES_PER_FILE * max_files + 100
    if entries > max_entries or directory_bytes > max_entries * DIRECTORY_BYTES_PER_ENTRY:
        raise ArchiveError(
            f"The archive lists {entries:,} entries; at most {max_files:,} files are accepted. "
            "Split it into smaller uploads.",
            "too_many_files",
        )


def _is_ignored(parts: tuple[str, ...]) -> bool:
    name = parts[-1].lower()
    return "__MACOSX" in parts or name in IGNORED_NAMES or name.startswith("._")


def _check_name(name: str) -> tuple[str, ...]:
    """Refuse absolute and parent paths in any spelling (POSIX, Windows separators, drive letters)."""
    unified = name.replace("\\", "/")
    if unified.startswith("/") or (len(unified) > 1 and unified[1] == ":"):
        raise ArchiveError(
            f"The archive contains an absolute path ({name!r}); re-create it from the folder.", "absolute_path"
        )
    parts = tuple(part for part in PurePosixPath(unified).parts if part not in ("", "."))
    if ".." in parts:
        raise ArchiveError(
            f"The archive contains a path that climbs out of its folder ({name!r}); re-create it from the folder.",
            "parent_path",
        )
    if "\x00" in unified:
        raise ArchiveError(f"The archive contains an invalid file name ({name!r}).", "invalid_name")
    return parts


def inspect_zip(
    source: str | os.PathLike | BinaryIO,
    *,
    max_files: int,
    max_uncompressed_bytes: int,
    max_ratio: float = 100,
) -> ZipReport:
    """Check an archive from its central directory only; raise ``ArchiveError`` on the first refusal."""
    report = ZipReport(max_files=max_files, max_uncompressed_bytes=max_uncompressed_bytes)
    _check_directory_extent(source, max_files)
    with _open_zip(source) as archive:
        infos = archive.infolist()
        for info in infos:
            parts = _check_name(info.filename)
            mode = info.external_attr >> 16
            if stat.S_ISLNK(mode):
                raise ArchiveError(f"The archive contains a link ({info.filename!r}); links are not accepted.", "link")
            if info.is_dir() or not parts:
                continue
            if _is_ignored(parts):
                report.ignored.append(info.filename)
                continue
            if info.flag_bits & 0x1:
                raise ArchiveError(
                    f"The archive contains an encrypted file ({info.filename!r}); upload it without a password.",
                    "encrypted",
                )
            if parts[-1].lower().endswith(NESTED_ARCHIVE_SUFFIXES):
                raise ArchiveError(
                    f"The archive contains another archive ({info.filename!r}); unpack it and upload one ZIP.",
                    "nested_archive",
                )
            if info.file_size >= RATIO_FLOOR_BYTES and info.file_size > max_ratio * max(info.compress_size, 1):
                raise ArchiveError(
                    f"{info.filename!r} expands more than {max_ratio:g} times; this looks like a ZIP bomb.",
                    "compression_ratio",
                )
            report.members.append(
                ZipMember(
                    original_name="/".join(parts), declared_size=info.file_size, compressed_size=info.compress_size
                )
            )
            report.total_declared_bytes += info.file_size
            if len(report.members) > max_files:
                raise ArchiveError(
                    f"The archive holds more than {max_files} files; split it into smaller uploads.", "too_many_files"
                )
            if report.total_declared_bytes > max_uncompressed_bytes:
                raise ArchiveError(
                    f"The archive expands to more than {_megabytes(max_uncompressed_bytes)}; upload a smaller one.",
                    "too_large",
                )
        total_compressed = sum(info.compress_size for info in infos)
        if report.total_declared_bytes >= RATIO_FLOOR_BYTES and report.total_declared_bytes > max_ratio * max(
            total_compressed, 1
        ):
            raise ArchiveError(
                f"The archive expands more than {max_ratio:g} times; this looks like a ZIP bomb.", "compression_ratio"
            )
    return report


def _megabytes(size: int) -> str:
    return f"{size / (1024 * 1024):.0f} MB"


def _server_suffix(original_name: str) -> str:
    suffix = PurePosixPath(original_name).suffix.lower()
    return suffix if suffix in SAFE_SUFFIXES else ".bin"


def extract_images(
    source: str | os.PathLike | BinaryIO,
    dest_dir: str | os.PathLike,
    report: ZipReport,
) -> list[ExtractedFile]:
    """Write the members of an inspected archive under ``dest_dir`` with server-made names.

    Caps from ``report`` are enforced on the bytes actually decompressed. Raises ``ArchiveError``
    (after removing everything this call wrote) on lying headers, nested archives found by content,
    corrupt data, or a cap being crossed.
    """
    dest = Path(dest_dir)
    dest.mkdir(parents=True, exist_ok=True)
    dest = dest.resolve()
    wanted = {member.original_name: member for member in report.members}
    written: list[ExtractedFile] = []
    total = 0
    try:
        with _open_zip(source) as archive:
            index = 0
            for info in archive.infolist():
                if info.is_dir():
                    continue
                parts = _check_name(info.filename)
                name = "/".join(parts)
                member = wanted.pop(name, None)
                if member is None:
                    continue
                index += 1
                target = dest / f"{index:06d}{_server_suffix(name)}"
                size = _stream_member(archive, info, target, member, report, total)
                total += size
                written.append(ExtractedFile(path=target, original_name=name, size=size))
    except BaseException:
        for extracted in written:
            extracted.path.unlink(missing_ok=True)
        raise
    return written


def _stream_member(
    archive: zipfile.ZipFile, info: zipfile.ZipInfo, target: Path, member: ZipMember, report: ZipReport, total: int
) -> int:
    # O_EXCL + O_NOFOLLOW: never overwrite an existing file and never write through a link.
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0)
    size = 0
    fd = os.open(target, flags, 0o600)
    try:
        with os.fdopen(fd, "wb") as out, archive.open(info) as stream:
            first = True
            while chunk := stream.read(CHUNK_BYTES):
                if first and chunk.startswith(NESTED_ARCHIVE_MAGIC):
                    raise ArchiveError(
                        f"{member.original_name!r} is itself an archive; unpack it and upload one ZIP.",
                        "nested_archive",
                    )
                first = False
                size += len(chunk)
                if size > member.declared_size:
                    raise ArchiveError(
                        f"{member.original_name!r} is larger than the archive declares; the archive is damaged "
                        "or crafted.",
                        "size_mismatch",
                    )
                if total + size > report.max_uncompressed_bytes:
                    raise ArchiveError(
                        f"The archive expands to more than {_megabytes(report.max_uncompressed_bytes)}; "
                        "upload a smaller one.",
                        "too_large",
                    )
                out.write(chunk)
    except (zipfile.BadZipFile, zlib.error, EOFError, RuntimeError, NotImplementedError) as exc:
        target.unlink(missing_ok=True)
        raise ArchiveError(
            f"{member.original_name!r} could not be unpacked (damaged or unsupported compression).", "corrupt_archive"
        ) from exc
    except BaseException:
        target.unlink(missing_ok=True)
        raise
    return size
