"""DICOM files (X-rays, CT and MR slices, ultrasound: what RSNA's, SIIM's and most hospitals' image sets
are) read as images, their patient as the subject, their identifying header removed where they land.

**Pixels** (:func:`to_image`, called by :func:`sluice.imaging.decode`): the first frame (a cine loop or
a multi-frame volume follows ``clean.animated``), through its modality LUT (rescale slope and
intercept: CT's Hounsfield units) and its first VOI window (``WindowCenter`` / ``WindowWidth``, the
view the modality meant; else a VOI LUT; else the frame's own range), inverted where it is
``MONOCHROME1`` (bright background), so every grey image comes out as a radiologist first sees it, 8
bits. Colour (RGB, YBR: converted by pydicom; a palette) is scaled to 8 bits. Compressed pixel data is
decoded by pydicom's plugins: Pillow (JPEG baseline, JPEG 2000), GDCM (JPEG lossless, JPEG-LS, RLE), and 12-bit
JPEG Extended by imagecodecs (:func:`_first_frame`); what none decodes is ``undecodable`` with pydicom's reason.

**Landing** (:func:`deidentify`, called where a file lands): a DICOM header names the patient, their
birth date and address, the physicians, the institution and the accession number; the bronze copy is
the file without them (the attributes of :data:`IDENTIFYING` and every private tag removed, at any depth
of the header's sequences; ``PatientID`` emptied; the pixel data untouched), so they never reach the lake. The
``PatientID`` becomes the image's subject (``raw_images.subject``, a keyed pseudonym: sluice/privacy.py), which
keeps a patient's images in one split (sluice/split_units.py) and lets ``sluice erase --subject`` find them.
"""

from __future__ import annotations

import io
import os
import warnings
from pathlib import Path

import numpy as np
from PIL import Image

from sluice.errors import Reject

MAGIC_OFFSET, MAGIC = 128, b"DICM"  # a DICOM Part 10 file: 128-byte preamble, then "DICM"
EXTENSIONS = (".dcm", ".dicom")
# PS3.15 Annex E's basic profile, the attributes that name or locate a person (the patient, their family,
# the staff) or the institution; the study dates and the patient's age and sex stay (what a fairness study needs)
IDENTIFYING = (
    "PatientName", "PatientBirthDate", "PatientBirthTime", "PatientBirthName", "PatientMotherBirthName",
    "PatientAddress", "PatientTelephoneNumbers", "PatientTelecomInformation", "OtherPatientIDs",
    "OtherPatientIDsSequence", "OtherPatientNames", "MedicalRecordLocator", "MilitaryRank", "BranchOfService",
    "Occupation", "PatientInsurancePlanCodeSequence", "InsurancePlanIdentification", "PatientComments",
    "AdditionalPatientHistory", "ResponsiblePerson", "ResponsibleOrganization", "ReferringPhysicianName",
    "ReferringPhysicianAddress", "ReferringPhysicianTelephoneNumbers", "ReferringPhysicianIdentificationSequence",
    "PerformingPhysicianName", "PerformingPhysicianIdentificationSequence", "PhysiciansOfRecord",
    "NameOfPhysiciansReadingStudy", "RequestingPhysician", "OperatorsName", "ScheduledPerformingPhysicianName",
    "InstitutionName", "InstitutionAddress", "InstitutionalDepartmentName", "StationName", "DeviceSerialNumber",
    "AccessionNumber", "StudyID", "RequestAttributesSequence", "ContentCreatorName", "PersonName",
)
NO_SUBJECT = {"", "anonymous", "anon", "unknown", "none", "0"}


def is_dicom(content: bytes) -> bool:
    return len(content) >= MAGIC_OFFSET + 4 and bytes(content[MAGIC_OFFSET:MAGIC_OFFSET + 4]) == MAGIC


def file_is_dicom(path: Path) -> bool:
    """Whether a file starts as a DICOM Part 10 file (a DICOMDIR export names its files IM000000, no extension)."""
    try:
        with path.open("rb") as f:
            return is_dicom(f.read(MAGIC_OFFSET + 4))
    except OSError:
        return False


