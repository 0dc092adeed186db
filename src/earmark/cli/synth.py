"""`earmark synth keywords`, `synth mix`: synthesized datasets."""

from __future__ import annotations

import argparse

from earmark.cli.common import add_config_options, command, load_config_from_args, progress_bars


def register(commands) -> None:
    _add_synth(commands)


def _add_synth(commands) -> None:
    synth = commands.add_parser(
        "synth", help="Synthesize datasets (keywords).", description="Synthesize datasets.",
        epilog="examples:\n  earmark synth keywords yes no --takes 100 --out data/yes_no\n"
               "  earmark synth mix configs/gender.toml --count 20 --out data/gender-mix",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    kinds = synth.add_subparsers(title="what", metavar="WHAT")
    sub = command(kinds, "keywords",
                  "Speak words with many espeak-ng voices into a keyword dataset.",
                  "earmark synth keywords yes no stop go --unknown bed cat --takes 200 "
                  "--out data/my_words", _synth_keywords)
    sub.add_argument("words", nargs="+",
                     help="the keywords; LABEL=TEXT speaks TEXT into class LABEL (7=seven)")
    sub.add_argument("--unknown", nargs="*", help="other words for _unknown_ "
                                                  "(default: the Speech Commands extras)")
    sub.add_argument("--takes", type=int, default=150, help="takes per keyword (default 150)")
    sub.add_argument("--silence", type=int, help="_silence_ clips (default: --takes; 0: none)")
    sub.add_argument("--noise-dir", default="", help="cut _silence_ clips from these "
                                                     "recordings too")
    sub.add_argument("--rate", type=int, default=16000, help="sample rate (default 16000)")
    sub.add_argument("--voices", nargs="*", default=[], choices=["flite", "festival"],
                     help="engines besides espeak-ng whose installed voices speak half the "
                          "takes (tools/install-voices installs them)")
    sub.add_argument("--seed", type=int, default=0)
    sub.add_argument("--out", required=True, help="folder for <label>/ files and manifest.csv")
    _add_synth_mix(kinds)


def _synth_keywords(args) -> int:
    from earmark.data.synth_keywords import KeywordSynthesis, synthesize_keywords
    from earmark.data.voices import available_voices
    from earmark.errors import ConfigError

    extra = tuple(available_voices(tuple(args.voices)))
    missing = sorted(set(args.voices) - {voice.engine for voice in extra})
    if missing:
        raise ConfigError(f"--voices {' '.join(missing)}: not installed here; run "
                          "tools/install-voices (Debian's flite and festival)")
    spec = KeywordSynthesis(words=args.words, takes_per_word=args.takes,
                            silence_takes=args.silence, extra_voices=extra,
                            noise_dir=args.noise_dir, sample_rate=args.rate, seed=args.seed,
                            **({"unknown_words": args.unknown} if args.unknown is not None
                               else {}))
    manifest = synthesize_keywords(spec, args.out, progress=progress_bars(args))
    print(f"{len(manifest)} clips, {len(manifest.labels())} classes, {len(manifest.groups())} "
          f"voices -> {args.out}/manifest.csv (train with [data] csv = that file)")
    return 0


def _add_synth_mix(kinds) -> None:
    sub = command(kinds, "mix",
                  "Long labelled mixtures from a config's recordings, per speaker-disjoint split.",
                  "earmark synth mix configs/gender.toml --count 20 --out data/gender-mix",
                  _synth_mix)
    add_config_options(sub)
    sub.add_argument("--out", required=True, help="folder for the mixtures and mixtures.csv")
    sub.add_argument("--count", type=int, default=20, help="mixtures per split (default 20)")
    sub.add_argument("--splits", nargs="+", default=["train", "validation", "test"])
    sub.add_argument("--mode", choices=["sequential", "simultaneous"], default="sequential",
                     help="one source after another with gaps, or all at once")
    sub.add_argument("--duration", type=float, default=60.0, help="seconds (default 60)")
    sub.add_argument("--gap", type=float, nargs=2, default=[0.0, 5.0], metavar=("MIN", "MAX"),
                     help="pause between sources in seconds (default 0 5)")
    sub.add_argument("--stretch", type=float, nargs=2, default=[1.0, 1.0], metavar=("MIN", "MAX"),
                     help="length perturbation factors (default 1 1)")
    sub.add_argument("--noise-dir", help="lay the sources over these recordings")
    sub.add_argument("--seed", type=int, default=0)


def _synth_mix(args) -> int:
    from earmark import audio
    from earmark.data.dataset import load_manifest
    from earmark.data.mixtures import MixSpec, make_mixtures

    config = load_config_from_args(args)
    manifest = load_manifest(config)
    noise = (audio.load_folder(args.noise_dir, config.data.sample_rate, "--noise-dir")
             if args.noise_dir else None)
    spec = MixSpec(duration_s=args.duration, mode=args.mode, gap_s=tuple(args.gap),
                   stretch=tuple(args.stretch), base="noise" if noise else "silence",
                   sample_rate=config.data.sample_rate, seed=args.seed)
    for split in args.splits:
        made = make_mixtures(manifest, split, args.count, spec, args.out, noise=noise)
        print(f"{split}: {len(made)} mixtures of {args.duration:g} s "
              f"({', '.join(f'{k} {v}' for k, v in sorted(made.label_counts().items()))})")
    print(f"-> {args.out}/mixtures.csv (label per file) and per-file .events.csv/.json/"
          ".labels.txt")
    return 0
