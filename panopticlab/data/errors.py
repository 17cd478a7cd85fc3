"""The one exception type for malformed panoptic data."""


class PanopticFormatError(ValueError):
    """Raised for malformed panoptic data; the message names the file, segment or category."""
