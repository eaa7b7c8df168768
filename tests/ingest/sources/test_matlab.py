"""MATLAB files of older data sets' labels and splits (``ingest/sources/matlab.py``)."""

import numpy as np
import pytest
from scipy.io import savemat

from ingest.sources import matlab
from sluice.errors import InputError


def test_what_is_not_a_matlab_file_or_not_a_list_is_one_line(tmp_path):
    (tmp_path / "html.mat").write_bytes(b"<html>404</html>")  # a download that failed
    with pytest.raises(InputError, match="html.mat: not a readable MATLAB v5 file"):
        matlab.variables(tmp_path / "html.mat")
    savemat(tmp_path / "numbers.mat", {"labels": np.arange(3)})
    with pytest.raises(InputError, match="holds no list of file names"):
        matlab.file_names(tmp_path / "numbers.mat")
    assert matlab.numbers(tmp_path / "numbers.mat")["labels"].tolist() == [0, 1, 2]
