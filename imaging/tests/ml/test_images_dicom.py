import io

import numpy as np
import pytest
from PIL import Image
from pydicom.data import get_testdata_file

from imaging.ml.dicom import deidentify, patient_key, read_dicom
from imaging.ml.errors import ImageDecodeError
from imaging.ml.images import decode_image

from .conftest import png_bytes

IDENTIFYING = (
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "ReferringPhysicianName",
    "InstitutionName",
    "PatientAddress",
    "AccessionNumber",
    "OtherPatientIDs",
    "StudyDate",
)


def jpeg_bytes() -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(buffer, "JPEG")
    return buffer.getvalue()


def test_it_decodes_png_and_knows_the_type_from_content():
    decoded = decode_image(png_bytes(200, (20, 10)))
    assert decoded.kind == "png"
    assert decoded.image.size == (20, 10)


def test_it_refuses_a_truncated_jpeg():
    data = jpeg_bytes()
    with pytest.raises(ImageDecodeError) as caught:
        decode_image(data[: len(data) // 2])
    assert caught.value.code in ("truncated", "corrupt")


def test_it_refuses_text_with_an_image_extension(tmp_path):
    path = tmp_path / "scan.png"
    path.write_text("hello")
    with pytest.raises(ImageDecodeError) as caught:
        decode_image(path)
    assert caught.value.code == "not_an_image"


def test_16_bit_png_is_scaled_to_8_bits():
    array = np.linspace(0, 60000, 64, dtype=np.uint16).reshape(8, 8)
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    decoded = decode_image(buffer.getvalue())
    pixels = np.asarray(decoded.image)
    assert decoded.image.mode == "L"
    assert pixels.min() == 0 and pixels.max() == 255
    assert decoded.notes


def test_ct_dicom_is_rescaled_to_8_bits_with_a_patient_key():
    decoded = decode_image(get_testdata_file("CT_small.dcm"), patient_salt="salt")
    pixels = np.asarray(decoded.image)
    assert decoded.kind == "dicom"
    assert decoded.image.mode == "L" and pixels.shape == (128, 128)
    assert pixels.min() == 0 and pixels.max() == 255 and 20 < pixels.mean() < 235
    assert any("rescale" in note for note in decoded.notes)
    assert decoded.patient_key == patient_key("1CT1", "salt")
    assert "1CT1" not in decoded.patient_key


def test_mr_dicom_window_is_applied():
    decoded = decode_image(get_testdata_file("MR_small.dcm"))
    assert any("window" in note for note in decoded.notes)
    assert np.asarray(decoded.image).std() > 10


def test_multiframe_dicom_uses_the_first_frame_and_says_so():
    decoded = decode_image(get_testdata_file("emri_small.dcm"))
    assert decoded.image.size == (64, 64)
    assert any("first one" in note for note in decoded.notes)


def test_monochrome1_is_inverted():
    ds = read_dicom(open(get_testdata_file("MR_small.dcm"), "rb").read())
    from imaging.ml.dicom import dicom_to_uint8

    normal, _ = dicom_to_uint8(ds)
    ds.PhotometricInterpretation = "MONOCHROME1"
    inverted, notes = dicom_to_uint8(ds)
    assert np.array_equal(inverted, 255 - normal)
    assert any("MONOCHROME1" in note for note in notes)


def test_deidentify_removes_identifying_tags_and_marks_the_dataset():
    original = read_dicom(open(get_testdata_file("CT_small.dcm"), "rb").read())
    original.InstitutionName = "St Elsewhere"
    original.PatientAddress = "1 Main Street"
    original.AccessionNumber = "A123"
    original.OtherPatientIDs = "X9"
    original.add_new(0x00091001, "LO", "private secret")
    clean = deidentify(original, salt="salt")
    for keyword in IDENTIFYING:
        assert keyword not in clean or str(clean.data_element(keyword).value) == "", keyword
    assert not any(elem.tag.is_private for elem in clean)
    assert clean.PatientIdentityRemoved == "YES"
    assert clean.DeidentificationMethod
    assert clean.DeidentificationMethodCodeSequence[0].CodeValue == "113100"
    assert clean.StudyInstanceUID != original.StudyInstanceUID
    assert clean.SOPClassUID == original.SOPClassUID  # what kind of object it is stays
    assert clean.file_meta.MediaStorageSOPInstanceUID == clean.SOPInstanceUID
    assert original.PatientName != ""  # the input is untouched
    assert np.array_equal(clean.pixel_array, original.pixel_array)


def test_deidentify_replaces_uids_consistently_and_can_shift_dates():
    original = read_dicom(open(get_testdata_file("CT_small.dcm"), "rb").read())
    first = deidentify(original, salt="salt", shift_dates=True)
    second = deidentify(original, salt="salt", shift_dates=True)
    assert first.StudyInstanceUID == second.StudyInstanceUID
    assert first.StudyDate and first.StudyDate != original.StudyDate
    assert first.PatientBirthDate == ""


def test_patient_key_needs_an_id_and_depends_on_the_salt():
    assert patient_key("", "salt") is None
    assert patient_key("P1", "a") != patient_key("P1", "b")
    assert patient_key("P1", "a") == patient_key(" P1 ", "a")
