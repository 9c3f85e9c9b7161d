"""The documentation pages: the generated ones are not stale, and the site renders them all."""

from __future__ import annotations

from pathlib import Path

from reasonbench_benchmarks import record_doc


def test_the_record_page_is_the_schemas() -> None:
    committed = record_doc.PAGE.read_text(encoding="utf-8")
    assert committed == record_doc.page(), (
        "docs/record.md is stale: python -m reasonbench_benchmarks.record_doc --write docs/record.md")


def test_the_record_page_lists_described_fields_with_their_types() -> None:
    node = {"properties": {
        "a": {"type": ["number", "null"], "description": "an  a\n  on two lines"},
        "b": {"type": "object", "properties": {"c": {"enum": ["x", "y"], "description": "a c"},
                                               "d": {"type": "integer"}}},
        "e": {"oneOf": [{"type": "null"}, {"type": "object", "properties": {
            "f": {"$ref": "#/$defs/interval", "description": "an f"}}}]}}}
    assert list(record_doc.fields(node)) == [("a", "number or null", "an a on two lines"),
                                             ("b.c", '`"x"` or `"y"`', "a c"), ("e.f", "interval", "an f")]


def test_the_site_holds_the_documentation_pages(tmp_path):
    """docs/*.md rendered into the site: links between pages point at their pages, a relative
    link to a repository file keeps its text only, raw HTML stays text, every page links them."""
    from reasonbench import leaderboard

    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "running.md").write_text("# Running it\n\nSee [the record](record.md#fields), "
                                     "[CONTRIBUTING](../CONTRIBUTING.md) and [the paper](https://arxiv.org/abs/1).\n\n"
                                     "<script>alert(1)</script>\n\n| a | b |\n|---|---|\n| 1 | 2 |\n")
    (docs / "record.md").write_text("# The record\n\ntext\n")
    fixture = Path(__file__).parent / "data" / "leaderboard"
    leaderboard.build(fixture, tmp_path / "site", docs=docs)
    site = tmp_path / "site"
    running = (site / "doc-running.html").read_text()
    assert '<a href="doc-record.html#fields">the record</a>' in running
    assert "CONTRIBUTING" in running and "../CONTRIBUTING.md" not in running
    assert '<a href="https://arxiv.org/abs/1">the paper</a>' in running
    assert "<script>alert(1)</script>" not in running and "&lt;script&gt;alert(1)&lt;/script&gt;" in running
    assert "<table>" in running and "<title>reasonbench: Running it</title>" in running
    listing = (site / "docs.html").read_text()
    assert 'href="doc-record.html">The record</a>' in listing and 'href="doc-running.html">Running it</a>' in listing
    assert 'href="docs.html">documentation</a>' in (site / "index.html").read_text()


def test_a_documentation_page_that_is_not_text_stops_the_build_in_one_line(tmp_path):
    from .conftest import call_cli

    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "bad.md").write_bytes(b"# t\n\xff\xfe not utf-8\n")
    fixture = Path(__file__).parent / "data" / "leaderboard"
    result = call_cli("leaderboard", "--results", str(fixture), "--out", str(tmp_path / "site"), "--docs", str(docs))
    assert result.returncode == 2 and "bad.md: cannot read: not UTF-8 text" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and not (tmp_path / "site").exists()
