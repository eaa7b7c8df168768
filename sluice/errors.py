"""One error hierarchy for the whole project.

`UserError` and its subclasses are mistakes a user can fix (bad params, a missing path, a malformed
file): every command turns them into one line on stderr and exit code 2. Anything else is a bug and
keeps its traceback.
"""


class SluiceError(Exception):
    """Base class for errors Sluice raises on purpose."""

    exit_code = 1


class UserError(SluiceError):
    """A problem with the user's input: printed as one line, exit code 2."""

    exit_code = 2


class ConfigError(UserError):
    """params.yaml is missing, malformed, or has an unknown key or a wrong value."""


class InputError(UserError):
    """An input path, file or column is missing or unusable."""


class SchemaMismatch(UserError):
    """A write does not match the catalog's schema for its table."""


class QualityGateFailed(SluiceError):
    """A critical data-quality expectation failed; the pipeline must stop."""

    exit_code = 3


class Reject(Exception):
    """An image that cannot be used (sluice/imaging.py, sluice/dicom.py): ``reason`` is the quarantine code,
    ``details`` says why. Not a user error: the image is quarantined and the stage goes on."""

    def __init__(self, reason: str, details: str):
        super().__init__(details)
        self.reason = reason
        self.details = details

