import io
import os
import stat
import zipfile

import pytest

from imaging.ml.archive import extract_images, inspect_zip
from imaging.ml.errors import ArchiveError

from .conftest import png_bytes

LIMITS = {"max_files": 50, "max_uncompressed_bytes": 5 * 1024 * 1024}


def make_zip(entries, *, compression=zipfile.ZIP_DEFLATED) -> io.BytesIO:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=compression) as archive:
        for entry in entries:
            if isinstance(entry, zipfile.ZipInfo):
                archive.writestr(entry, b"target")
            else:
                name, data = entry
                archive.writestr(name, data)
    buffer.seek(0)
    return buffer


def refusal(buffer, **limits) -> ArchiveError:
    with pytest.raises(ArchiveError) as caught:
        inspect_zip(buffer, **{**LIMITS, **limits})
    return caught.value


def test_it_rejects_zip_with_parent_paths():
    assert refusal(make_zip([("cats/../../evil.png", png_bytes())])).code == "parent_path"


def test_it_rejects_windows_style_parent_paths():
    assert refusal(make_zip([("cats\\..\\..\\evil.png", png_bytes())])).code == "parent_path"


def test_it_rejects_absolute_paths():
    assert refusal(make_zip([("/etc/evil.png", png_bytes())])).code == "absolute_path"
    assert refusal(make_zip([("C:/evil.png", png_bytes())])).code == "absolute_path"


def test_it_rejects_symlinks():
    link = zipfile.ZipInfo("cats/link.png")
    link.external_attr = (stat.S_IFLNK | 0o777) << 16
    assert refusal(make_zip([link])).code == "link"


def test_it_rejects_nested_archives_by_name():
    assert refusal(make_zip([("cats/more.zip", b"PK\x03\x04rest")])).code == "nested_archive"


def test_it_rejects_nested_archive_disguised_as_image_during_extraction(tmp_path):
    inner = make_zip([("a.png", png_bytes())]).getvalue()
    buffer = make_zip([("cats/1.png", png_bytes()), ("cats/2.png", inner)])
    report = inspect_zip(buffer, **LIMITS)
    with pytest.raises(ArchiveError) as caught:
        extract_images(buffer, tmp_path / "out", report)
    assert caught.value.code == "nested_archive"
    assert list((tmp_path / "out").iterdir()) == []  # the first, good file was removed too


def test_it_rejects_bomb_by_compression_ratio():
    bomb = make_zip([("cats/zeros.png", b"\0" * (3 * 1024 * 1024))])
    assert refusal(bomb).code == "compression_ratio"


def test_it_rejects_archive_over_total_size():
    data = os.urandom(400 * 1024)  # incompressible, so only the total cap can catch it
    entries = [(f"cats/{i}.png", data) for i in range(4)]
    assert refusal(make_zip(entries), max_uncompressed_bytes=1024 * 1024).code == "too_large"


def test_it_rejects_too_many_files():
    entries = [(f"cats/{i}.png", png_bytes()) for i in range(6)]
    assert refusal(make_zip(entries), max_files=5).code == "too_many_files"


def test_it_rejects_encrypted_entries():
    buffer = make_zip([("cats/1.png", png_bytes())], compression=zipfile.ZIP_STORED)
    raw = bytearray(buffer.getvalue())
    # Set the "encrypted" flag bit in the local header and the central directory entry.
    raw[6] |= 1
    central = raw.rfind(b"PK\x01\x02")
    raw[central + 8] |= 1
    assert refusal(io.BytesIO(bytes(raw))).code == "encrypted"


def test_it_rejects_a_file_that_is_not_a_zip():
    assert refusal(io.BytesIO(b"not a zip at all")).code == "not_a_zip"


def test_it_extracts_with_server_names_and_skips_clutter(tmp_path):
    tmp_path = tmp_path / "extraction"  # the app tests' conftest puts a MEDIA_ROOT beside it
    tmp_path.mkdir()
    buffer = make_zip(
        [
            ("data/cats/one.png", png_bytes(1)),
            ("data/dogs/two.png", png_bytes(2)),
            ("__MACOSX/data/cats/._one.png", b"junk"),
            ("data/.DS_Store", b"junk"),
            ("data/Thumbs.db", b"junk"),
        ]
    )
    report = inspect_zip(buffer, **LIMITS)
    assert report.file_count == 2
    assert len(report.ignored) == 3
    files = extract_images(buffer, tmp_path / "out", report)
    assert [f.original_name for f in files] == ["data/cats/one.png", "data/dogs/two.png"]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["000001.png", "000002.png"]
    assert files[0].path.read_bytes() == png_bytes(1)
    # Nothing was written anywhere else under tmp_path.
    assert {p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*")} == {
        "out",
        "out/000001.png",
        "out/000002.png",
    }


def test_it_stops_when_a_header_lies_about_the_size(tmp_path):
    buffer = make_zip([("cats/a.png", png_bytes()), ("cats/b.png", os.urandom(5000))])
    report = inspect_zip(buffer, **LIMITS)
    lying = report.members[1]
    report.members[1] = type(lying)(lying.original_name, 100, lying.compressed_size)
    with pytest.raises(ArchiveError) as caught:
        extract_images(buffer, tmp_path / "out", report)
    assert caught.value.code == "size_mismatch"
    assert list((tmp_path / "out").iterdir()) == []


def test_it_enforces_the_total_cap_while_streaming(tmp_path):
    buffer = make_zip([("cats/a.png", os.urandom(3000)), ("cats/b.png", os.urandom(3000))])
    report = inspect_zip(buffer, **LIMITS)
    report.max_uncompressed_bytes = 4000
    with pytest.raises(ArchiveError) as caught:
        extract_images(buffer, tmp_path / "out", report)
    assert caught.value.code == "too_large"
    assert list((tmp_path / "out").iterdir()) == []
