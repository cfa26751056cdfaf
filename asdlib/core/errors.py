"""Exceptions that the command line turns into a one-line message and a non-zero exit."""


class AsdlibError(Exception):
    """Base of every error that asdlib raises about user input (files, settings, data)."""


class DatasetLayoutError(AsdlibError):
    """A dataset folder that does not follow the DCASE2020 layout or naming."""


class AudioError(AsdlibError):
    """A WAV file that cannot be used as it is; the message names the file."""


class DownloadError(AsdlibError):
    """A download that failed (server error, checksum mismatch, no disk space)."""


class CacheError(AsdlibError):
    """A feature cache or checkpoint that is missing, stale or damaged."""


class ConfigError(AsdlibError):
    """A setting that is out of range or inconsistent."""
