"""Every relative link in README.md and docs/*.md resolves: the file exists and, where the link names an anchor,
the target page has a heading with that GitHub anchor (lower case, punctuation dropped, spaces as '-')."""
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
FENCE = re.compile(r"^```.*?^```", re.S | re.M)


def anchors(page: Path) -> set[str]:
    """GitHub's anchors of a page's headings (repeats get -1, -2, ...)."""
    seen, out = {}, set()
    for line in FENCE.sub("", page.read_text()).splitlines():
        m = re.match(r"#{1,6}\s+(.*)", line)
        if not m:
            continue
        text = re.sub(r"[`*_]|\[([^\]]*)\]\([^)]*\)", r"\1", m.group(1).strip()).lower()
        slug = re.sub(r"[^\w\- ]", "", text).replace(" ", "-")
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        out.add(slug if n == 0 else f"{slug}-{n}")
    return out


def links(page: Path) -> list[str]:
    return [t for t in LINK.findall(FENCE.sub("", page.read_text())) if not re.match(r"[a-z]+:", t)]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_relative_link_resolves(page):
    assert links(page) or page.name != "README.md"
    for target in links(page):
        path, _, anchor = target.partition("#")
        file = (page.parent / path).resolve() if path else page
        assert file.exists(), f"{page.relative_to(REPO)}: link {target!r}: {file} does not exist"
        if anchor and file.suffix == ".md":
            assert anchor in anchors(file), (f"{page.relative_to(REPO)}: link {target!r}: no heading with anchor "
                                             f"#{anchor} in {file.relative_to(REPO)}")


def test_the_anchor_rule_matches_githubs():
    page = REPO / "docs" / "training.md"
    assert "datasets" in anchors(page)
    assert re.sub(r"[^\w\- ]", "", "does the identity-leakage regularizer work?").replace(" ", "-") == \
        "does-the-identity-leakage-regularizer-work"
