"""What every command module shares: the subcommand builder (with --quiet and --verbose),
config loading with --set, the smoothing options of the streaming commands, and the
checks of output names made before any work."""

from __future__ import annotations

import argparse
import contextlib
import os
from pathlib import Path
from typing import Callable, Iterable, Iterator


def command(commands, name: str, summary: str, example: str, handler):
    """A subcommand with its one-line summary, an example, and the verbosity flags."""
    sub = commands.add_parser(name, help=summary, description=summary,
                              epilog=f"example:\n  {example}",
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    sub.set_defaults(handler=handler)
    add_verbosity_options(sub)
    return sub


def add_verbosity_options(parser) -> None:
    """``-q/--quiet`` (warnings only, no progress bars) and ``-v/--verbose`` (debug messages)."""
    group = parser.add_argument_group("output")
    group.add_argument("-q", "--quiet", action="store_true",
                       help="only warnings and errors, no progress bars")
    group.add_argument("-v", "--verbose", action="store_true", help="also debug messages")


def progress_bars(args) -> Callable | None:
    """The library's progress as tqdm bars on stderr, or None with ``--quiet``."""
    return None if args.quiet else tqdm_progress


@contextlib.contextmanager
def tqdm_progress(total: int, description: str, unit: str) -> Iterator[Callable[[int], None]]:
    """A :class:`earmark.progress.Progress` drawn by tqdm (cleared when done)."""
    from tqdm import tqdm

    with tqdm(total=total, desc=description, unit=unit, leave=False) as bar:
        yield bar.update


def add_config_options(sub) -> None:
    sub.add_argument("config", help="experiment TOML file (see configs/)")
    sub.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                     help="override a config value, e.g. --set train.epochs=5 (repeatable)")
    sub.add_argument("--skip-bad-files", action="store_true",
                     help="leave unreadable recordings out (and list them) instead of stopping")


def load_config_from_args(args):
    from earmark.config import from_dict, load_config, to_dict

    config = load_config(args.config)
    if args.overrides or args.skip_bad_files:
        raw = to_dict(config)
        for override in args.overrides:
            _apply_override(raw, override)
        if args.skip_bad_files:
            raw["data"]["skip_bad_files"] = True
        config = from_dict(raw, base_dir=config.base_dir, source=args.config)
    return config


def overrides_by_section(overrides: list[str]) -> dict[str, dict]:
    """``--set SECTION.KEY=VALUE`` options as ``{section: {key: value}}`` (values read as
    TOML, else kept as text)."""
    raw: dict[str, dict] = {}
    for override in overrides:
        _apply_override(raw, override)
    return raw


def _apply_override(raw: dict, override: str) -> None:
    import tomllib

    from earmark.errors import ConfigError

    key, sep, text = override.partition("=")
    section, dot, name = key.strip().partition(".")
    if not sep or not dot:
        raise ConfigError(f"--set {override!r}: write it as SECTION.KEY=VALUE, "
                          "e.g. train.epochs=5")
    try:
        value = tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        value = text
    raw.setdefault(section, {})[name] = value


#: The smoothing options and the :class:`~earmark.runtime.smoother.SmootherConfig` fields
#: they set (``--stride-ms`` is the engine's).
SMOOTHER_OPTIONS = {"average_window_ms": "--window-ms", "detection_threshold": "--threshold",
                    "suppression_ms": "--suppression-ms", "minimum_count": "--min-count"}


#: The stride a stream runs the model at where neither an option nor the bundle says.
DEFAULT_STRIDE_MS = 20.0


def add_smoother_options(sub) -> None:
    from earmark.runtime.smoother import SmootherConfig

    defaults = SmootherConfig()
    group = sub.add_argument_group(
        "smoothing (see earmark.runtime.smoother); unset, each takes the bundle's calibrated "
        "value (earmark wakeword stores them), else its default")
    group.add_argument("--stride-ms", type=float,
                       help=f"run the model every this many ms (default {DEFAULT_STRIDE_MS:g})")
    group.add_argument("--window-ms", type=float,
                       help=f"average scores over this window (default "
                            f"{defaults.average_window_ms:g})")
    group.add_argument("--threshold", type=float,
                       help=f"report a command above this averaged score, 0 to 1 (default "
                            f"{defaults.detection_threshold:g})")
    group.add_argument("--suppression-ms", type=float,
                       help=f"wait this long before repeating a command (default "
                            f"{defaults.suppression_ms:g})")
    group.add_argument("--min-count", type=int,
                       help=f"results needed in the window (default {defaults.minimum_count})")


def smoother_config(args, detection: dict | None = None):
    """The smoothing options as a ``SmootherConfig``, each checked under its option's name
    (``--stride-ms`` too), so a command with a bad one stops before it starts.

    An option left unset takes the bundle's calibrated value from ``detection``
    (``BundleMetadata.detection``), else the default.
    """
    from earmark.input_limits import check_stride_ms
    from earmark.runtime.smoother import (SmootherConfig, check_smoother_settings,
                                          stored_settings)

    check_stride_ms(stream_stride_ms(args, detection), "--stride-ms")
    given = {field: getattr(args, option[2:].replace("-", "_"))
             for field, option in SMOOTHER_OPTIONS.items()}
    given = {field: value for field, value in given.items() if value is not None}
    check_smoother_settings(given, SMOOTHER_OPTIONS)
    return SmootherConfig(**{**stored_settings(detection), **given})


def stream_stride_ms(args, detection: dict | None = None) -> float:
    """``--stride-ms``, else the bundle's calibrated stride, else the default."""
    if args.stride_ms is not None:
        return args.stride_ms
    return float((detection or {}).get("stride_ms", DEFAULT_STRIDE_MS))


def check_output_suffix(path: str | None, option: str, suffixes: tuple[str, ...]) -> None:
    """Refuse an output name whose suffix the option cannot write, before any work."""
    from earmark.errors import ConfigError

    if path and Path(path).suffix.lower() not in suffixes:
        raise ConfigError(f"{option} {path}: the name must end in {' or '.join(suffixes)}")


def refuse_overwriting_inputs(path: str | None, option: str, inputs: Iterable[str]) -> None:
    """Refuse an output that is one of the command's own input files, before any work:
    writing it would replace the recording it is made from."""
    from earmark.errors import ConfigError

    if not path or not Path(path).is_file():
        return
    for item in inputs:
        if Path(item).is_file() and os.path.samefile(path, item):
            raise ConfigError(f"{option} {path} is the input {item}: writing it would replace "
                              "that file; choose another output name")
