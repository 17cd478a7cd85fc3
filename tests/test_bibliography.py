"""The shared bibliography: complete entries, links, and chapter citations that exist."""
import re

import pytest

from panopticlab import bibliography
from panopticlab.book.chapters import BOOK_DIR, chapter_paths


def test_every_entry_is_complete():
    for key, ref in bibliography.REFERENCES.items():
        assert ref.authors and ref.title and ref.venue and 1900 < ref.year < 2100, key
        assert ref.url.startswith("https://"), key


def test_markdown_lists_the_keys_in_order_and_rejects_unknown_ones():
    text = bibliography.markdown(["zhao2017pspnet", "kirillov2019panoptic"])
    lines = text.splitlines()
    assert len(lines) == 2 and "[zhao2017pspnet]" in lines[0] and "<https://arxiv.org/abs/1801.00868>" in lines[1]
    with pytest.raises(KeyError, match="no reference 'nope'"):
        bibliography.markdown(["nope"])


def test_chapters_cite_only_known_references():
    cited = set()
    for path in chapter_paths(BOOK_DIR):
        for call in re.findall(r"bibliography\.markdown\(\[(.*?)\]\)", path.read_text(encoding="utf-8"), re.DOTALL):
            cited |= set(re.findall(r"\"([a-z0-9_]+)\"", call))
    assert cited, "the chapters cite from the bibliography"
    assert cited <= set(bibliography.REFERENCES)
