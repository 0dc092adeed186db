"""The ``earmark`` command: one module per area, each builder next to its handler.

Handlers are thin calls into the library. Library code reports through
``logging`` (set up here: messages to stderr, ``--quiet`` keeps warnings
only, ``--verbose`` adds debug messages) and progress callbacks; the tqdm
bars are drawn by the CLI.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

from earmark import __version__
from earmark.cli import (anomaly, calibrate, configs, datasets, deploy, demo, events, monitor,
                         pictures, streaming, synth, training, wakeword)
from earmark.errors import EarmarkError

#: The command modules, in the order ``earmark --help`` lists them.
AREAS = (training, deploy, streaming, synth, demo, wakeword, calibrate, events, monitor,
         pictures, anomaly, datasets, configs)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help()
        return 2
    configure_logging(quiet=args.quiet, verbose=args.verbose)
    try:
        return args.handler(args) or 0
    except EarmarkError as error:
        print(f"earmark: error: {error}", file=sys.stderr)
        return 2
    except BrokenPipeError:     # `earmark ... | head`: the reader left, so stop quietly
        _silence_stdout()
        return 141
    except OSError as error:
        if args.verbose or error.filename is None:
            raise               # a fault of earmark's, or --verbose: the whole traceback
        print(f"earmark: error: {error.filename}: {error.strerror or error} (check the path "
              "and its permissions)", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("earmark: interrupted", file=sys.stderr)
        return 130


def _silence_stdout() -> None:
    """Point stdout at the null device, so that flushing it on exit does not raise again."""
    try:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except (AttributeError, OSError, ValueError):     # stdout is no real file
        pass


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="earmark", description="Train, evaluate and deploy audio classifiers.",
        epilog="Run `earmark COMMAND --help` for a command's options and an example.")
    parser.add_argument("--version", action="version", version=f"earmark {__version__}")
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")
    for area in AREAS:
        area.register(commands)
    return parser


def configure_logging(quiet: bool = False, verbose: bool = False) -> None:
    """earmark's messages to stderr, as plain lines; other libraries' at warnings only."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger = logging.getLogger("earmark")
    logger.handlers[:] = [handler]
    logger.propagate = False
    logger.setLevel(logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO)
