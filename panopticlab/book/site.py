"""The executed book as one HTML site: an index with the table of contents, each chapter
with its figures (embedded), prev/next links on every page, an optional answer key."""
from __future__ import annotations

import html
import re
from dataclasses import dataclass

STYLE = ("<style>nav.book{font-family:sans-serif;display:flex;justify-content:space-between;gap:1em;"
         "padding:.6em 1em;background:#f3f3f3;border-bottom:1px solid #ccc}nav.book a{text-decoration:none}"
         "body.index{font-family:sans-serif;max-width:50em;margin:2em auto}</style>")


@dataclass
class Page:
    """One chapter of the site: its file stem, title and run time (None: not run)."""

    stem: str
    title: str
    seconds: float | None = None


def notebook_html(notebook) -> str:
    """The notebook as a standalone HTML page (figures embedded), by nbconvert."""
    from nbconvert import HTMLExporter

    body, _ = HTMLExporter().from_notebook_node(notebook)
    return body


def _nav(pages: list[Page], position: int | None, extra: list[tuple[str, str]]) -> str:
    def link(index, label):
        if index is None or not 0 <= index < len(pages):
            return "<span></span>"
        return f'<a href="{pages[index].stem}.html">{label} {html.escape(pages[index].title)}</a>'

    middle = " | ".join(['<a href="index.html">contents</a>',
                         *(f'<a href="{href}">{html.escape(label)}</a>' for href, label in extra)])
    if position is None:
        return f'<nav class="book"><span></span><span>{middle}</span><span></span></nav>'
    return (f'<nav class="book">{link(position - 1, "&larr;")}<span>{middle}</span>'
            f'{link(position + 1, "").replace("</a>", " &rarr;</a>")}</nav>')


def with_navigation(page_html: str, pages: list[Page], position: int | None,
                    extra: list[tuple[str, str]] = ()) -> str:
    """``page_html`` with the book's navigation bar after ``<body>`` and before ``</body>``."""
    nav = _nav(pages, position, list(extra))
    page_html = page_html.replace("</head>", STYLE + "</head>", 1)
    page_html = re.sub(r"(<body[^>]*>)", lambda m: m.group(1) + nav, page_html, count=1)
    index = page_html.rfind("</body>")
    return page_html[:index] + nav + page_html[index:] if index >= 0 else page_html + nav


def index_html(pages: list[Page], extra: list[tuple[str, str]] = (), profile: str | None = None) -> str:
    """The table of contents: each chapter's title (linked) and its run time."""
    items = "\n".join(
        f'<li><a href="{p.stem}.html">{html.escape(p.title or p.stem)}</a>'
        + (f" <small>({p.seconds:.0f} s{' in the ' + html.escape(profile) + ' profile' if profile else ''})</small>"
           if p.seconds is not None else "") + "</li>" for p in pages)
    links = "".join(f'<p><a href="{href}">{html.escape(label)}</a></p>' for href, label in extra)
    return ("<!doctype html><html><head><meta charset='utf-8'><title>panopticlab</title>" + STYLE + "</head>"
            "<body class='index'><h1>panopticlab: a runnable textbook on panoptic segmentation</h1>"
            f"<h2>Contents</h2><ol>{items}</ol>{links}</body></html>\n")


def simple_page(title: str, body: str) -> str:
    """A page of the site that is not a notebook (the answer key)."""
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title></head>"
            f"<body class='index'>{body}</body></html>\n")
