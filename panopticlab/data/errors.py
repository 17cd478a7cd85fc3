"""The exception type for malformed panoptic data, and the warning type for suspicious data."""


class PanopticFormatError(ValueError):
    """Raised for malformed panoptic data; the message names the file, segment or category."""


class PanopticWarning(UserWarning):
    """Data that is well-formed but probably not what was meant (predictions without a single segment).

    The command line prints it as one line, ``warning: ...``; the message names the file.
    """
