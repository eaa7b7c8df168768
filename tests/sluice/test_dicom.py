"""DICOM read as images (windowed to 8 bits, MONOCHROME1 inverted, first frame), and de-identified where it lands."""

from __future__ import annotations

import io
import warnings

import numpy as np
import pytest
from pydicom import Dataset, dcmread
from pydicom.data import get_testdata_file
from pydicom.dataset import FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

from sluice import dicom
from sluice.imaging import Geometry, Limits, Reject, decode, guard

GEOMETRY = Geometry(16, 16, "squash")


def make_dicom(pixels: np.ndarray, photometric: str = "MONOCHROME2", **attributes) -> bytes:
    """A DICOM Part 10 file of uncompressed grey pixels (uint16 or int16), with ``attributes`` set."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID = SecondaryCaptureImageStorage, generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, photometric
    ds.BitsAllocated = ds.BitsStored = 16
    ds.HighBit, ds.PixelRepresentation = 15, int(pixels.dtype == np.int16)
    ds.PixelData = pixels.tobytes()
    for key, value in attributes.items():
        setattr(ds, key, value)
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


def grey(content: bytes, first_frame_only: bool = True) -> np.ndarray:
    with guard(Limits()):
        im, fmt, _ = dicom.to_image(content, 50_000_000, first_frame_only)
    assert fmt == "DICOM"
    return np.asarray(im)


def test_a_ct_slice_is_read_in_hounsfield_units_through_its_window():
    """Stored values 24, 1064, 2024 are -1000, 40 and 1000 HU (intercept -1024); a soft-tissue window of
    40 / 400 shows air black, its centre mid-grey and bone white."""
    stored = np.array([[24, 1064], [2024, 1064]], np.uint16).repeat(8, 0).repeat(8, 1)
    pixels = grey(make_dicom(stored, RescaleIntercept=-1024, RescaleSlope=1, WindowCenter=40, WindowWidth=400))
    assert pixels[0, 0] == 0 and pixels[8, 0] == 255 and abs(int(pixels[0, 8]) - 128) <= 1


def test_monochrome1_is_inverted_and_a_file_without_a_window_spans_its_own_range():
    stored = np.array([[0, 500], [1000, 250]], np.uint16).repeat(8, 0).repeat(8, 1)
    plain = grey(make_dicom(stored))
    assert (plain[0, 0], plain[0, 8], plain[8, 0]) == (0, 128, 255)
    inverted = grey(make_dicom(stored, photometric="MONOCHROME1"))
    assert (inverted == 255 - plain).all()  # an X-ray stored bright-background is shown as it is read


@pytest.mark.parametrize("name, mode", [
    ("CT_small.dcm", "MONOCHROME2 16-bit"),  # CT, rescale intercept, no window: its own range
    ("MR_small.dcm", "MONOCHROME2 16-bit"),  # MR with a window
    ("JPEG2000.dcm", "MONOCHROME2 16-bit"),  # JPEG 2000 (Pillow)
    ("MR_small_jpeg_ls_lossless.dcm", "MONOCHROME2 16-bit"),  # JPEG-LS (GDCM)
    ("SC_rgb_jpeg_gdcm.dcm", "RGB 8-bit"),  # JPEG lossless (GDCM)
    ("SC_rgb_rle.dcm", "RGB 8-bit"),  # RLE
    ("examples_palette.dcm", "PALETTE COLOR 8-bit"),  # ultrasound with a colour palette
    ("liver_1frame.dcm", "MONOCHROME2 1-bit"),  # a 1-bit segmentation
])
def test_real_dicom_files_decode_to_the_geometry(name, mode):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        content = open(get_testdata_file(name), "rb").read()
    out = decode(content, GEOMETRY, Limits(min_side=1))
    assert out.pixels.shape == (16, 16, 3) and out.format == "DICOM" and out.mode == mode
    assert out.pixels.std() > 0  # an image, not a flat field


def test_frames_follow_clean_animated_and_files_without_pixels_are_not_images():
    content = open(get_testdata_file("examples_ybr_color.dcm"), "rb").read()  # 30 ultrasound frames
    assert decode(content, GEOMETRY, Limits(animated="first_frame")).pixels.shape == (16, 16, 3)
    with pytest.raises(Reject) as multi:
        decode(content, GEOMETRY, Limits(animated="quarantine"))
    assert multi.value.reason == "animated" and "30 frames" in multi.value.details
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        plan = open(get_testdata_file("rtplan.dcm"), "rb").read()
    with pytest.raises(Reject) as no_pixels:
        decode(plan, GEOMETRY)
    assert no_pixels.value.reason == "not_an_image" and "without pixel data (RTPLAN)" in no_pixels.value.details


@pytest.mark.parametrize("name", ["MR_truncated.dcm"])  # cut short
def test_a_dicom_file_that_cannot_be_decoded_is_a_reject_not_a_crash(name):
    with pytest.raises(Reject) as bad:
        decode(open(get_testdata_file(name), "rb").read(), GEOMETRY)
    assert bad.value.reason in ("truncated", "undecodable") and bad.value.details


def test_a_bomb_is_refused_before_its_pixels_are_decoded():
    content = make_dicom(np.zeros((4, 4), np.uint16), Rows=60_000, Columns=60_000)  # header says 3.6 GP
    with pytest.raises(Reject) as bomb:
        decode(content, GEOMETRY)
    assert bomb.value.reason == "decompression_bomb"


def test_deidentify_removes_the_people_and_returns_the_patient_id_and_keeps_the_pixels():
    content = open(get_testdata_file("CT_small.dcm"), "rb").read()
    private = make_dicom(np.arange(64, dtype=np.uint16).reshape(8, 8), PatientName="Doe^Jane", PatientID="P-17",
                         PatientBirthDate="19700101", InstitutionName="St Elsewhere", ReferringPhysicianName="House^G",
                         PatientSex="F")
    for raw, patient in ((content, "1CT1"), (private, "P-17")):
        clean, subject = dicom.deidentify(raw)
        assert subject == patient
        ds = dicom._read(clean)
        assert not {"PatientName", "PatientBirthDate", "InstitutionName", "ReferringPhysicianName"} & set(ds.dir())
        assert not any(e.tag.is_private for e in ds) and ds.PatientID == ""  # the subject column holds it
        assert patient.encode() not in clean
        assert (grey(clean) == grey(raw)).all()
        assert dicom.deidentify(clean) == (clean, None)  # de-identified again: the same bytes (the same image_id)
    assert dicom._read(dicom.deidentify(private)[0]).PatientSex == "F"  # kept: what a fairness study needs
    assert dicom.deidentify(make_dicom(np.zeros((8, 8), np.uint16), PatientID="ANONYMOUS"))[1] is None


def test_hostile_dicom_bytes_are_rejects_never_crashes():
    """Cut and corrupted files (headers with lengths past the end, pixel data of another size): a Reject each."""
    rng = np.random.default_rng(0)
    content = open(get_testdata_file("MR_small.dcm"), "rb").read()
    for trial in range(60):
        bad = bytearray(content[: rng.integers(133, len(content))] if trial % 2 else content)
        for at in rng.integers(132, len(bad), 4):
            bad[at] = rng.integers(0, 256)
        try:
            decode(bytes(bad), GEOMETRY, Limits(min_side=1))
        except Reject as rej:
            assert rej.reason and rej.details


def test_a_dicomdir_export_of_files_without_an_extension_is_read_by_content(tmp_path, make_params, lake):
    """A PACS / CD export: DICOMDIR beside DICOM/PA000000/ST000000/SE000000/IM000000. init finds it (unlabelled: the
    export names no class), ingest lands each IM file de-identified with its patient as subject; the DICOMDIR index and
    an extension-less file that is not DICOM are quarantined with why."""
    from ingest import public
    from ingest.sources.image_folder import detect

    for patient in ("PA000000", "PA000001"):
        series = tmp_path / "DICOM" / patient / "ST000000" / "SE000000"
        series.mkdir(parents=True)
        for k in range(2):
            pixels = (np.arange(64, dtype=np.uint16).reshape(8, 8) * (k + 1 + 7 * int(patient[-1])))
            (series / f"IM00000{k}").write_bytes(make_dicom(pixels, PatientID=f"MRN-{patient}", PatientName="Doe^Jane"))
    (tmp_path / "DICOMDIR").write_bytes(make_dicom(np.zeros((8, 8), np.uint16)))
    (tmp_path / "README").write_text("exported by the PACS")
    found = detect(str(tmp_path))
    assert found == {"label_from": "none"}
    stats = public.run(make_params({"ingest": {"sources": [{"name": "pacs", "kind": "image_folder",
                                                            "path": str(tmp_path), **found}]}}))["sources"]["pacs"]
    assert stats["inserted"] == 4
    assert stats["quarantine_reasons"] == {"not_an_image": 1, "not_an_image_extension": 1}  # DICOMDIR, README
    rows = lake.read("raw_images").to_pylist()
    assert {r["subject"] for r in rows} == {"MRN-PA000000", "MRN-PA000001"}  # no key in this test: as given
    assert not any(b"Doe^Jane" in r["content"] for r in rows)
    assert all(grey(r["content"]).shape == (8, 8) for r in rows)


def test_deidentify_reaches_into_sequences():
    """A referenced patient's name inside a sequence, and a private tag there, go too."""
    from pydicom.sequence import Sequence

    inner = Dataset()
    inner.PatientName, inner.ReferencedSOPInstanceUID = "Roe^Richard", generate_uid()
    inner.add_new(0x00091001, "LO", "private note")
    content = make_dicom(np.zeros((8, 8), np.uint16), PatientID="P-1", ReferencedPatientSequence=Sequence([inner]))
    assert b"Roe^Richard" in content
    clean, subject = dicom.deidentify(content)
    assert b"Roe^Richard" not in clean and b"private note" not in clean and subject == "P-1"
    assert "ReferencedSOPInstanceUID" in dicom._read(clean).ReferencedPatientSequence[0]  # the rest kept


