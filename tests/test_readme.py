"""The README is the front door: short, the two commands first, its paper index generated from
``PAPER_ITEMS``, and every ``docs/`` page it links to present."""

import re
from pathlib import Path

from tulu_lib.reporting import paper

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
FIX = "regenerate it: .venv/bin/python -m tulu_lib.reporting.paper --write-readme"


def _text() -> str:
    return README.read_text(encoding="utf-8")


def test_readme_is_at_most_150_lines():
    lines = _text().splitlines()
    assert len(lines) <= 150, f"README.md has {len(lines)} lines; move detail into docs/"


def test_the_two_commands_come_first():
    lines = _text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("```"))
    end = next(i for i in range(start + 1, len(lines)) if lines[i].startswith("```"))
    assert start < 10, "the two commands should open the README, right after what it is"
    commands = [line.split("#", 1)[0].strip() for line in lines[start + 1:end]]
    assert commands == ["bash scripts/setup.sh && .venv/bin/tulu-repro run --params params/cpu.yaml",
                        "bash scripts/test.sh"]
    assert (ROOT / "scripts/setup.sh").is_file() and (ROOT / "scripts/test.sh").is_file()
    assert (ROOT / "params/cpu.yaml").is_file()


def test_the_paper_index_is_generated_from_paper_items():
    text = _text()
    start, end = paper.README_MARKERS
    assert text.count(start) == 1 and text.count(end) == 1, f"README.md needs {start} ... {end}; {FIX}"
    block = text.split(start, 1)[1].split(end, 1)[0].strip("\n") + "\n"
    assert block == paper.readme_index(), f"the README's paper index differs from PAPER_ITEMS; {FIX}"
    assert paper.readme_with_index(text) == text
    assert text.index("## Paper index") < text.index(start)


def test_the_index_has_one_row_per_paper_item():
    rows = paper.readme_index().splitlines()[2:]
    assert len(rows) == len(paper.PAPER_ITEMS)
    for row, item in zip(rows, paper.PAPER_ITEMS, strict=True):
        assert row.startswith(f"| {item.ref} | {item.title} | `{item.notebook}` |")
        assert all(f"`{out}`" in row for out in (item.output, *item.also))


def test_every_docs_link_points_to_a_file():
    links = re.findall(r"\]\((docs/[^)#\s]+)(?:#[^)\s]*)?\)", _text())
    assert links, "the README links into docs/"
    missing = sorted({link for link in links if not (ROOT / link).is_file()})
    assert not missing, f"README.md links to missing files: {missing}"
