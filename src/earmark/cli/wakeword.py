"""`earmark wakeword`: a wake word from text alone."""

from __future__ import annotations

from earmark.cli.common import command, progress_bars


def register(commands) -> None:
    from earmark.wakeword.pipeline import ENSEMBLE_HEADS                     # torch-free
    from earmark.wakeword.settings import MODELS, TARGETS, WakeWordSettings

    default = WakeWordSettings()
    sub = command(commands, "wakeword",
                  "Train a wake-word detector from the phrase alone: synthesized voices, hard "
                  "negatives, your negative recordings; a calibrated bundle and a report card.",
                  'earmark wakeword "view glass" --out runs/view-glass --negatives '
                  "../shared/data/speech_commands_v2_test ../shared/data/esc10_pieces\n"
                  '  earmark wakeword "view glass" --out runs/view-glass-micro --target micro '
                  "--negatives ../shared/data/speech_commands_v2_test\n"
                  "  earmark wakeword --config configs/wakeword.toml --out runs/view-glass "
                  "--set augment.reverb_probability=0.7",
                  _wakeword)
    sub.add_argument("phrase", nargs="?", default=None,
                     help="the words to wake on, e.g. \"view glass\" (or phrase = in --config)")
    sub.add_argument("--out", required=True, help="output folder (data, run, bundle, card)")
    sub.add_argument("--config", metavar="TOML",
                     help="a settings file: these options in [wakeword], and [features], "
                          "[augment], [train], [model] tables merged into the training config "
                          "(see configs/wakeword.toml); options given here override it")
    sub.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                     help="override a setting, e.g. --set augment.reverb_probability=0.7, "
                          "--set wakeword.takes=1000 or --set features.embedding_int8=false "
                          "(the embedding in float: ~1.6x the CPU; repeatable)")
    _data_options(sub, default)
    sub.add_argument("--epochs", type=int, help=f"training epochs (default {default.epochs})")
    sub.add_argument("--false-alarms-per-hour", type=float,
                     help="the budget the stored threshold is calibrated for (default "
                          f"{default.false_alarms_per_hour:g})")
    sub.add_argument("--conversation-minutes", type=float, metavar="MIN",
                     help="synthesized conversation the threshold must also keep within the "
                          f"budget (default {default.conversation_minutes:g}, about a minute of "
                          "work; 0: none)")
    sub.add_argument("--ensemble", type=int, metavar="N",
                     help="heads on the embedding that differ in their seed alone, their "
                          "probabilities averaged in the bundle (default "
                          f"{ENSEMBLE_HEADS} with the embedding, 1 otherwise; each more "
                          "trains in about 25 s on the same features)")
    sub.add_argument("--target", choices=TARGETS,
                     help="onnx: a bundle for earmark listen/serve (default); micro: a "
                          "causal TCN on the TFLite-Micro front-end, written as a "
                          "microWakeWord / ESPHome model (OUT/micro: streaming int8 .tflite + "
                          "manifest with the calibrated cutoff; needs earmark[edge])")
    sub.add_argument("--model", choices=MODELS,
                     help="the bundle's model (--target onnx): embedding, a small network on "
                          "the pretrained speech embedding (default; hears real people "
                          "far better); dscnn, a DS-CNN on log-mel (cheaper, but fires on "
                          "real conversation); --target micro is always a TCN")
    sub.add_argument("--seed", type=int, help=f"default {default.seed}")


def _data_options(sub, default) -> None:
    """What the training data is made of: the negatives, the voices, how many takes."""
    from earmark.data.voices import ENGINES

    sub.add_argument("--negatives", nargs="*", default=None, metavar="DIR",
                     help="folders of real speech, music or noise without the phrase")
    sub.add_argument("--max-negatives", type=int,
                     help="use a random sample of this many negative files (default "
                          f"{default.max_negatives})")
    sub.add_argument("--noise-dir",
                     help="background recordings for augmentation (default: made on the fly)")
    sub.add_argument("--language", help=f"espeak-ng language (default {default.language})")
    sub.add_argument("--voices", nargs="*", default=None, choices=ENGINES,
                     help="engines besides espeak-ng whose voices speak half the takes and "
                          "of the calibration's conversation, where installed "
                          "(tools/install-voices; default both; none: espeak only)")
    sub.add_argument("--takes", type=int, help=f"takes of the phrase (default {default.takes})")
    sub.add_argument("--hard-negatives", type=int,
                     help=f"takes of its parts and sound-alikes (default {default.hard_negatives})")
    sub.add_argument("--sentences", type=int,
                     help=f"synthesized sentences carrying them (default {default.sentences})")
    sub.add_argument("--joined", type=int,
                     help="running-speech negatives joined from short negative recordings "
                          f"(default {default.joined})")


#: The options that are settings of ``[wakeword]`` (the same names).
SETTINGS_OPTIONS = ("phrase", "negatives", "max_negatives", "noise_dir", "language", "voices",
                    "takes", "hard_negatives", "sentences", "joined", "epochs",
                    "false_alarms_per_hour", "conversation_minutes", "ensemble", "target", "model",
                    "seed")


def run_settings(args):
    """The run's settings: the defaults, the ``--config`` file, the options given, ``--set``."""
    from earmark.cli.common import overrides_by_section
    from earmark.wakeword.settings import (RunSettings, load_settings, with_options,
                                           with_overrides)

    settings = load_settings(args.config) if args.config else RunSettings()
    settings = with_options(settings, {name: getattr(args, name) for name in SETTINGS_OPTIONS})
    return with_overrides(settings, overrides_by_section(args.overrides))


def _wakeword(args) -> int:
    from earmark.wakeword.calibration import format_card
    from earmark.wakeword.pipeline import run_wakeword
    from earmark.wakeword.settings import settings_text, to_options

    settings = run_settings(args)
    options = to_options(settings)
    card = run_wakeword(options, args.out, progress=progress_bars(args),
                        settings_text=settings_text(settings))
    print(format_card(card, card["phrase"]))
    if options.target == "micro":
        print(f"microWakeWord files: {card['bundle']} (the .json manifest holds the cutoff; "
              "ESPHome's micro_wake_word and pymicro-wakeword load it)")
    else:
        print(f"bundle: {card['bundle']} (earmark listen {card['bundle']} uses its threshold)")
    return 0
