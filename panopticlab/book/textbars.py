"""Text progress bars inside a kernel run by the book's tools.

``tqdm.auto`` draws a Jupyter widget in a kernel; a widget saved without its state shows
"Error displaying widget: model not found" when the notebook is reopened or rendered to
HTML. The kernels that :mod:`panopticlab.book.runner` starts call
:func:`use_text_progress_bars` first, so every bar is plain text in the saved notebook.
"""
from __future__ import annotations


def use_text_progress_bars() -> None:
    """Make ``tqdm.auto.tqdm`` (and ``tqdm.autonotebook.tqdm``) the text bar, for modules imported after."""
    import tqdm.auto
    import tqdm.autonotebook
    import tqdm.std

    tqdm.auto.tqdm = tqdm.std.tqdm
    tqdm.autonotebook.tqdm = tqdm.std.tqdm
    tqdm.auto.trange = tqdm.std.trange
    tqdm.autonotebook.trange = tqdm.std.trange


#: The kernel option that runs :func:`use_text_progress_bars` before the first cell.
KERNEL_ARGUMENT = ("--IPKernelApp.exec_lines=import panopticlab.book.textbars as _bars; "
                   "_bars.use_text_progress_bars(); del _bars")
