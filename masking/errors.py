"""The exception tree. Every error the package raises on purpose derives from `MaskingError`."""

from __future__ import annotations


class MaskingError(Exception):
    """Root of every error raised by masking."""


class ConfigError(MaskingError):
    """A config file (zones, serve, fleet manifest, registry) is invalid.

    The message names the file, the camera/zone (or field) and what was expected.
    """


class InputError(MaskingError):
    """An input (image, video, stream, folder) is missing, unreadable or malformed."""


class OutputError(MaskingError):
    """An output could not be written."""


class ModelError(MaskingError):
    """A model is unknown, missing, corrupted, or failed to load/run."""


class ModelNotInstalledError(ModelError):
    """A model file is not in the model cache; the message says which command installs it."""


class ChecksumError(ModelError):
    """A downloaded or cached model file does not match its registry size/sha256."""


class DownloadError(ModelError):
    """A model could not be fetched (network failure, HTTP error)."""


class DetectorError(MaskingError):
    """A detector failed while running; the pipeline fails closed when it sees one."""


class StoreError(MaskingError):
    """The rescan result store could not be read or written."""


class VaultError(MaskingError):
    """A vault (keys, sealed sidecars, access register, exports) is missing, unreadable or invalid."""


class AccessRefused(VaultError):
    """An unmask, purge or export request was refused (exit status 4); the message says why.

    The refusal has been written to the access register before this is raised.
    """


class TamperError(AccessRefused):
    """Sealed data, a register or an export failed authentication; the message names what and where."""
