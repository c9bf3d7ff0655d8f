"""inspect_zip judges the central directory's size from the end record before zipfile reads a single entry."""

import io
import struct
import zipfile

import pytest

from imaging.ml.archive import directory_extent, inspect_zip
from imaging.ml.errors import ArchiveError


def archive_of_empty_entries(count: int, *, name_length: int = 10) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for index in range(count):
            archive.writestr(f"{index:0{name_length}d}/", b"")
    return buffer.getvalue()


def test_the_extent_is_read_from_a_stream_and_from_a_path(tmp_path):
    data = archive_of_empty_entries(25)
    path = tmp_path / "a.zip"
    path.write_bytes(data)

    stream = io.BytesIO(data)
    entries, size = directory_extent(stream)

    assert entries == 25 and size > 25 * 46
    assert directory_extent(path) == (entries, size)
    assert stream.tell() == 0, "the stream is left where zipfile expects it"


def test_folder_entries_count_towards_the_cap():
    with pytest.raises(ArchiveError) as refused:
        inspect_zip(io.BytesIO(archive_of_empty_entries(200)), max_files=10, max_uncompressed_bytes=10**9)

    assert refused.value.code == "too_many_files" and "200 entries" in refused.value.message


def test_an_end_record_that_understates_the_entry_count_is_caught_by_the_directory_size():
    data = bytearray(archive_of_empty_entries(3000, name_length=100))
    end = data.rfind(b"PK\x05\x06")
    data[end + 8 : end + 12] = struct.pack("<HH", 1, 1)  # "1 entry" on this disk and in total

    with pytest.raises(ArchiveError) as refused:
        inspect_zip(io.BytesIO(bytes(data)), max_files=10, max_uncompressed_bytes=10**9)

    assert refused.value.code == "too_many_files"


def test_a_file_that_is_not_a_zip_is_still_not_a_zip():
    with pytest.raises(ArchiveError) as refused:
        inspect_zip(io.BytesIO(b"plain text, no archive"), max_files=10, max_uncompressed_bytes=10**9)

    assert refused.value.code == "not_a_zip"
