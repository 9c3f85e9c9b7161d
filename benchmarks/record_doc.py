"""docs/record.md: the result record's fields, written from the descriptions in
``reasonbench/record/record_schema.json`` (one source: the schema that validates every record).

    python -m reasonbench_benchmarks.record_doc [--write docs/record.md]

Prints the page, or writes it; tests/test_docs.py fails when the committed page is stale."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any, Iterator

from reasonbench.util.atomic import atomic_writer
from reasonbench.record.schema import schema

PAGE = Path(__file__).resolve().parent.parent / "docs" / "record.md"

HEADER = """# The result record

Every run writes one JSON record (`results/<model>/<task>/<preset>/seed<N>.json`; `reasonbench
eval` writes `seed<N>.eval.json` beside it). The record is validated against
`reasonbench/record/record_schema.json` when written and when read; the leaderboard reads nothing else.
This page is generated from that schema's descriptions (`python -m
reasonbench_benchmarks.record_doc --write docs/record.md`); a test fails when it is stale.

Model-reported figures (`reported_stats`, e.g. the Attractor's `solver_iterations`) appear as
further `metrics.<name>` fields, averaged over the test examples.

| field | type | meaning |
|---|---|---|
"""


def _type(node: dict[str, Any]) -> str:
    """The JSON type(s) of a schema node, as a reader says them."""
    if "const" in node:
        return f"`{json.dumps(node['const'])}`"
    if "enum" in node:
        return " or ".join(f"`{json.dumps(v)}`" for v in node["enum"])
    if "$ref" in node:
        return node["$ref"].rsplit("/", 1)[-1]
    if "oneOf" in node:
        return " or ".join(_type(alternative) for alternative in node["oneOf"])
    kind = node.get("type", "")
    return " or ".join(kind) if isinstance(kind, list) else kind


def _object_of(node: dict[str, Any]) -> dict[str, Any] | None:
    """The object form of a node (itself, or its object alternative in a ``oneOf``)."""
    if "properties" in node:
        return node
    return next((alt for alt in node.get("oneOf", []) if "properties" in alt), None)


def fields(node: dict[str, Any], prefix: str = "") -> Iterator[tuple[str, str, str]]:
    """(dotted name, type, description) of every described field, depth first in the file's order;
    an undescribed object's described fields still appear."""
    shape = _object_of(node)
    for name, child in (shape or {}).get("properties", {}).items():
        path = f"{prefix}{name}"
        if "description" in child:
            yield path, _type(child), " ".join(child["description"].split())
        yield from fields(child, path + ".")


def page() -> str:
    rows = [f"| `{name}` | {kind} | {text.replace('|', '&#124;')} |" for name, kind, text in fields(schema())]
    return HEADER + "\n".join(rows) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m reasonbench_benchmarks.record_doc", description=__doc__)
    parser.add_argument("--write", metavar="FILE", help="write the page to FILE instead of printing it")
    args = parser.parse_args(argv)
    text = page()
    if args.write:
        with atomic_writer(args.write) as handle:
            handle.write(text.encode())
    else:
        print(text, end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