def without_extension(root: Path, limit: int = 200) -> Path | None:
    """The first of up to ``limit`` files without an extension under ``root`` that is DICOM (a DICOMDIR export's
    ``IM000001``): such a folder is read by content, unlabelled; None when there is none."""
    seen = 0
    for parent, _, names in os.walk(root):
        for name in sorted(n for n in names if not Path(n).suffix and n.upper() != "DICOMDIR"):
            path = Path(parent, name)
            if file_is_dicom(path):
                return path
            seen += 1
            if seen >= limit:
                return None
    return None


def holds_dicom(root: Path, limit: int = 2000) -> bool:
    """Whether any of the first ``limit`` files under ``root`` is DICOM (by its extension, or by content where it
    has none): its patients are then the images' subjects."""
    seen = 0
    for parent, _, names in os.walk(root):
        for name in sorted(names):
            suffix = Path(name).suffix.lower()
            if suffix in EXTENSIONS or (not suffix and name.upper() != "DICOMDIR" and file_is_dicom(Path(parent, name))):
                return True
            seen += 1
            if seen >= limit:
                return False
    return False


def _read(content: bytes, pixels: bool = True):
    import pydicom

    with warnings.catch_warnings():  # a header value off the standard (an IS of '1A') is read as it is
        warnings.simplefilter("ignore", UserWarning)
        return pydicom.dcmread(io.BytesIO(content), stop_before_pixels=not pixels)


def frames(ds) -> int:
    return max(int(ds.get("NumberOfFrames", 1) or 1), 1)


def to_image(content: bytes, max_pixels: int, first_frame_only: bool) -> tuple[Image.Image, str, str]:
    """(the 8-bit L or RGB image of the first frame, its format, its mode as the file states it); raises
    :class:`sluice.errors.Reject` for a file without pixels, too many pixels or more than one frame when
    ``first_frame_only`` is False. Call inside :func:`sluice.imaging.guard`."""
    from pydicom.pixels import apply_color_lut, apply_modality_lut, apply_voi_lut, pixel_array

    ds = _read(content)
    if not any(k in ds for k in ("PixelData", "FloatPixelData", "DoubleFloatPixelData")):
        what = ds.get("Modality") or getattr(ds.get("SOPClassUID"), "name", "") or "no image"
        raise Reject("not_an_image", f"a DICOM file without pixel data ({what})")
    rows, cols, count = int(ds.Rows), int(ds.Columns), frames(ds)
    if rows * cols > max_pixels:
        raise Reject("decompression_bomb", f"DICOM {cols}x{rows} = {rows * cols} pixels > clean.max_pixels {max_pixels}")
    if count > 1 and not first_frame_only:
        raise Reject("animated", f"DICOM with {count} frames (clean.animated: quarantine)")
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).upper()
    mode = f"{photometric} {int(ds.get('BitsStored') or ds.get('BitsAllocated') or 8)}-bit"
    arr = _first_frame(ds, count, pixel_array)
    if photometric == "PALETTE COLOR":
        rgb = apply_color_lut(arr, ds).astype(np.float64)
        return Image.fromarray(_to_uint8(rgb, 0.0, 65535.0 if rgb.max(initial=0) > 255 else 255.0), "RGB"), "DICOM", mode
    if arr.ndim == 3:  # RGB (YBR converted by pixel_array)
        top = float(2 ** int(ds.get("BitsStored") or 8) - 1)
        return Image.fromarray(_to_uint8(arr.astype(np.float64), 0.0, top), "RGB"), "DICOM", mode
    values = apply_modality_lut(arr, ds).astype(np.float64)
    center, width = _window(ds)
    if width:
        low, high = center - 0.5 - (width - 1) / 2, center - 0.5 + (width - 1) / 2
    else:
        if "VOILUTSequence" in ds:
            values = apply_voi_lut(values, ds).astype(np.float64)
        finite = values[np.isfinite(values)]
        low, high = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 0.0)
    grey = _to_uint8(values, low, high)
    if photometric == "MONOCHROME1":
        grey = 255 - grey
    return Image.fromarray(grey, "L"), "DICOM", mode


