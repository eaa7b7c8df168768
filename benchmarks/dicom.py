"""DICOM: decoding an X-ray to the clean stage's pixels, and landing it de-identified, against the same image as a
16-bit PNG.

A chest-X-ray-shaped file (one 12-bit grey frame, 1024 x 1024 by default, uncompressed as CR and DX exports
are, with a VOI window and a patient's name in its header) against, as the named baseline, the same pixels
saved as a 16-bit PNG, the format a user converting DICOM by hand would write: ``sluice.imaging.decode`` of
each to the clean stage's 32 x 32 (the DICOM through its window; the PNG through Pillow and the 16-bit
rescale), and at landing, ``sluice.dicom.deidentify`` (parse the header, drop the identifying attributes,
write the file back) against reading the PNG's bytes as the image-folder connector lands a photo (nothing
parsed). Same files, same run, best of ``--repeat``.

    python benchmarks/dicom.py [--files 100] [--side 1024] [--repeat 3]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _common import best_of, ratio_line


def xray(rng: np.random.Generator, side: int) -> np.ndarray:
    """A smooth 12-bit field with noise: the grey levels of a radiograph, not its anatomy."""
    yy, xx = np.mgrid[0:side, 0:side] / side
    field = 2000 + 1500 * np.sin(6 * xx + rng.uniform(0, 6)) * np.cos(4 * yy + rng.uniform(0, 6))
    return np.clip(field + rng.normal(0, 40, field.shape), 0, 4095).astype(np.uint16)


def write(root: Path, files: int, side: int) -> tuple[list[Path], list[Path]]:
    from PIL import Image
    from pydicom import Dataset
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    rng = np.random.default_rng(0)
    dicoms, pngs = [], []
    for i in range(files):
        pixels = xray(rng, side)
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID = "1.2.840.10008.5.1.4.1.1.1", generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = Dataset()
        ds.file_meta = meta
        ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
        ds.PatientName, ds.PatientID, ds.InstitutionName, ds.Modality = "Doe^Jane", f"P{i:05d}", "General", "CR"
        ds.Rows = ds.Columns = side
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
        ds.WindowCenter, ds.WindowWidth = 2048, 4096
        ds.PixelData = pixels.tobytes()
        dicoms.append(root / f"{i}.dcm")
        ds.save_as(dicoms[-1], enforce_file_format=True)
        pngs.append(root / f"{i}.png")
        Image.fromarray(pixels).save(pngs[-1])  # uint16: mode I;16, a 16-bit PNG
    return dicoms, pngs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", type=int, default=100)
    ap.add_argument("--side", type=int, default=1024)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    from sluice import dicom
    from sluice.imaging import Geometry, decode

    geometry = Geometry(32, 32, "center_crop")
    with tempfile.TemporaryDirectory() as tmp:
        dicoms, pngs = write(Path(tmp), args.files, args.side)
        dicom_bytes = [p.read_bytes() for p in dicoms]
        png_bytes = [p.read_bytes() for p in pngs]
        checks = [decode(b, geometry).pixels for b in dicom_bytes[:3]] + [decode(b, geometry).pixels for b in png_bytes[:3]]
        assert all(c.std() > 0 for c in checks)
        t_decode_dicom = best_of(lambda: [decode(b, geometry) for b in dicom_bytes], args.repeat)
        t_decode_png = best_of(lambda: [decode(b, geometry) for b in png_bytes], args.repeat)
        t_land_dicom = best_of(lambda: [dicom.deidentify(p.read_bytes()) for p in dicoms], args.repeat)
        t_land_png = best_of(lambda: [p.read_bytes() for p in pngs], args.repeat)
        assert b"Doe^Jane" not in dicom.deidentify(dicom_bytes[0])[0] and b"Doe^Jane" in dicom_bytes[0]
    mb = sum(len(b) for b in dicom_bytes) / 1e6
    print(f"{args.files} X-rays of {args.side}x{args.side}, 12-bit ({mb:.0f} MB of DICOM, "
          f"{sum(len(b) for b in png_bytes) / 1e6:.0f} MB of PNG)")
    print(ratio_line("decode a DICOM X-ray to 32x32 (window)", t_decode_dicom, "the same pixels as a 16-bit PNG",
                     t_decode_png))
    print(ratio_line("land a DICOM file de-identified (read, parse, drop names, write)", t_land_dicom,
                     "reading the PNG's bytes as they are", t_land_png))


if __name__ == "__main__":
    main()
