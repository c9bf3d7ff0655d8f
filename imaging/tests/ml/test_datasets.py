import io
from pathlib import Path

import pytest
from pydicom.data import get_testdata_file

from imaging.ml.datasets import ImageRecordsDataset, index_image_folder, index_images
from imaging.ml.dicom import read_dicom
from imaging.ml.errors import DatasetError
from imaging.ml.synthetic import write_shapes_folder


def test_it_counts_classes_and_lists_corrupted_files(shapes_folder):
    (shapes_folder / "circle" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    (shapes_folder / "circle" / "notes.txt").write_text("hello")
    index = index_image_folder(shapes_folder)
    assert index.classes == ["circle", "square", "triangle"]
    assert index.class_counts == {"circle": 6, "square": 6, "triangle": 6}
    skipped = {item.relative_name: item.code for item in index.skipped}
    assert skipped["circle/broken.png"] in ("corrupt", "truncated")
    assert skipped["circle/notes.txt"] == "not_an_image"


def test_it_lists_exact_duplicates_and_keeps_one(shapes_folder):
    source = shapes_folder / "square" / "square_000.png"
    (shapes_folder / "square" / "copy.png").write_bytes(source.read_bytes())
    index = index_image_folder(shapes_folder)
    assert index.duplicates == [["square/copy.png", "square/square_000.png"]] or index.duplicates == [
        ["square/square_000.png", "square/copy.png"]
    ]
    assert index.class_counts["square"] == 6


def test_it_refuses_a_single_class(tmp_path):
    write_shapes_folder(tmp_path, 6, size=16, shapes=("circle",))
    with pytest.raises(DatasetError) as caught:
        index_image_folder(tmp_path)
    assert caught.value.code == "too_few_classes"


def test_it_refuses_classes_with_fewer_than_five_images(tmp_path):
    write_shapes_folder(tmp_path, 4, size=16, shapes=("circle", "square"))
    with pytest.raises(DatasetError) as caught:
        index_image_folder(tmp_path)
    assert caught.value.code == "too_few_images"
    assert "circle (4)" in caught.value.message


def test_it_strips_a_wrapper_folder_and_splits_stratified(tmp_path):
    write_shapes_folder(tmp_path / "export", 10, size=16)
    index = index_image_folder(tmp_path)
    assert index.classes == ["circle", "square", "triangle"]
    train, val = index.split(val_fraction=0.2, seed=0)
    assert len(train) + len(val) == 30
    assert {r.label for r in val} == {"circle", "square", "triangle"}
    assert not {r.relative_name for r in train} & {r.relative_name for r in val}


def test_it_keeps_a_provided_split(tmp_path):
    write_shapes_folder(tmp_path / "train", 5, size=16, seed=1, shapes=("circle", "square"))
    write_shapes_folder(tmp_path / "val", 2, size=16, seed=2, shapes=("circle", "square"))
    index = index_image_folder(tmp_path)
    assert index.has_provided_split
    train, val = index.split()
    assert len(train) == 10 and len(val) == 4
    assert all(r.split == "val" for r in val)


def _dicom_copies(tmp_path: Path, layout: dict[str, list[str]]) -> list[tuple[Path, str]]:
    """Write CT_small copies with chosen PatientIDs; layout maps relative name → patient id."""
    original = read_dicom(open(get_testdata_file("CT_small.dcm"), "rb").read())
    items = []
    for i, (name, patient) in enumerate(layout.items()):
        original.PatientID = patient
        original.InstanceNumber = i + 1  # content differs, so no duplicate detection
        buffer = io.BytesIO()
        original.save_as(buffer)
        path = tmp_path / f"{i:04d}.dcm"
        path.write_bytes(buffer.getvalue())
        items.append((path, name))
    return items


def test_patient_level_split_keeps_each_patient_on_one_side(tmp_path):
    layout = {}
    for cls in ("normal", "pneumonia"):
        for patient in range(6):
            for image in range(2):
                layout[f"{cls}/{patient}_{image}.dcm"] = f"{cls}-P{patient}"
    index = index_images(_dicom_copies(tmp_path, layout), patient_salt="salt")
    assert index.has_patient_keys
    train, val = index.split(val_fraction=0.25, seed=0)
    assert val and train
    assert not {r.patient_key for r in train} & {r.patient_key for r in val}


def test_it_reports_patient_leakage_across_a_provided_split(tmp_path):
    layout = {}
    for cls in ("a", "b"):
        for i in range(5):
            layout[f"train/{cls}/{i}.dcm"] = f"{cls}{i}"
        layout[f"val/{cls}/x.dcm"] = f"{cls}0"  # the same patient as train/{cls}/0.dcm
    index = index_images(_dicom_copies(tmp_path, layout))  # no salt given: a random one still groups
    leaks = index.patient_leakage
    assert len(leaks) == 2
    assert leaks[0]["val_files"] and leaks[0]["train_files"]
    assert any("both train and val" in warning for warning in index.warnings)


def test_records_dataset_yields_rgb_images_and_class_indices(shapes_folder):
    index = index_image_folder(shapes_folder)
    dataset = ImageRecordsDataset(index.records, index.classes)
    image, label = dataset[0]
    assert image.mode == "RGB" and label == 0
    assert len(dataset) == 18


def test_an_extracted_zip_is_indexed_by_its_original_names(tmp_path):
    import zipfile

    from imaging.ml.archive import extract_images, inspect_zip

    folder = write_shapes_folder(tmp_path / "src", 5, size=16, shapes=("circle", "square"))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path in sorted(folder.rglob("*.png")):
            archive.write(path, "upload/" + path.relative_to(folder).as_posix())
    report = inspect_zip(buffer, max_files=100, max_uncompressed_bytes=10**7)
    files = extract_images(buffer, tmp_path / "media", report)
    index = index_images(files)
    assert index.class_counts == {"circle": 5, "square": 5}
    assert index.records[0].relative_name.startswith("upload/circle/")
    assert index.records[0].path.parent == (tmp_path / "media").resolve()
