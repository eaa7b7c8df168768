"""MATLAB (v5) files that older data sets ship their labels and splits in, read without trusting them.

Oxford Flowers-102: ``imagelabels.mat`` (``labels``: the class, 1..102, of each image in name order) and
``setid.mat`` (``trnid``, ``valid``, ``tstid``: 1-based image numbers); Stanford Dogs: ``lists/train_list.mat``
and ``test_list.mat`` (``file_list``: a cell array of paths such as ``n02085620-Chihuahua/n02085620_5927.jpg``);
Stanford Cars: ``devkit/cars_train_annos.mat`` (a struct array: ``fname``, ``class``, a box) and ``cars_meta.mat``
(``class_names``).
scipy reads them into arrays; nothing in them runs. A file that is not such a MATLAB file is one line naming it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from sluice.errors import InputError


def variables(path: Path) -> dict[str, np.ndarray]:
    """The arrays of a MATLAB v5 file, by name."""
    from scipy.io import loadmat

    try:
        data = loadmat(path)
    except Exception as err:  # noqa: BLE001 - scipy raises what a broken file makes it (IndexError, v7.3's NotImplementedError)
        raise InputError(f"{path}: not a readable MATLAB v5 file ({str(err).splitlines()[0] or type(err).__name__})") \
            from None
    return {k: v for k, v in data.items() if not k.startswith("__") and isinstance(v, np.ndarray)}


def file_names(path: Path) -> list[str]:
    """The strings of the file's first cell array of strings (Stanford Dogs' ``file_list``)."""
    for value in variables(path).values():
        if value.dtype == object and value.size:
            names = [str(np.asarray(cell).reshape(-1)[0]) if np.asarray(cell).size else "" for cell in value.reshape(-1)]
            if all(isinstance(n, str) for n in names):
                return names
    raise InputError(f"{path}: holds no list of file names (a cell array of strings, as Stanford Dogs' file_list)")


def numbers(path: Path) -> dict[str, np.ndarray]:
    """The file's numeric arrays, each flattened (Flowers-102's ``labels``, ``trnid``...)."""
    return {k: v.reshape(-1) for k, v in variables(path).items() if v.dtype.kind in "iuf"}


def records(path: Path) -> list[dict[str, object]]:
    """The rows of the file's first struct array, a dict of field -> number or string each (Stanford Cars'
    ``cars_train_annos.mat``: ``annotations`` of ``bbox_x1`` ... ``class``, ``fname``)."""
    for value in variables(path).values():
        if value.dtype.names:
            return [{name: _scalar(item[name]) for name in value.dtype.names} for item in value.reshape(-1)]
    raise InputError(f"{path}: holds no table of records (a struct array, as Stanford Cars' annotations)")


def _scalar(cell) -> object:
    found = np.asarray(cell).reshape(-1)
    if not found.size:
        return None
    return found[0].item() if found.dtype.kind in "iuf" else str(found[0])
