"""`earmark configs`, `configs show`, `configs copy`: the example experiments shipped with earmark.

The configs live in the package (``earmark/configs/*.toml``, read with
:mod:`importlib.resources`), so an installed wheel has them too; in a source
checkout ``configs/`` at the repository root points at the same files.
"""

from __future__ import annotations

import sys
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

from earmark.cli.common import command
from earmark.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

if TYPE_CHECKING:
    from importlib.resources.abc import Traversable

#: The keys of a config that hold paths, read relative to the config file's folder.
PATH_KEYS = (("data", "root"), ("data", "csv"), ("data", "dataset_root"),
             ("data", "extra_train"), ("data", "silence_noise_dir"), ("data", "cache_dir"),
             ("augment", "noise_dir"))


def register(commands) -> None:
    sub = command(commands, "configs", "List the example experiment configs shipped with "
                  "earmark; show or copy one.",
                  "earmark configs\n  earmark configs show keywords\n"
                  "  earmark configs copy keywords --to experiments", _list)
    actions = sub.add_subparsers(title="actions", metavar="ACTION")
    show = command(actions, "show", "Print a shipped config.",
                   "earmark configs show keywords", _show)
    show.add_argument("name", help="a config's name, as `earmark configs` lists it")
    copy = command(actions, "copy", "Copy a shipped config to edit it (data paths are "
                   "relative to the copy).", "earmark configs copy keywords --to experiments",
                   _copy)
    copy.add_argument("name", help="a config's name, as `earmark configs` lists it")
    copy.add_argument("--to", default=".", metavar="DIR",
                      help="folder to copy it into (default: the current folder)")
    copy.add_argument("--force", action="store_true", help="overwrite an existing file")


def shipped_configs() -> dict[str, Traversable]:
    """The shipped configs by name (file name without ``.toml``), sorted."""
    folder = resources.files("earmark") / "configs"
    found = [entry for entry in folder.iterdir()
             if entry.is_file() and entry.name.endswith(".toml")] if folder.is_dir() else []
    return {entry.name[:-len(".toml")]: entry for entry in sorted(found, key=lambda e: e.name)}


def shipped_config(name: str) -> Traversable:
    """One shipped config by name (``keywords`` or ``keywords.toml``); errors list the names."""
    configs = shipped_configs()
    key = name[:-len(".toml")] if name.endswith(".toml") else name
    if key not in configs:
        raise ConfigError(f"no shipped config {name!r}; available: "
                          f"{', '.join(configs) or '(none)'}")
    return configs[key]


def summary(text: str) -> str:
    """What a config is for: the first sentence of its opening comment block."""
    lines = []
    for line in text.splitlines():
        if not line.startswith("#"):
            break
        lines.append(line.lstrip("#").strip())
        if not lines[-1] or lines[-1].endswith("."):
            break
    return " ".join(part for part in lines if part)


def _list(args) -> int:
    configs = shipped_configs()
    width = max((len(name) for name in configs), default=0) + 2
    for name, entry in configs.items():
        print(f"{name:<{width}}{summary(entry.read_text(encoding='utf-8'))}")
    print("\n`earmark configs show NAME` prints one; `earmark configs copy NAME --to DIR` "
          "copies it to edit.")
    return 0


def _show(args) -> int:
    print(shipped_config(args.name).read_text(encoding="utf-8"), end="")
    return 0


def _copy(args) -> int:
    entry = shipped_config(args.name)
    copies = [(entry, Path(args.to) / entry.name)]
    teacher = _shipped_teacher(entry)
    teacher_target = Path(args.to) / teacher.name if teacher is not None else None
    # the same teacher already there (copied with another config) is no conflict
    if teacher is not None and not _holds(teacher_target, teacher):
        copies.append((teacher, teacher_target))
    for _, target in copies:
        if target.exists() and not args.force:
            raise ConfigError(f"{target} already exists; pass --force to overwrite it")
    for item, target in copies:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(item.read_text(encoding="utf-8"), encoding="utf-8")
        print(f"copied {item.name} to {target}")
    for _, target in copies:
        _print_data_paths(target)
    return 0


def _holds(target: Path, entry: Traversable) -> bool:
    """Whether ``target`` is already a copy of ``entry``."""
    return target.is_file() and target.read_text(encoding="utf-8") == entry.read_text(
        encoding="utf-8")


def _shipped_teacher(entry: Traversable) -> Traversable | None:
    """The shipped teacher file a config distills from (``train.teacher`` naming a file
    beside it), which a copy needs next to it."""
    raw = tomllib.loads(entry.read_text(encoding="utf-8"))
    teacher = raw.get("train", {}).get("teacher", "")
    if not isinstance(teacher, str) or not teacher or Path(teacher).name != teacher:
        return None
    beside = resources.files("earmark") / "configs" / teacher
    return beside if beside.is_file() else None


def _print_data_paths(target: Path) -> None:
    """Where the copy's data paths now point, and which to edit."""
    print(f"note: its data paths are relative to the copy's folder ({target.parent.resolve()});"
          f" edit them in {target} to point at your recordings:")
    raw = tomllib.loads(target.read_text(encoding="utf-8"))
    paths = _wakeword_paths(target, raw) if "wakeword" in raw else _experiment_paths(target)
    for key, path, where in paths:
        state = "" if Path(where).exists() else "   (not found)"
        print(f"  {key} = {path!r} -> {where}{state}")


def _experiment_paths(target: Path) -> list[tuple[str, str, str]]:
    """An experiment config's paths: (key, as written, where it points)."""
    from earmark.config import load_config

    config = load_config(target)
    found: dict[tuple[str, str], str] = {}
    for section, key in PATH_KEYS:
        value = getattr(getattr(config, section), key)
        for path in value if isinstance(value, list) else [value]:
            if path:
                found.setdefault((f"{section}.{key}", path), config.resolve(path))
    return [(key, path, where) for (key, path), where in found.items()]


def _wakeword_paths(target: Path, raw: dict) -> list[tuple[str, str, str]]:
    """An ``earmark wakeword`` settings file's paths (its negatives, noise, teacher)."""
    from earmark.wakeword.settings import PATH_KEYS, absolute_paths

    resolved = absolute_paths(raw, str(target.parent.absolute()))
    found = []
    for section, key in PATH_KEYS:
        written, where = raw.get(section, {}).get(key), resolved.get(section, {}).get(key)
        if written:
            pairs = zip(written, where) if isinstance(written, list) else [(written, where)]
            found.extend((f"{section}.{key}", path, place) for path, place in pairs)
    return found
