"""`earmark datasets list|download|manifest`: public datasets, fetched, verified, listed."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from earmark.cli.common import check_output_suffix, command, progress_bars

#: Where datasets go without ``--root``: ``EARMARK_DATA``, else ``./datasets``.


def register(commands) -> None:
    parser = commands.add_parser(
        "datasets", help="List, download and index public datasets.",
        description="List, download and index public datasets.",
        epilog="example:\n  earmark datasets list\n"
               "  earmark datasets download fsdd --root ~/datasets",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.set_defaults(handler=lambda args: _print_help(parser), quiet=False, verbose=False)
    subcommands = parser.add_subparsers(title="subcommands", metavar="SUBCOMMAND")
    _add_list(subcommands)
    _add_download(subcommands)
    _add_manifest(subcommands)


def _print_help(parser) -> int:
    parser.print_help()
    return 2


def _add_list(subcommands) -> None:
    command(subcommands, "list", "List the datasets earmark can download.",
            "earmark datasets list", _list)


def _list(args) -> int:
    from earmark.data.recipes import RECIPES

    rows = [(r.name, r.size_text, r.licence, r.purpose) for r in RECIPES.values()]
    header = ("name", "size", "licence", "purpose")
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(3)]
    for row in [header, *rows]:
        print("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths)) +
              "  " + str(row[3]))
    return 0


def _add_download(subcommands) -> None:
    sub = command(subcommands, "download",
                  "Download a dataset, verify it, unpack it and write its manifest.",
                  "earmark datasets download fsdd --root ~/datasets", _download)
    sub.add_argument("name", help="a dataset from `earmark datasets list`")
    sub.add_argument("--root", default=None,
                     help="download root (default: $EARMARK_DATA, else ./datasets); "
                          "the dataset goes to ROOT/FOLDER")
    sub.add_argument("--mirror", default=None,
                     help="replace the scheme and host of every URL, e.g. http://cache:8080 "
                          "(default: $EARMARK_DATASET_MIRROR)")


def _download(args) -> int:
    from earmark.data.recipes import default_root, get_recipe
    from earmark.data.recipes.download import fetch, mirrored_url
    from earmark.data.recipes.extract import extract, is_archive

    recipe = get_recipe(args.name)
    if not recipe.files:
        from earmark.errors import DataError

        raise DataError(f"{recipe.name} is a layout already on disk, with nothing to download; "
                        f"write its manifest with `earmark datasets manifest {recipe.name} "
                        "--root DIR` (DIR holding its folder)")
    for remote in recipe.files:
        mirrored_url(remote.url, args.mirror)          # a bad mirror stops before anything
    root = Path(args.root or default_root())
    folder = root / recipe.folder
    print(f"{recipe.title} ({recipe.size_text})\nlicence: {recipe.licence}", flush=True)
    for remote in recipe.files:
        if is_archive(remote.name):
            archive = fetch(remote, root / "downloads", mirror=args.mirror,
                            progress=progress_bars(args))
            extract(archive, folder)
        else:
            fetch(remote, folder, mirror=args.mirror, progress=progress_bars(args))
    _write_manifest(recipe, folder, folder / _manifest_name(recipe), args, downloaded=True)
    return 0


def _manifest_name(recipe) -> str:
    """``manifest.csv``; ``manifest-NAME.csv`` where recipes share the folder (Speech
    Commands' 12-class task and its full one), so neither overwrites the other's."""
    from earmark.data.recipes import RECIPES

    sharing = [r for r in RECIPES.values() if r.folder == recipe.folder and r is not recipe]
    return f"manifest-{recipe.name}.csv" if sharing else "manifest.csv"


def _add_manifest(subcommands) -> None:
    sub = command(subcommands, "manifest",
                  "Write the manifest of a dataset folder you already have.",
                  "earmark datasets manifest esc50 --root ~/datasets --out esc50.csv",
                  _manifest)
    sub.add_argument("name", help="a dataset from `earmark datasets list`")
    sub.add_argument("--root", required=True,
                     help="the download root holding the dataset's folder")
    sub.add_argument("--out", default=None,
                     help="manifest CSV to write (default: ROOT/FOLDER/manifest.csv, or "
                          "manifest-NAME.csv where datasets share the folder)")


def _manifest(args) -> int:
    from earmark.data.recipes import get_recipe
    from earmark.errors import DataError

    check_output_suffix(args.out, "--out", (".csv",))
    recipe = get_recipe(args.name)
    folder = Path(args.root) / recipe.folder
    if not folder.is_dir():
        raise DataError(f"{folder}: no such folder; the {recipe.name} dataset should be "
                        f"unpacked there (or run `earmark datasets download {recipe.name} "
                        f"--root {args.root}`)")
    out = Path(args.out) if args.out else folder / _manifest_name(recipe)
    _write_manifest(recipe, folder, out, args, downloaded=False)
    return 0


def _write_manifest(recipe, folder: Path, out: Path, args, downloaded: bool) -> None:
    """Build the manifest, open every recording it names, and write it.

    Unreadable recordings are an error naming them. Fewer rows than the dataset
    documents is an error after a download (it should be complete) and a warning
    for a folder of the user's own (a subset is legitimate there).
    """
    from earmark.data.recipes.verify import check_recordings, shortfall
    from earmark.errors import DataError

    manifest = recipe.build_manifest(folder)
    check_recordings(manifest, folder, recipe.name, progress=progress_bars(args))
    missing = shortfall(manifest, recipe.expected_recordings, recipe.name)
    if missing and downloaded:
        raise DataError(f"{missing} after downloading into {folder}; the copy is partial: "
                        f"remove {folder} and run `earmark datasets download {recipe.name}` "
                        "again (same --root)")
    if missing:
        print(f"earmark: warning: {missing}; fine for a subset, otherwise re-download it",
              file=sys.stderr)
    manifest.to_csv(out, relative=out.parent == folder)
    print(f"manifest of {len(manifest)} recordings written to {out}")
