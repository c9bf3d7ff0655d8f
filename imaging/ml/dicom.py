"""DICOM decoding and de-identification (pydicom only; no extra codecs assumed).

``decode_dicom_bytes(data, *, patient_salt=None, max_pixels=..., max_frames=...) -> DecodedImage``
    Reads with pydicom, checks the size the header declares (``check_dicom_size``) before any pixel is
    decoded, converts the first frame to 8-bit (see ``dicom_to_uint8``) and, when the file has a
    PatientID and a salt is given, sets ``patient_key``. Raises ``ImageDecodeError``.

``read_dicom_header(data) -> Dataset`` / ``check_dicom_size(ds, *, max_pixels, max_frames)``
    The header alone (``stop_before_pixels``), and the refusal of rows × columns over ``max_pixels``
    (``too_many_pixels``, the raster cap) or more than ``max_frames`` frames (``too_many_frames``):
    a 9000×9000 file is refused for the price of reading its header.

``dicom_to_uint8(ds) -> (array, notes)``
    Modality LUT (RescaleSlope/Intercept) → VOI LUT or window (first window when several) →
    MONOCHROME1 inverted so that bright means dense everywhere → 8-bit. Without a VOI the
    modality range of the image itself is stretched. Multi-frame: only the first frame is decoded, said in
    ``notes``.

``deidentify(ds, *, salt, shift_dates=False, retain_patient_characteristics=False) -> Dataset``
    A de-identified copy following the DICOM PS3.15 Annex E basic application confidentiality
    profile: identifying attributes of ``BASIC_PROFILE_REMOVE`` removed, ``BASIC_PROFILE_BLANK``
    emptied, every person name (VR PN) anywhere emptied, private tags and overlays/curves
    removed, instance UIDs (study, series, SOP, frame of reference, referenced instances, media
    storage) replaced by UIDs derived from ``salt`` (same input UID → same output, so a study
    stays a study), dates/times emptied — or, with ``shift_dates``, moved by a per-patient number
    of days derived from the salt so that intervals survive — and PatientIdentityRemoved=YES with
    DeidentificationMethod and its code sequence (113100, plus 113107 when dates are shifted and
    113108 when patient characteristics are kept). Sequences are processed recursively. Pixel
    data is untouched: ``BurnedInAnnotation`` = YES is reported by ``decode_dicom_bytes`` notes.

``patient_key(patient_id, salt) -> str | None``
    HMAC-SHA256 of the PatientID under the salt: stable for splitting, useless for re-identifying
    without the salt. Only this key is kept; the PatientID itself is not stored.
"""

from __future__ import annotations

import copy
import datetime as dt
import hashlib
import hmac
import io

import numpy as np
import pydicom
from PIL import Image
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.pixels import apply_modality_lut, apply_voi_lut, pixel_array
from pydicom.sequence import Sequence
from pydicom.uid import UID, generate_uid

from .errors import ImageDecodeError
from .images import DEFAULT_MAX_FRAMES, DEFAULT_MAX_PIXELS, DecodedImage, to_uint8