def test_12_bit_jpeg_extended_decodes():
    """Older CR / CT archives keep 12-bit lossy JPEG (transfer syntax 1.2.840.10008.1.2.4.51), which GDCM's wheel
    does not decode: imagecodecs' libjpeg-turbo does, windowed like any other grey frame."""
    import imagecodecs
    from pydicom.encaps import encapsulate
    from pydicom.uid import JPEGExtended12Bit

    values = (np.add.outer(np.arange(48), np.arange(64)) * 40).astype(np.uint16)  # 0..4,400 > 8 bits
    values = np.minimum(values, 4095)
    content = make_dicom(values, WindowCenter=2048, WindowWidth=4096)
    ds = dcmread(io.BytesIO(content))
    ds.file_meta.TransferSyntaxUID = JPEGExtended12Bit
    ds.BitsStored, ds.HighBit = 12, 11
    ds.PixelData = encapsulate([imagecodecs.jpeg8_encode(values, level=98, bitspersample=12)])
    ds["PixelData"].VR = "OB"
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    with pytest.raises(RuntimeError, match="JPEG Extended"):  # what pydicom's own plugins say
        from pydicom.pixels import pixel_array
        pixel_array(dcmread(io.BytesIO(out.getvalue())))
    got = grey(out.getvalue()).astype(int)
    expected = np.clip(np.rint((values - 0.5) / 4095 * 255), 0, 255)
    assert got.shape == (48, 64) and np.abs(got - expected).mean() < 2
    assert grey(open(get_testdata_file("JPGExtended.dcm"), "rb").read()).shape == (1024, 256)  # pydicom's sample
    ds.PixelData = encapsulate([imagecodecs.jpeg8_encode(values, level=98, bitspersample=12)[:200]])  # cut short
    cut = io.BytesIO()
    ds.save_as(cut, enforce_file_format=True)
    with pytest.raises(Reject) as bad:
        decode(cut.getvalue(), GEOMETRY)
    assert bad.value.reason in ("truncated", "undecodable") and bad.value.details
