"""A restricted unpickler for CIFAR's python-pickle layout.

Pickles are programs: ``pickle.load`` on a downloaded file can run any code. CIFAR batches only
need dicts, lists, bytes, strings, numbers and numpy arrays, so only the globals that rebuild numpy
arrays are allowed; any other global is refused before it is imported, let alone called.
"""

from __future__ import annotations

import io
import pickle

from sluice.errors import InputError

_ALLOWED = {
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("_codecs", "encode"),  # how Python 3 writes bytes in protocol-2 pickles; a pure string function
}


class ForbiddenGlobal(pickle.UnpicklingError):
    """The pickle asked for a global outside the allow-list."""


class RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) not in _ALLOWED:
            raise ForbiddenGlobal(f"global '{module}.{name}' is not allowed")
        if module.startswith("numpy.core"):
            module = "numpy._core" + module[len("numpy.core"):]
        return super().find_class(module, name)


def load_untrusted(path) -> object:
    """Unpickle ``path`` allowing only plain containers and numpy arrays."""
    data = path.read_bytes()
    try:
        return RestrictedUnpickler(io.BytesIO(data), encoding="bytes").load()
    except ForbiddenGlobal as err:
        raise InputError(f"{path}: refused to unpickle: {err} (only plain containers and numpy arrays are allowed)") from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, IndexError, KeyError) as err:
        raise InputError(f"{path}: not a valid pickle ({err.__class__.__name__}: {err})") from None
