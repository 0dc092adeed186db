"""`earmark demo`: the whole pipeline offline."""

from __future__ import annotations

from earmark.cli.common import command, progress_bars


def register(commands) -> None:
    _add_demo(commands)


def _add_demo(commands) -> None:
    sub = command(commands, "demo",
                  "The whole keyword pipeline offline: synthesize, train, evaluate, export, "
                  "stream.", "earmark demo --out runs/demo", _demo)
    sub.add_argument("--out", default="runs/demo", help="output folder (default runs/demo)")
    sub.add_argument("--takes", type=int, default=160, help="takes per keyword (default 160)")
    sub.add_argument("--epochs", type=int, default=24, help="training epochs (default 24)")
    sub.add_argument("--seed", type=int, default=0)


def _demo(args) -> int:
    from earmark.demo import DemoSize, format_report, run_demo

    report = run_demo(args.out, DemoSize(takes_per_word=args.takes, epochs=args.epochs),
                      seed=args.seed, progress=progress_bars(args))
    print(format_report(report))
    return 0
