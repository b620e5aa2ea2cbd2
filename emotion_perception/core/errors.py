"""Every exception type of the package, in one module that imports nothing.

`EmotionPerceptionError` means "bad input from the user" (a file, a folder, a setting): the CLI prints it as
one line and exits with status 2, nodes log it and go on. Each subclass also derives from the built-in type
that callers used to catch (ValueError or RuntimeError).
"""

from __future__ import annotations


class EmotionPerceptionError(Exception):
    """Bad input from the user; the message names the input and the cause."""


class ImageError(EmotionPerceptionError, ValueError):
    """An image that cannot be read or converted."""


class FrameError(ImageError):
    """A camera frame whose fields are inconsistent or whose encoding is not supported."""


class ModelFileError(EmotionPerceptionError, RuntimeError):
    """A model file (landmark predictor, forest, CNN, rules) that is missing, unreadable or of the wrong kind."""


class ForestFileError(ModelFileError):
    """A forest file that is missing, corrupt or inconsistent."""


class CnnFileError(ModelFileError):
    """A CNN weight file that is missing, corrupt, or does not match its header."""


class RulesFileError(ModelFileError):
    """A rules file that is missing, corrupt or of the wrong kind."""


class DatasetError(EmotionPerceptionError, ValueError):
    """A dataset folder that cannot be used."""


class ProtocolError(EmotionPerceptionError, ValueError):
    """An evaluation protocol that cannot be applied to the data (too few subjects, no split column, ...)."""


class BagError(EmotionPerceptionError, ValueError):
    """A bag that cannot be read or written as asked."""


class SourceError(EmotionPerceptionError, ValueError):
    """A frame source that cannot be opened or yields no frame."""


class TrialError(EmotionPerceptionError, ValueError):
    """Trial settings or data that cannot be used."""


class InjectorSetupError(EmotionPerceptionError, ValueError):
    """Attack parameter values that cannot work together (scaling without a target, a CNN that cannot load)."""


class ParameterError(EmotionPerceptionError, ValueError):
    """Node parameter values the node refuses at start-up; the message lists every reason."""


class CommandError(EmotionPerceptionError):
    """A command-line error reported as one line on stderr with exit status 2."""


class ExecutorError(EmotionPerceptionError, RuntimeError):
    """Work that cannot be run where it was asked to (a cluster that cannot be reached, workers of another version,
    GPU tasks without GPU workers)."""


class OutputError(EmotionPerceptionError, OSError):
    """An output file or folder that cannot be written (read-only, under a regular file, a full disk, ...)."""


class CacheError(EmotionPerceptionError, RuntimeError):
    """A landmark cache file that cannot be opened, read or written (not a database, locked, read-only)."""


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread of a command so that it is cleaned up as after Ctrl-C."""
