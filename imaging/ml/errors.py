"""Error types of the imaging core.

``ImagingError(message, code)`` is what the web layer turns into a 4xx ``{"detail", "code"}``;
the subclasses only say which stage refused the input.
"""


class ImagingError(Exception):
    """A refusal the user can act on: ``message`` in plain words, ``code`` stable for clients."""

    def __init__(self, message: str, code: str):
        super().__init__(message)
        self.message = message
        self.code = code

    def __str__(self) -> str:
        return self.message


class ArchiveError(ImagingError):
    """The uploaded archive is unsafe or unusable."""


class ImageDecodeError(ImagingError):
    """A file is not a decodable image."""


class DatasetError(ImagingError):
    """The image collection cannot be trained on as it is."""


class PipelineError(ImagingError):
    """A pipeline composition or run failed."""
