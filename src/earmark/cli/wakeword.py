"""`earmark wakeword`: a wake word from text alone."""

from __future__ import annotations

from earmark.cli.common import command, progress_bars


def register(commands) -> None:
    sub = command(commands, "wakeword",
                  "Train a wake-word detector from the phrase alone: synthesized voices, hard "
                  "negatives, your negative recordings; a calibrated bundle and a report card.",
                  'earmark wakeword "view glass" --out runs/view-glass --negatives '
                  "../shared/data/speech_commands_v2_test ../shared/data/esc10_pieces\n"
                  '  earmark wakeword "view glass" --out runs/view-glass-micro --target micro '
                  "--negatives ../shared/data/speech_commands_v2_test",
                  _wakeword)
    sub.add_argument("phrase", help="the words to wake on, e.g. \"view glass\"")
    sub.add_argument("--out", required=True, help="output folder (data, run, bundle, card)")
    sub.add_argument("--negatives", nargs="*", default=[], metavar="DIR",
                     help="folders of real speech, music or noise without the phrase")
    sub.add_argument("--max-negatives", type=int, default=2500,
                     help="use a random sample of this many negative files (default 2500)")
    sub.add_argument("--noise-dir", default="",
                     help="background recordings for augmentation (default: made on the fly)")
    sub.add_argument("--language", default="en", help="espeak-ng language (default en)")
    sub.add_argument("--voices", nargs="*", default=["flite", "festival"],
                     choices=["flite", "festival"],
                     help="engines besides espeak-ng whose voices speak half the takes, where "
                          "installed (tools/install-voices; default both; none: espeak only)")
    sub.add_argument("--takes", type=int, default=600, help="takes of the phrase (default 600)")
    sub.add_argument("--hard-negatives", type=int, default=600,
                     help="takes of its parts and sound-alikes (default 600)")
    sub.add_argument("--sentences", type=int, default=200,
                     help="synthesized sentences carrying them (default 200)")
    sub.add_argument("--joined", type=int, default=600,
                     help="running-speech negatives joined from short negative recordings "
                          "(default 600)")
    sub.add_argument("--epochs", type=int, default=20, help="training epochs (default 20)")
    sub.add_argument("--false-alarms-per-hour", type=float, default=1.0,
                     help="the budget the stored threshold is calibrated for (default 1)")
    sub.add_argument("--conversation-minutes", type=float, default=120.0, metavar="MIN",
                     help="synthesized conversation the threshold must also keep within the "
                          "budget (default 120, about a minute of work; 0: none)")
    sub.add_argument("--target", choices=["onnx", "micro"], default="onnx",
                     help="onnx: a bundle for earmark listen/serve (default); micro: a "
                          "causal TCN on the TFLite-Micro front-end, written as a "
                          "microWakeWord / ESPHome model (OUT/micro: streaming int8 .tflite + "
                          "manifest with the calibrated cutoff; needs earmark[edge])")
    sub.add_argument("--model", choices=["embedding", "dscnn"], default=None,
                     help="the bundle's model (--target onnx): embedding, a small network on "
                          "the pretrained speech embedding (default; hears real people "
                          "far better); dscnn, a DS-CNN on log-mel (cheaper, but fires on "
                          "real conversation); --target micro is always a TCN")
    sub.add_argument("--seed", type=int, default=0)


def _wakeword(args) -> int:
    from earmark.errors import ConfigError
    from earmark.input_limits import check_count, check_non_negative, check_positive
    from earmark.wakeword.calibration import format_card
    from earmark.wakeword.dataset import WakeWordData
    from earmark.wakeword.pipeline import WakeWordOptions, run_wakeword

    if args.target == "micro" and args.model:
        raise ConfigError(f"--model {args.model} is for --target onnx; a micro wake word is "
                          "always the causal TCN on the TFLite-Micro front-end: leave --model "
                          "out")
    data = WakeWordData(takes=check_count(args.takes, "--takes", 10, 100_000),
                        hard_negative_takes=check_count(args.hard_negatives, "--hard-negatives",
                                                        10, 100_000),
                        sentences=check_count(args.sentences, "--sentences", 0, 100_000),
                        joined=check_count(args.joined, "--joined", 0, 100_000),
                        negative_dirs=list(args.negatives), noise_dir=args.noise_dir,
                        engines=tuple(args.voices),
                        max_negative_files=check_count(args.max_negatives, "--max-negatives",
                                                       1, 10_000_000),
                        seed=args.seed)
    options = WakeWordOptions(args.phrase, args.language, data,
                              epochs=check_count(args.epochs, "--epochs", 1, 10_000),
                              false_alarms_per_hour=check_positive(
                                  args.false_alarms_per_hour, "--false-alarms-per-hour",
                                  maximum=3600.0),
                              seed=args.seed, target=args.target,
                              model=args.model or "embedding",
                              conversation_minutes=check_non_negative(
                                  args.conversation_minutes, "--conversation-minutes",
                                  maximum=24 * 60.0))
    card = run_wakeword(options, args.out, progress=progress_bars(args))
    print(format_card(card, card["phrase"]))
    if args.target == "micro":
        print(f"microWakeWord files: {card['bundle']} (the .json manifest holds the cutoff; "
              "ESPHome's micro_wake_word and pymicro-wakeword load it)")
    else:
        print(f"bundle: {card['bundle']} (earmark listen {card['bundle']} uses its threshold)")
    return 0
