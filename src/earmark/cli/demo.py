"""`earmark demo`: the whole pipeline offline."""

from __future__ import annotations

from pathlib import Path

from earmark.cli.common import command, progress_bars
from earmark.errors import DataError


def register(commands) -> None:
    _add_demo(commands)


def _add_demo(commands) -> None:
    sub = command(commands, "demo",
                  "The whole keyword pipeline offline: synthesize, train, evaluate, export, "
                  "stream.", "earmark demo --out runs/demo", _demo)
    sub.add_argument("--out", default="runs/demo", help="output folder (default runs/demo)")
    sub.add_argument("--takes", type=int, default=160, help="takes per keyword (default 160)")
    sub.add_argument("--epochs", type=int, default=0,
                     help="training epochs (default 40 for embedding, 24 for dscnn)")
    sub.add_argument("--model", choices=["embedding", "dscnn"], default="embedding",
                     help="embedding (default): a small network on the pretrained speech "
                          "embedding, hears real people best; dscnn: a DS-CNN on log-mel, "
                          "about a tenth of the CPU")
    sub.add_argument("--voices", nargs="*", default=["flite", "festival"],
                     choices=["flite", "festival"],
                     help="engines besides espeak-ng whose voices speak half the takes, where "
                          "installed (tools/install-voices; default both; none: espeak only)")
    sub.add_argument("--seed", type=int, default=0)
    sub.add_argument("--real", metavar="FOLDER",
                     help="real recordings of the words, a folder per class, to score the "
                          "model on (default: ../shared/data/speech_commands_v2_test when "
                          "it is there; 'none' to skip)")


def _demo(args) -> int:
    from earmark.demo import REAL_SPEAKERS, DemoSize, format_report, run_demo

    if args.real is None:
        real = REAL_SPEAKERS if REAL_SPEAKERS.is_dir() else None
    else:
        real = None if args.real == "none" else Path(args.real)
    if real is not None and not real.is_dir():
        raise DataError(f"--real {real}: no such folder; give a folder with one sub-folder "
                        "of recordings per word, or --real none")
    report = run_demo(args.out, DemoSize(takes_per_word=args.takes, epochs=args.epochs,
                                            model=args.model, voices=tuple(args.voices)),
                      seed=args.seed, progress=progress_bars(args), real_speakers=real)
    print(format_report(report))
    return 0