# PS3.15 Table E.1-1, action X/X-D/X-Z (removed).
BASIC_PROFILE_REMOVE = (
    "AccessionNumber",  # Z in the table; removed here because nothing downstream needs it
    "AdditionalPatientHistory",
    "AdmissionID",
    "AdmittingDiagnosesDescription",
    "Allergies",
    "BranchOfService",
    "CountryOfResidence",
    "CurrentPatientLocation",
    "CurveData",
    "CustodialOrganizationSequence",
    "DataSetTrailingPadding",
    "DerivationDescription",
    "DeviceSerialNumber",
    "DigitalSignaturesSequence",
    "InstitutionAddress",
    "InstitutionName",
    "InstitutionalDepartmentName",
    "IssuerOfPatientID",
    "MedicalAlerts",
    "MedicalRecordLocator",
    "MilitaryRank",
    "ModifiedAttributesSequence",
    "NameOfPhysiciansReadingStudy",
    "Occupation",
    "OperatorsName",
    "OriginalAttributesSequence",
    "OtherPatientIDs",
    "OtherPatientIDsSequence",
    "OtherPatientNames",
    "PatientAddress",
    "PatientBirthName",
    "PatientBirthTime",
    "PatientComments",
    "PatientInsurancePlanCodeSequence",
    "PatientMotherBirthName",
    "PatientReligiousPreference",
    "PatientState",
    "PatientTelephoneNumbers",
    "PatientTelecomInformation",
    "PerformedProcedureStepDescription",
    "PerformedProcedureStepID",
    "PerformingPhysicianIdentificationSequence",
    "PerformingPhysicianName",
    "PersonAddress",
    "PersonTelephoneNumbers",
    "PhysiciansOfRecord",
    "PhysiciansOfRecordIdentificationSequence",
    "PhysiciansReadingStudyIdentificationSequence",
    "PregnancyStatus",
    "ReferringPhysicianAddress",
    "ReferringPhysicianIdentificationSequence",
    "ReferringPhysicianTelephoneNumbers",
    "RegionOfResidence",
    "RequestAttributesSequence",
    "RequestingPhysician",
    "RequestingService",
    "ResponsibleOrganization",
    "ResponsiblePerson",
    "ScheduledPerformingPhysicianName",
    "SmokingStatus",
    "SpecialNeeds",
    "StationName",
    "StudyComments",
    "StudyDescription",
    "SeriesDescription",
    "ImageComments",
    "TextComments",
    "TextString",
    "ProtocolName",
    "RequestedProcedureDescription",
    "ReasonForStudy",
    "ReasonForTheRequestedProcedure",
    "InterpretationAuthor",
    "InterpretationRecorder",
    "InterpretationTranscriber",
    "InterpretationApproverSequence",
    "DistributionName",
    "DistributionAddress",
    "EthnicGroup",
    "PatientAge",
    "PatientSize",
    "PatientWeight",
    "PatientSexNeutered",
    "AdmittingDate",
    "AdmittingTime",
    "ReferencedPatientSequence",
    "ReferencedStudySequence",
    "ReferencedPerformedProcedureStepSequence",
    "RequestedProcedureID",
    "ScheduledProcedureStepID",
    "FillerOrderNumberImagingServiceRequest",
    "PlacerOrderNumberImagingServiceRequest",
    "InstanceCreatorUID",
    "ContentCreatorName",
    "VerifyingObserverName",
    "VerifyingOrganization",
    "PersonName",
)
# Kept with the "Retain Patient Characteristics" option (PS3.15 E.3.5).
PATIENT_CHARACTERISTICS = ("PatientAge", "PatientSize", "PatientWeight", "PatientSexNeutered", "EthnicGroup")
# Action Z (present but empty) for type-2 attributes a reader expects to exist.
BASIC_PROFILE_BLANK = (
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "PatientSex",
    "ReferringPhysicianName",
    "StudyID",
    "ContentCreatorName",
)
UID_KEYWORDS_KEPT = {"SOPClassUID", "ReferencedSOPClassUID", "TransferSyntaxUID", "MediaStorageSOPClassUID"}
DEIDENTIFICATION_METHOD = "DeepMed: DICOM PS3.15 basic application confidentiality profile"


def patient_key(patient_id: str | None, salt: str) -> str | None:
    """Salted, keyed hash of a PatientID (None when there is no usable id)."""
    value = str(patient_id or "").strip()
    if not value:
        return None
    return hmac.new(salt.encode(), value.encode(), hashlib.sha256).hexdigest()[:32]


def read_dicom(data: bytes, *, stop_before_pixels: bool = False) -> Dataset:
    try:
        return pydicom.dcmread(io.BytesIO(data), stop_before_pixels=stop_before_pixels)
    except (InvalidDicomError, EOFError, OSError, ValueError, KeyError, TypeError) as exc:
        raise ImageDecodeError("The DICOM file is damaged and cannot be read.", "corrupt_dicom") from exc


def read_dicom_header(data: bytes) -> Dataset:
    """Every element before the pixel data: enough to know the image's size without touching a pixel."""
    return read_dicom(data, stop_before_pixels=True)


def _frame_count(ds: Dataset) -> int:
    try:
        return int(ds.get("NumberOfFrames", 1) or 1)
    except (TypeError, ValueError) as exc:
        raise ImageDecodeError("The DICOM file's frame count is damaged.", "corrupt_dicom") from exc


