"""``reasonbench leaderboard``: result records to a static site (index.html, leaderboard.md,
leaderboard.json), optionally also into a README's marked section."""

from __future__ import annotations

import sys
from pathlib import Path

from reasonbench.config.commandline import command_parser, parse

SUMMARY = "Result records to a static site: index.html, leaderboard.md, leaderboard.json"


def command(argv: list[str]) -> int:
    """Build the site from ``--results`` into ``--out``; a README named by ``--readme`` is checked
    for its markers before the build and rewritten (atomically) after it."""
    from reasonbench import leaderboard
    from reasonbench.util.atomic import atomic_writer
    from reasonbench.util.errors import UserError
    from reasonbench.util.untrusted import printable

    parser = command_parser("reasonbench leaderboard", SUMMARY + ".")
    parser.add_argument("--results", type=str, default="results", help="folder of result records")
    parser.add_argument("--out", type=str, default="site", help="folder to write the leaderboard to")
    parser.add_argument("--reported", type=str, default=str(leaderboard.DEFAULT_REPORTED),
                        help="the papers' published figures (YAML); 'none' for none")
    parser.add_argument("--readme", type=str, default=None,
                        help="also put leaderboard.md into this Markdown file, between its lines "
                             f"'{leaderboard.pages.README_BEGIN} ...' and '{leaderboard.pages.README_END}'")
    parser.add_argument("--ci-rerun", action="append", default=[], metavar="RECORD",
                        help="a record (path under --results) that this project's CI re-runs and checks; its "
                             "track says so (only the project's own board, where it is true; repeatable)")
    parser.add_argument("--docs", type=str, default=None,
                        help="a folder of Markdown pages (docs/) rendered into the site beside the board")
    args = parse(parser, argv)
    results = Path(args.results)
    if not results.is_dir():
        raise UserError(f"--results {printable(results)}: {'not a folder' if results.exists() else 'no such folder'}")
    reported = None if args.reported == "none" else Path(args.reported)
    readme_text = None
    if args.readme:  # checked before the build: a README without its markers changes nothing
        try:
            readme_text = Path(args.readme).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise UserError(f"--readme {args.readme}: cannot read: "
                            f"{getattr(exc, 'strerror', None) or 'not UTF-8 text'}") from None
        leaderboard.pages.embed_in_readme(readme_text, "", args.readme)
    try:
        site = leaderboard.build(results, Path(args.out), reported, args.ci_rerun,
                                 Path(args.docs) if args.docs else None)
    except OSError as exc:  # an --out that cannot be made or written (a folder without write permission, a full disk)
        raise _write_fault("--out", args.out, exc) from None
    if readme_text is not None:
        section = leaderboard.pages.readme_section(site.markdown)
        try:
            with atomic_writer(args.readme) as handle:
                handle.write(leaderboard.pages.embed_in_readme(readme_text, section, args.readme).encode())
        except OSError as exc:
            raise _write_fault("--readme", args.readme, exc) from None
    for problem in [s.line() for s in site.skipped] + site.warnings:
        print(f"reasonbench leaderboard: {problem}", file=sys.stderr)
    skipped = f", {len(site.skipped)} invalid skipped" if site.skipped else ""
    print(f"{len(site.rows)} leaderboard rows from {site.records} records{skipped}, {len(site.reported)} reported "
          f"figures -> {printable(Path(args.out) / 'index.html')}, leaderboard.md, leaderboard.json")
    return 0


def _write_fault(option: str, path: str, exc: OSError) -> Exception:
    """One line for a place that cannot be written: the machine's fault (a full disk: exit 1) or
    the user's (no permission, a file where a folder should be: exit 2)."""
    from reasonbench.util.atomic import MACHINE_ERRNOS
    from reasonbench.util.errors import MachineError, UserError, cannot_write
    from reasonbench.util.untrusted import printable

    message = printable(cannot_write(option, path, exc, folder=option == "--out"), 500)
    return (MachineError if exc.errno in MACHINE_ERRNOS else UserError)(message)
