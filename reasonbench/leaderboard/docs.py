"""The documentation pages (a folder of Markdown files, ``docs/``) rendered into the site beside
the leaderboard, so that one offline site holds both: ``doc-<name>.html`` per page and
``docs.html`` listing them, each in the site's page frame.

Markdown is rendered by markdown-it-py as CommonMark with tables, raw HTML off (a page's text
never becomes markup). A link to another page of the folder points at its rendered page; a
relative link to anything else (a file of the repository) keeps its text and loses its link, as
the site holds no such file; links to other sites stay."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from reasonbench.util.errors import UserError
from reasonbench.util.untrusted import printable
from reasonbench.leaderboard import pages

MAX_BYTES = 1 << 20  # a documentation page, not a data file


def page_name(stem: str) -> str:
    return f"doc-{stem}.html"


def _title(text: str, fallback: str) -> str:
    heading = next((line[2:].strip() for line in text.splitlines() if line.startswith("# ")), "")
    return heading or fallback


def _renderer() -> Any:
    from markdown_it import MarkdownIt

    return MarkdownIt("commonmark", {"html": False}).enable("table")


def _retarget(tokens: list[Any], stems: set[str]) -> None:
    """Links between the pages point at their rendered pages; other relative links are dropped
    (their text kept). Table alignment becomes a class (inline styles are not allowed)."""
    for token in tokens:
        style = token.attrGet("style") if token.attrs else None
        if style:  # a table column's alignment: the pages' policy admits no inline style, a class does
            del token.attrs["style"]
            if "right" in str(style):
                token.attrSet("class", "num")
        children = token.children or []
        for i, child in enumerate(children):
            if child.type != "link_open":
                continue
            href = str(child.attrGet("href") or "")
            if re.match(r"^[a-z][a-z0-9+.-]*:", href, re.I) or href.startswith("#"):
                continue  # another site, or a place on this page
            target, _, anchor = href.partition("#")
            stem = target[:-3] if target.endswith(".md") and "/" not in target else None
            if stem in stems:
                child.attrSet("href", page_name(stem) + (f"#{anchor}" if anchor else ""))
                continue
            depth = 0  # drop this link's open and its matching close
            for j in range(i, len(children)):
                if children[j].type == "link_open":
                    depth += 1
                elif children[j].type == "link_close":
                    depth -= 1
                    if depth == 0:
                        children[j].type, children[j].tag, children[j].nesting = "text", "", 0
                        children[j].content = ""
                        break
            child.type, child.tag, child.nesting, child.attrs, child.content = "text", "", 0, {}, ""


def write_docs(folder: Path, out: Path, tasks: list[str]) -> list[str]:
    """Render every ``*.md`` of ``folder`` into ``out``; returns the page names written. A page
    that is not a readable UTF-8 file under 1 MiB stops the build with one line naming it."""
    sources = sorted(p for p in folder.glob("*.md") if p.is_file())
    if not sources:
        raise UserError(f"--docs {printable(folder)}: no Markdown pages (*.md)")
    texts = {}
    for path in sources:
        try:
            if path.stat().st_size > MAX_BYTES:
                raise UserError(f"{printable(path)}: larger than {MAX_BYTES >> 20} MiB, not a documentation page")
            texts[path.stem] = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise UserError(f"{printable(path)}: cannot read: {getattr(exc, 'strerror', None) or 'not UTF-8 text'}") \
                from None
    md, stems, written = _renderer(), set(texts), []
    listing = []
    for stem, text in texts.items():
        tokens = md.parse(text)
        _retarget(tokens, stems)
        body = f'<article class="doc">{md.renderer.render(tokens, md.options, {})}</article>'
        title = _title(text, stem)
        (out / page_name(stem)).write_text(pages.page(f"reasonbench: {title}", body, tasks, True))
        listing.append(f'<li><a href="{pages.esc(page_name(stem))}">{pages.esc(title)}</a></li>')
        written.append(page_name(stem))
    index = "<h2>Documentation</h2><ul>" + "".join(listing) + "</ul>"
    (out / "docs.html").write_text(pages.page("reasonbench: documentation", index, tasks, True))
    return ["docs.html", *written]