def check_dicom_size(
    ds: Dataset, *, max_pixels: int = DEFAULT_MAX_PIXELS, max_frames: int = DEFAULT_MAX_FRAMES
) -> None:
    """Refuse, from the header alone, a frame over ``max_pixels`` or more than ``max_frames`` frames."""
    try:
        rows, columns = int(ds.get("Rows", 0) or 0), int(ds.get("Columns", 0) or 0)
    except (TypeError, ValueError) as exc:
        raise ImageDecodeError("The DICOM file's image size is damaged.", "corrupt_dicom") from exc
    if rows * columns > max_pixels:
        raise ImageDecodeError(
            f"The DICOM image is too large ({columns}×{rows} pixels); the limit is {max_pixels:,} pixels.",
            "too_many_pixels",
        )
    frames = _frame_count(ds)
    if frames > max_frames:
        raise ImageDecodeError(
            f"The DICOM file holds {frames:,} frames; the limit is {max_frames:,}. Export the frames you need.",
            "too_many_frames",
        )


def dicom_to_uint8(ds: Dataset) -> tuple[np.ndarray, list[str]]:
    """8-bit pixels (H×W or H×W×3) of the first frame, and notes on what was applied.

    Only the first frame is decoded: a multi-frame file costs one frame's memory, not all of them.
    """
    notes: list[str] = []
    if "PixelData" not in ds:
        raise ImageDecodeError("The DICOM file holds no image (no pixel data).", "no_pixel_data")
    frames = _frame_count(ds)
    try:
        pixels = pixel_array(ds, index=0) if frames > 1 else ds.pixel_array
    except Exception as exc:  # pydicom raises many types for missing codecs and damaged data
        raise ImageDecodeError(
            "The DICOM pixel data cannot be decoded here (damaged, or compressed with an unsupported codec).",
            "undecodable_dicom",
        ) from exc
    if frames > 1:
        notes.append(f"The DICOM file holds {frames} frames; the first one is used.")
    samples = int(ds.get("SamplesPerPixel", 1) or 1)
    if samples != 1:
        if pixels.dtype != np.uint8:
            pixels = to_uint8(pixels)
            notes.append("Colour pixels were scaled to 8 bits.")
        return np.ascontiguousarray(pixels[..., :3]), notes

    values = apply_modality_lut(pixels, ds).astype(np.float64)
    if "RescaleSlope" in ds or "ModalityLUTSequence" in ds:
        notes.append("Modality rescale applied.")
    has_voi = "VOILUTSequence" in ds or ("WindowCenter" in ds and "WindowWidth" in ds)
    if has_voi:
        windowed = apply_voi_lut(values, ds, index=0)
        # The output range of a window/LUT is fixed by the standard, not by this image: probe it
        # with two extreme inputs so an image inside the window keeps its contrast.
        probe = apply_voi_lut(np.array([-1e12, 1e12]), ds, index=0)
        low, high = float(np.min(probe)), float(np.max(probe))
        eight_bit = to_uint8(windowed, low, high)
        notes.append("VOI LUT/window applied.")
    else:
        eight_bit = to_uint8(values)
        notes.append("No window in the file; the image's own range was used.")
    if str(ds.get("PhotometricInterpretation", "")).upper() == "MONOCHROME1":
        eight_bit = 255 - eight_bit
        notes.append("MONOCHROME1 inverted so that bright means dense.")
    return eight_bit, notes


def decode_dicom_bytes(
    data: bytes,
    *,
    patient_salt: str | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    max_frames: int = DEFAULT_MAX_FRAMES,
) -> DecodedImage:
    ds = read_dicom(data)
    check_dicom_size(ds, max_pixels=max_pixels, max_frames=max_frames)
    pixels, notes = dicom_to_uint8(ds)
    if str(ds.get("BurnedInAnnotation", "")).upper() == "YES":
        notes.append("The file says text is burned into the pixels; de-identification cannot remove it.")
    image = Image.fromarray(pixels, mode="RGB" if pixels.ndim == 3 else "L")
    key = patient_key(ds.get("PatientID"), patient_salt) if patient_salt else None
    return DecodedImage(image=image, kind="dicom", notes=notes, patient_key=key)


