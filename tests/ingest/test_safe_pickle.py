import os
import pickle

import numpy as np
import pytest

from ingest.safe_pickle import load_untrusted
from sluice.errors import InputError


class Evil:
    def __reduce__(self):
        return (os.system, ("touch pwned",))


def test_numpy_batches_load(tmp_path):
    path = tmp_path / "batch"
    path.write_bytes(pickle.dumps({b"data": np.arange(6, dtype=np.uint8).reshape(2, 3), b"labels": [1, 2]}, protocol=2))
    batch = load_untrusted(path)
    assert batch[b"labels"] == [1, 2] and batch[b"data"].shape == (2, 3)


def test_malicious_pickle_is_refused_and_never_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "data_batch_1"
    path.write_bytes(pickle.dumps({b"data": Evil()}))
    with pytest.raises(InputError, match=r"refused to unpickle: global 'posix.system' is not allowed"):
        load_untrusted(path)
    assert not (tmp_path / "pwned").exists()


def test_garbage_is_a_clear_error(tmp_path):
    path = tmp_path / "batch"
    path.write_bytes(b"\x80\x04not a pickle at all")
    with pytest.raises(InputError, match="not a valid pickle"):
        load_untrusted(path)
