"""The documentation pages that are generated: stale ones fail here."""

from __future__ import annotations

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