def _replacement_uid(value: str, salt: str) -> str:
    return str(generate_uid(entropy_srcs=[salt, str(value)]))


def _shift(value: str, vr: str, days: int) -> str:
    try:
        if vr == "DA":
            moved = dt.datetime.strptime(value[:8], "%Y%m%d") + dt.timedelta(days=days)
            return moved.strftime("%Y%m%d")
        if vr == "DT":
            moved = dt.datetime.strptime(value[:8], "%Y%m%d") + dt.timedelta(days=days)
            return moved.strftime("%Y%m%d") + value[8:]
    except ValueError:
        return ""
    return value  # TM: a time of day alone identifies no one once the date has moved


def _date_shift_days(ds: Dataset, salt: str) -> int:
    key = patient_key(ds.get("PatientID"), salt) or hashlib.sha256(salt.encode()).hexdigest()
    # Between 1 and 3 years back, the same for every file of a patient.
    return -(365 + int(key[:8], 16) % 730)


def _clean(ds: Dataset, *, salt: str, shift_days: int | None, remove: set[str]) -> None:
    ds.remove_private_tags()
    for elem in list(ds):
        group = elem.tag.group
        if 0x5000 <= group <= 0x50FF or 0x6000 <= group <= 0x60FF:
            del ds[elem.tag]  # curves and overlays can carry burned-in text
            continue
        keyword = elem.keyword
        if keyword in remove:
            del ds[elem.tag]
            continue
        if elem.VR == "SQ":
            for item in elem.value or Sequence():
                _clean(item, salt=salt, shift_days=shift_days, remove=remove)
        elif elem.VR == "PN":
            elem.value = ""
        elif elem.VR == "UI" and keyword not in UID_KEYWORDS_KEPT and elem.value:
            values = elem.value if elem.VM > 1 else [elem.value]
            replaced = [
                v if UID(str(v)) in pydicom.uid.UID_dictionary else _replacement_uid(str(v), salt) for v in values
            ]
            elem.value = replaced if elem.VM > 1 else replaced[0]
        elif elem.VR in ("DA", "DT", "TM") and elem.value:
            if shift_days is None:
                elem.value = ""
            elif elem.VM <= 1:
                elem.value = _shift(str(elem.value), elem.VR, shift_days)
            else:
                elem.value = [_shift(str(v), elem.VR, shift_days) for v in elem.value]


def deidentify(
    ds: Dataset,
    *,
    salt: str,
    shift_dates: bool = False,
    retain_patient_characteristics: bool = False,
) -> Dataset:
    """A de-identified deep copy of ``ds`` (the input is left as it was)."""
    clean = copy.deepcopy(ds)
    shift_days = _date_shift_days(ds, salt) if shift_dates else None
    remove = set(BASIC_PROFILE_REMOVE)
    if retain_patient_characteristics:
        remove -= set(PATIENT_CHARACTERISTICS)
    _clean(clean, salt=salt, shift_days=shift_days, remove=remove)
    for keyword in BASIC_PROFILE_BLANK:
        if keyword in clean:
            clean.data_element(keyword).value = ""
    meta = getattr(clean, "file_meta", None)
    if meta is not None and "MediaStorageSOPInstanceUID" in meta and "SOPInstanceUID" in clean:
        meta.MediaStorageSOPInstanceUID = clean.SOPInstanceUID
    clean.PatientIdentityRemoved = "YES"
    clean.DeidentificationMethod = DEIDENTIFICATION_METHOD
    codes = [("113100", "Basic Application Confidentiality Profile")]
    if shift_dates:
        codes.append(("113107", "Retain Longitudinal Temporal Information Modified Dates Option"))
    if retain_patient_characteristics:
        codes.append(("113108", "Retain Patient Characteristics Option"))
    sequence = Sequence()
    for value, meaning in codes:
        item = Dataset()
        item.CodeValue = value
        item.CodingSchemeDesignator = "DCM"
        item.CodeMeaning = meaning
        sequence.append(item)
    clean.DeidentificationMethodCodeSequence = sequence
    return clean
