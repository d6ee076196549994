"""The README stays a page a newcomer reads to the end, and the pages it sends readers to exist:
every relative link in README.md and docs/*.md names a file of the repository."""

import re
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[4]
LINK = re.compile(r"\]\(([^)#\s]+)")


def test_readme_is_short_and_every_relative_link_resolves() -> None:
    readme = REPOSITORY / "README.md"
    assert len(readme.read_text().splitlines()) < 150
    pages = [readme, *sorted((REPOSITORY / "docs").glob("*.md"))]
    assert len(pages) >= 6
    broken = [
        f"{page.relative_to(REPOSITORY)}: {target}"
        for page in pages
        for target in LINK.findall(page.read_text())
        if "://" not in target and not (page.parent / target).exists()
    ]
    assert not broken
