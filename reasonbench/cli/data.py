"""``reasonbench data ACTION --task T``: a task's data, inspected, built, exported or shown."""

from __future__ import annotations

from reasonbench.config.commandline import command_parser, parse

SUMMARY = "Inspect, build (cached), export (reference CSV) and show a task's data"


def command(argv: list[str]) -> int:
    """Parse the action and its options (those of ``reasonbench.tools.dataops.ACTIONS``; help
    and errors from the parser), then hand over to the action."""
    from reasonbench.tools import dataops

    parser = command_parser("reasonbench data", SUMMARY + ". `reasonbench data ACTION --task T --help` "
                            "lists every option of that task.")
    actions = parser.add_subcommands(dest="action", title="actions")
    for name, (text, extra) in dataops.ACTIONS.items():
        action = command_parser(f"reasonbench data {name}", text)
        action.add_argument("--task", type=str, required=True, help="registered task name")
        action.add_argument("--preset", type=str, help="preset name ($REASONBENCH_PRESET or mini when not given)")
        for option, (kind, default, help_text) in extra.items():
            action.add_argument(f"--{option}", type=kind, default=default, help=help_text)
        actions.add_subcommand(name, action, help=text)
    asks_help = any(a in ("-h", "--help") for a in argv)
    names_task = any(a == "--task" or a.startswith(("--task=", "--config")) for a in argv)
    if not argv or argv[0] not in dataops.ACTIONS or (asks_help and not names_task):
        parse(parser, argv if asks_help or not argv else argv[:1])  # help, or the error naming the actions
    getattr(dataops, argv[0])(argv[1:])
    return 0
