"""The ingest_public stage and `sluice ingest`; each connector's own tests are in tests/ingest/sources/."""

import pytest

from ingest import public
from sluice.errors import InputError


def test_cli_ingest_user_errors_are_one_line_exit_2(run_cli, tmp_path):
    params = {"lake": {"root": str(tmp_path / "lake")},
              "ingest": {"sources": [{"name": "x", "kind": "image_folder", "path": str(tmp_path / "missing")}]}}
    result = run_cli("ingest", params=params)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [
        f"sluice: error: {tmp_path / 'missing'}: path of ingest source 'x' does not exist"]
    result = run_cli("ingest", "--source", "nope", params=params)
    assert result.returncode == 2 and "no ingest source named 'nope'" in result.stderr


@pytest.mark.parametrize("ingest", [{"sources": []}, {}])
def test_no_sources_is_an_error_not_an_empty_success(run_cli, tmp_path, ingest):
    result = run_cli("ingest", params={"lake": {"root": str(tmp_path / "lake")}, "ingest": ingest})
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [
        ("sluice: error: no ingest sources configured: add entries under ingest.sources in params.yaml "
         "(see docs/connectors.md)")]


def test_stage_run_refuses_no_sources(make_params):
    with pytest.raises(InputError, match="no ingest sources configured"):
        public.run(make_params({"ingest": {"sources": []}}))


def test_unknown_kind_names_the_known_kinds(run_cli, tmp_path):
    result = run_cli("ingest", params={"lake": {"root": str(tmp_path / "lake")},
                                       "ingest": {"sources": [{"name": "x", "kind": "zip", "path": "p"}]}})
    assert result.returncode == 2 and "Traceback" not in result.stderr
    line, = result.stderr.strip().splitlines()
    assert "ingest.sources.0.kind" in line and "unknown source kind 'zip'; known kinds: cifar, hdf5, idx, image_folder, npz, parquet, pixel_csv, stl10, svhn, tfrecord, webdataset" in line


def test_ingest_reports_progress_lines_off_a_terminal(run_cli, tmp_path):
    import numpy as np
    from PIL import Image

    for i in range(6):
        (tmp_path / "photos" / "cat").mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.full((8, 8, 3), i * 40, np.uint8)).save(tmp_path / "photos" / "cat" / f"{i}.png")
    (tmp_path / "photos" / "cat" / "bad.png").write_bytes(b"<html>")
    params = {"lake": {"root": str(tmp_path / "lake")},
              "ingest": {"sources": [{"name": "mine", "kind": "image_folder", "path": str(tmp_path / "photos")}]}}
    result = run_cli("ingest", params=params, env={"SLUICE_PROGRESS_EVERY": "0"})  # a line per record
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stderr.splitlines() if "[ingest] mine:" in line and "records read" in line]
    assert len(lines) == 7 and "7 records read" in lines[-1], result.stderr