JPEG_EXTENDED = "1.2.840.10008.1.2.4.51"  # JPEG Extended (process 2 & 4): 12-bit lossy, as older CR / CT archives keep


def _first_frame(ds, count: int, pixel_array) -> np.ndarray:
    """The first frame's stored values (``pixel_array``'s, which applies no LUT). 12-bit JPEG Extended, which no
    plugin of pydicom's decodes here (GDCM's build lacks it, pylibjpeg-libjpeg is GPL), is decoded by imagecodecs'
    libjpeg-turbo (BSD), signed values restored where ``PixelRepresentation`` says so."""
    try:
        return pixel_array(ds, index=0 if count > 1 else None)
    except (RuntimeError, NotImplementedError, ValueError):
        if str(ds.file_meta.get("TransferSyntaxUID", "")) != JPEG_EXTENDED:
            raise
    import imagecodecs
    from pydicom.encaps import generate_frames

    frame = next(generate_frames(ds.PixelData, number_of_frames=count))
    if b"\xff\xd9" not in frame[-32:]:  # libjpeg fills a cut stream with grey and only warns; EOI (then padding) ends it
        raise Reject("truncated", "the 12-bit JPEG frame ends before its end-of-image marker (a partial file?)")
    arr = imagecodecs.jpeg8_decode(frame)
    bits = int(ds.get("BitsStored") or 12)
    if int(ds.get("PixelRepresentation") or 0) == 1 and arr.ndim == 2:  # two's complement in ``bits`` bits
        signed = arr.astype(np.int32)
        return np.where(signed >= 1 << (bits - 1), signed - (1 << bits), signed)
    return arr


def _window(ds) -> tuple[float, float]:
    """The first VOI window (center, width) the file gives; width 0 where it gives none usable."""
    from pydicom.multival import MultiValue

    def first(value) -> float | None:
        if isinstance(value, (MultiValue, list, tuple)):
            value = value[0] if len(value) else None
        try:
            return None if value is None else float(value)
        except (TypeError, ValueError):
            return None

    center, width = first(ds.get("WindowCenter")), first(ds.get("WindowWidth"))
    return (center, width) if center is not None and width is not None and width > 1 else (0.0, 0.0)


def _to_uint8(values: np.ndarray, low: float, high: float) -> np.ndarray:
    span = high - low
    scaled = (np.nan_to_num(values, nan=low) - low) / span if span > 0 else np.zeros_like(values)
    return np.clip(np.rint(scaled * 255.0), 0, 255).astype(np.uint8)


def deidentify(content: bytes) -> tuple[bytes, str | None]:
    """(the file without its identifying attributes and private tags and with its PatientID emptied, that
    PatientID or None); the pixel data and every other attribute are written back as they were read. Raises
    what pydicom raises on a file it cannot read (the caller quarantines it)."""
    from pydicom.datadict import tag_for_keyword

    ds = _read(content)
    identifying = {tag_for_keyword(k) for k in IDENTIFYING} - {None}
    doomed: list[tuple] = []  # (dataset, tag) at any depth: a referenced patient's name sits inside a sequence

    def mark(dataset, element) -> None:
        if element.tag in identifying or element.tag.is_private:
            doomed.append((dataset, element.tag))

    ds.walk(mark, recursive=True)
    for dataset, tag in doomed:
        if tag in dataset:
            del dataset[tag]
    patient = str(ds.get("PatientID", "") or "").strip()
    subject = None if patient.lower() in NO_SUBJECT else patient
    if patient:  # kept beside the image as its subject (a pseudonym: sluice/privacy.py), not in its bytes
        ds.PatientID = ""
    removed = bool(doomed) or bool(patient)
    if not removed:
        return content, subject
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=False)
    return out.getvalue(), subject
