"""The ``sluice`` command line.

Each command group lives beside the code it drives and exposes ``register(subparsers)``; this module
only collects them and turns user errors into one line on stderr and exit code 2.

``COMMAND_MODULES`` names them as strings, loaded with ``importlib``: the one reference from the core
to the stage packages, a registry by name (tests/test_architecture.py checks it holds only names).
``register`` uses argparse alone; a command imports its heavy libraries in its handler, so that
``sluice --help`` stays fast (tests/sluice/test_cli.py).
"""

from __future__ import annotations

import argparse
import importlib
import os

from sluice.stage import configure_logging, exit_process, guarded

# Modules that add sub-commands, in the order they appear in --help.
COMMAND_MODULES = [
    "sluice.commands",
    "ingest.commands",
    "ingest.votes.commands",
    "ingest.crawl.commands",
    "transform.dedup_commands",
    "transform.labels",
    "train.commands",
    "quality.commands",
    "sluice.dataset_commands",
    "sluice.privacy_commands",
    "train.predict_commands",
    "train.report_commands",
    "demo.commands",
    "sluice.init",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sluice",
        description="Sluice: an open data lakehouse for training image models.",
        epilog="Settings come from params.yaml (or $SLUICE_PARAMS); see README.md. Logs go to stderr, "
               "a command's output to stdout; --quiet / --verbose reach the stages and workers a command "
               "starts through $SLUICE_LOG (quiet | normal | verbose).",
    )
    loudness = parser.add_mutually_exclusive_group()
    loudness.add_argument("-q", "--quiet", dest="log", action="store_const", const="quiet",
                          help="log only warnings and errors")
    loudness.add_argument("-v", "--verbose", dest="log", action="store_const", const="verbose",
                          help="log debug detail too")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in COMMAND_MODULES:
        importlib.import_module(module).register(sub)
    return parser


# the commands that read no lake table (a command that applies a role has a --role option: docs/access.md)
WITHOUT_LAKE = frozenset({"init", "demo", "pipeline", "predict", "compare", "train"})


def refuse_role_blind(args: argparse.Namespace) -> None:
    """Fail closed: with a role set, a command that reads the lake without applying it (``labels workers`` would
    show what the role masks, ``tables`` what it hides) is refused, one line, rather than run with full access."""
    from sluice.access import ROLE_ENV
    from sluice.errors import InputError

    role, command = os.environ.get(ROLE_ENV), args.command
    if role and "role" not in vars(args) and command not in WITHOUT_LAKE:
        raise InputError(f"${ROLE_ENV} is '{role}', and `sluice {command}` reads the lake without applying roles: "
                         f"query as the role with `sluice sql` / `sluice shell`, or run it with full access "
                         f"(unset {ROLE_ENV})")


def main(argv: list[str] | None = None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.log:
        os.environ["SLUICE_LOG"] = args.log  # inherited by DVC stages and torchrun workers

    def run() -> int | None:
        configure_logging()  # a bad $SLUICE_LOG is a user error: one line, exit 2
        refuse_role_blind(args)
        return args.func(args)

    exit_process(guarded(run))


if __name__ == "__main__":
    main()
