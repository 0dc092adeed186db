"""The ``earmark`` command. Each subcommand is a thin call into the library."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from earmark import __version__
from earmark.errors import EarmarkError


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help()
        return 2
    try:
        return args.handler(args) or 0
    except EarmarkError as error:
        print(f"earmark: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("earmark: interrupted", file=sys.stderr)
        return 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="earmark", description="Train, evaluate and deploy audio classifiers.",
        epilog="Run `earmark COMMAND --help` for a command's options and an example.")
    parser.add_argument("--version", action="version", version=f"earmark {__version__}")
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")
    _add_train(commands)
    _add_evaluate(commands)
    _add_prepare(commands)
    _add_manifest(commands)
    _add_models(commands)
    _add_export(commands)
    _add_classify(commands)
    _add_footprint(commands)
    _add_listen(commands)
    _add_serve(commands)
    _add_stream_test(commands)
    _add_synth(commands)
    _add_demo(commands)
    _add_detect(commands)
    _add_evaluate_events(commands)
    return parser


def _command(commands, name: str, summary: str, example: str, handler):
    sub = commands.add_parser(name, help=summary, description=summary,
                              epilog=f"example:\n  {example}",
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    sub.set_defaults(handler=handler)
    return sub


def _add_config_options(sub) -> None:
    sub.add_argument("config", help="experiment TOML file (see configs/)")
    sub.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                     help="override a config value, e.g. --set train.epochs=5 (repeatable)")
    sub.add_argument("--skip-bad-files", action="store_true",
                     help="leave unreadable recordings out (and list them) instead of stopping")
    sub.add_argument("--quiet", action="store_true", help="no progress bars")


def _add_train(commands) -> None:
    sub = _command(commands, "train", "Train a classifier from an experiment config.",
                   "earmark train configs/keywords.toml --out runs/keywords", _train)
    _add_config_options(sub)
    sub.add_argument("--out", required=True, help="run folder for the model, logs and reports")
    sub.add_argument("--resume", action="store_true",
                     help="continue the run in --out from its last checkpoint")


def _add_evaluate(commands) -> None:
    sub = _command(commands, "evaluate", "Evaluate a trained run on a split.",
                   "earmark evaluate runs/keywords --split test --json", _evaluate)
    sub.add_argument("run", help="a run folder written by `earmark train`")
    sub.add_argument("--split", default="test", choices=["train", "validation", "test"])
    sub.add_argument("--json", action="store_true", help="print the report as JSON")
    sub.add_argument("--device", default="cpu", help="cpu or cuda")
    sub.add_argument("--quiet", action="store_true", help="no progress bars")


def _add_prepare(commands) -> None:
    sub = _command(commands, "prepare",
                   "Build the manifest and splits and decode the audio cache of a config.",
                   "earmark prepare configs/keywords.toml --manifest-out manifest.csv", _prepare)
    _add_config_options(sub)
    sub.add_argument("--manifest-out", help="also write the split manifest as CSV")


def _add_manifest(commands) -> None:
    sub = _command(commands, "manifest",
                   "Write a manifest CSV from a folder per class (groups from file names).",
                   "earmark manifest ../shared/data/fsdd/recordings --group-pattern fsdd "
                   "--label-pattern fsdd --out fsdd.csv", _manifest)
    sub.add_argument("root", help="folder with one sub-folder of recordings per class")
    sub.add_argument("--out", required=True, help="CSV file to write")
    sub.add_argument("--group-pattern", default="auto",
                     help="speech_commands, librispeech, fsdd, auto, or a regex with "
                          "(?P<group>...)")
    sub.add_argument("--label-pattern", default="",
                     help="take labels from file names: fsdd, speech_commands "
                          "(<word>_<hash>_nohash_<n>), or a regex with (?P<label>...) "
                          "(default: the sub-folder name)")
    sub.add_argument("--labels", nargs="+", metavar="LABEL[=NAME]",
                     help="keep only these labels, renamed where NAME is given "
                          "(e.g. zero=0 one=1)")


def _add_models(commands) -> None:
    _command(commands, "models", "List the model architectures.", "earmark models", _models)


def _load(args):
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


def _train(args) -> int:
    from earmark.train import train

    config = _load(args)
    train(config, args.out, resume=args.resume, progress=not args.quiet)
    return 0


def _evaluate(args) -> int:
    from earmark.evaluate import evaluate_run

    report = evaluate_run(args.run, args.split, device=args.device, progress=not args.quiet)
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        print(report.to_text())
        print(f"\nwritten: {Path(args.run) / ('eval_' + args.split)}.json/.txt/_confusion.png")
    return 0


def _prepare(args) -> int:
    from earmark.data.dataset import load_manifest, open_dataset

    config = _load(args)
    manifest = load_manifest(config)
    dataset = open_dataset(config, manifest, progress=not args.quiet)
    _print_split_table(dataset)
    if args.manifest_out:
        dataset.manifest.to_csv(args.manifest_out)
        print(f"manifest written to {args.manifest_out}")
    print(f"decoded audio in {dataset.store.folder}")
    return 0


def _print_split_table(dataset) -> None:
    splits = ("train", "validation", "test")
    counts = {split: dataset.manifest.select(split) for split in splits}
    width = max(len(label) for label in dataset.labels) + 2
    print(f"{'class':<{width}}" + "".join(f"{s:>12}" for s in splits))
    for label in dataset.labels:
        print(f"{label:<{width}}" + "".join(
            f"{counts[s].label_counts().get(label, 0):>12}" for s in splits))
    print(f"{'groups':<{width}}" + "".join(f"{len(counts[s].groups()):>12}" for s in splits))


def _manifest(args) -> int:
    from earmark.data.manifest import from_folder, keep_labels

    manifest = from_folder(args.root, args.group_pattern, args.label_pattern)
    if args.labels:
        manifest = keep_labels(manifest, args.labels)
    manifest.to_csv(args.out)
    print(f"{len(manifest)} recordings, {len(manifest.labels())} classes, "
          f"{len(manifest.groups())} groups -> {args.out}")
    return 0


def _models(args) -> int:
    from earmark.models import available_models

    for name in available_models():
        print(name)
    return 0


def _add_export(commands) -> None:
    sub = _command(commands, "export",
                   "Export a run's best model as a bundle (ONNX waveform -> probabilities).",
                   "earmark export runs/keywords --out bundles/keywords --int8", _export)
    sub.add_argument("run", help="a run folder written by `earmark train`")
    sub.add_argument("--out", required=True, help="bundle folder to write (replaced if present)")
    sub.add_argument("--int8", action="store_true",
                     help="quantize the network to static int8 (front-end stays float)")
    sub.add_argument("--calibration", type=int, default=300, metavar="N",
                     help="training windows used to calibrate int8 (default 300)")
    sub.add_argument("--quiet", action="store_true", help="no progress bars")


def _add_classify(commands) -> None:
    sub = _command(commands, "classify",
                   "Classify audio files with a bundle (no torch needed).",
                   "earmark classify bundles/keywords clips/ --top-k 3 --output results.csv",
                   _classify)
    sub.add_argument("bundle", help="a bundle folder written by `earmark export`")
    sub.add_argument("inputs", nargs="+", help="files, folders (searched recursively) or globs")
    sub.add_argument("--top-k", type=int, default=3, help="labels to show per file (default 3)")
    sub.add_argument("--output", help="write results to a .csv or .json file")
    sub.add_argument("--hop", type=float, help="seconds between analysis windows of long files "
                                              "(default: the bundle's)")
    sub.add_argument("--aggregate", choices=["mean", "vote"],
                     help="judge long files by mean probability or majority vote")
    sub.add_argument("--per-window", action="store_true",
                     help="include every window's top label in the output")
    sub.add_argument("--threads", type=int, default=0, help="onnxruntime threads (0 = auto)")
    sub.add_argument("--quiet", action="store_true", help="no progress bar")


def _add_footprint(commands) -> None:
    sub = _command(commands, "footprint",
                   "Parameters, MACs, size, peak memory and latency of a bundle.",
                   "earmark footprint bundles/keywords --json", _footprint)
    sub.add_argument("bundle", help="a bundle folder")
    sub.add_argument("--runs", type=int, default=200, help="timed inferences (default 200)")
    sub.add_argument("--json", action="store_true", help="print JSON")


def _add_smoother_options(sub) -> None:
    from earmark.runtime.smoother import SmootherConfig

    defaults = SmootherConfig()
    group = sub.add_argument_group("smoothing (see earmark.runtime.smoother)")
    group.add_argument("--stride-ms", type=float, default=20.0,
                       help="run the model every this many ms (default 20)")
    group.add_argument("--window-ms", type=float, default=defaults.average_window_ms,
                       help=f"average scores over this window (default "
                            f"{defaults.average_window_ms:g})")
    group.add_argument("--threshold", type=float, default=defaults.detection_threshold,
                       help=f"report a command above this averaged score (default "
                            f"{defaults.detection_threshold:g})")
    group.add_argument("--suppression-ms", type=float, default=defaults.suppression_ms,
                       help=f"wait this long before repeating a command (default "
                            f"{defaults.suppression_ms:g})")
    group.add_argument("--min-count", type=int, default=defaults.minimum_count,
                       help=f"results needed in the window (default {defaults.minimum_count})")


def _smoother_config(args):
    from earmark.runtime.smoother import SmootherConfig

    return SmootherConfig(average_window_ms=args.window_ms,
                          detection_threshold=args.threshold,
                          suppression_ms=args.suppression_ms, minimum_count=args.min_count)


def _add_listen(commands) -> None:
    sub = _command(commands, "listen",
                   "Spot keywords live: microphone, a file played as a stream, or PCM on stdin.",
                   "earmark listen bundles/keywords --file stream.wav --json", _listen)
    sub.add_argument("bundle", help="a keyword bundle written by `earmark export`")
    source = sub.add_mutually_exclusive_group()
    source.add_argument("--file", help="play this recording as a stream")
    source.add_argument("--stdin", action="store_true",
                        help="read raw PCM from standard input (see --rate, --format)")
    source.add_argument("--list-devices", action="store_true", help="list microphones and exit")
    sub.add_argument("--device", help="microphone index or name (default: the system's)")
    sub.add_argument("--rate", type=int, help="sample rate of the microphone or stdin PCM")
    sub.add_argument("--format", default="s16le", choices=["s16le", "s32le", "f32le"],
                     help="stdin PCM sample format (default s16le)")
    sub.add_argument("--channels", type=int, default=1, help="stdin PCM channels (default 1)")
    sub.add_argument("--realtime", action="store_true",
                     help="with --file: play at real speed instead of as fast as possible")
    sub.add_argument("--json", action="store_true", help="one JSON object per detection")
    _add_smoother_options(sub)


def _listen(args) -> int:
    from earmark.runtime import load_bundle
    from earmark.runtime.listen import listen
    from earmark.runtime.sources import (FileSource, MicrophoneSource, PcmSource,
                                         list_input_devices)

    if args.list_devices:
        print(list_input_devices())
        return 0
    bundle = load_bundle(args.bundle, threads=1)
    if args.file:
        source = FileSource(args.file, realtime=args.realtime)
    elif args.stdin:
        source = PcmSource(args.rate or bundle.sample_rate, args.format, args.channels)
    else:
        device = int(args.device) if args.device and args.device.isdigit() else args.device
        source = MicrophoneSource(args.rate, device)
    return listen(bundle, source, _smoother_config(args), args.stride_ms, as_json=args.json)


def _add_serve(commands) -> None:
    sub = _command(commands, "serve",
                   "Serve a bundle: live page, POST /classify, websocket /stream, /model.",
                   "earmark serve bundles/keywords --port 8000   # then open http://127.0.0.1:8000",
                   _serve)
    sub.add_argument("bundle", help="a bundle folder written by `earmark export`")
    sub.add_argument("--host", default="127.0.0.1",
                     help="address to listen on (default 127.0.0.1; 0.0.0.0 for every interface)")
    sub.add_argument("--port", type=int, default=8000, help="TCP port (default 8000)")
    sub.add_argument("--max-upload-mb", type=float, default=50.0,
                     help="largest upload to /classify in MiB (default 50)")
    sub.add_argument("--max-upload-seconds", type=float, default=600.0,
                     help="longest recording /classify accepts (default 600)")
    sub.add_argument("--max-streams", type=int, default=64,
                     help="websocket streams served at once (default 64)")
    _add_smoother_options(sub)


def _serve(args) -> int:
    import uvicorn

    from earmark.serve import ServeLimits, create_app

    limits = ServeLimits(max_upload_bytes=int(args.max_upload_mb * 1024 * 1024),
                         max_upload_seconds=args.max_upload_seconds,
                         max_streams=args.max_streams)
    app = create_app(args.bundle, limits, _smoother_config(args), args.stride_ms)
    print(f"earmark: serving {args.bundle} on http://{args.host}:{args.port}/ "
          "(Ctrl-C to stop)", file=sys.stderr)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", ws="websockets-sansio",
                ws_per_message_deflate=False)
    return 0


def _add_stream_test(commands) -> None:
    sub = _command(commands, "stream-test",
                   "Score streaming recognition on long streams of held-out speakers.",
                   "earmark stream-test bundles/keywords --run runs/keywords --minutes 10 "
                   "--out runs/keywords/stream", _stream_test)
    sub.add_argument("bundle", help="a keyword bundle")
    sub.add_argument("--run", required=True,
                     help="the training run it came from (its validation and test speakers)")
    sub.add_argument("--out", required=True, help="folder for the stream, truth, detections, "
                                                 "sweep, trade-off plot and report")
    sub.add_argument("--minutes", type=float, default=10.0, help="length of each stream")
    sub.add_argument("--noise-dir", help="background recordings (default: the run's noise)")
    sub.add_argument("--noise-volume", type=float, default=0.1,
                     help="background gain on the recordings' own level (default 0.1)")
    sub.add_argument("--max-false-alarms", type=float, default=60.0, metavar="PER_HOUR",
                     help="calibrate the threshold for at most this many false alarms an hour "
                          "on the validation stream (default 60)")
    _add_smoother_options(sub)


def _stream_test(args) -> int:
    from earmark.runtime import load_bundle
    from earmark.stream_eval import evaluate_streaming

    report = evaluate_streaming(load_bundle(args.bundle, threads=1), args.run, args.out,
                                minutes=args.minutes, noise_dir=args.noise_dir,
                                noise_volume=args.noise_volume,
                                max_false_alarms_per_hour=args.max_false_alarms,
                                stride_ms=args.stride_ms, smoother=_smoother_config(args))
    score = report["score"]
    print(f"threshold {report['threshold']} (calibrated on the validation stream)")
    def ms(value):
        return "n/a" if value is None else f"{value:.0f} ms"

    print(f"test stream: {report['words']} words in {args.minutes:g} min: correct "
          f"{score['correct_rate']:.1%}, wrong {score['wrong_rate']:.1%}, false positives "
          f"{score['false_positive_rate']:.1%}, {score['false_alarms_per_hour']:.1f} false "
          f"alarms/hour; latency median {ms(report['latency_ms_median'])}, p95 "
          f"{ms(report['latency_ms_p95'])}")
    print(f"evidence in {args.out}")
    return 0


def _add_synth(commands) -> None:
    synth = commands.add_parser(
        "synth", help="Synthesize datasets (keywords).", description="Synthesize datasets.",
        epilog="examples:\n  earmark synth keywords yes no --takes 100 --out data/yes_no\n"
               "  earmark synth mix configs/gender.toml --count 20 --out data/gender-mix",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    kinds = synth.add_subparsers(title="what", metavar="WHAT")
    sub = _command(kinds, "keywords",
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
    sub.add_argument("--seed", type=int, default=0)
    sub.add_argument("--out", required=True, help="folder for <label>/ files and manifest.csv")
    sub.add_argument("--quiet", action="store_true", help="no progress bars")
    _add_synth_mix(kinds)


def _add_synth_mix(kinds) -> None:
    sub = _command(kinds, "mix",
                   "Long labelled mixtures from a config's recordings, per speaker-disjoint split.",
                   "earmark synth mix configs/gender.toml --count 20 --out data/gender-mix",
                   _synth_mix)
    _add_config_options(sub)
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

    config = _load(args)
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


def _synth_keywords(args) -> int:
    from earmark.data.synth_keywords import KeywordSynthesis, synthesize_keywords

    spec = KeywordSynthesis(words=args.words, takes_per_word=args.takes,
                            silence_takes=args.silence,
                            noise_dir=args.noise_dir, sample_rate=args.rate, seed=args.seed,
                            **({"unknown_words": args.unknown} if args.unknown is not None
                               else {}))
    manifest = synthesize_keywords(spec, args.out, progress=not args.quiet)
    print(f"{len(manifest)} clips, {len(manifest.labels())} classes, {len(manifest.groups())} "
          f"voices -> {args.out}/manifest.csv (train with [data] csv = that file)")
    return 0


def _add_demo(commands) -> None:
    sub = _command(commands, "demo",
                   "The whole keyword pipeline offline: synthesize, train, evaluate, export, "
                   "stream.", "earmark demo --out runs/demo", _demo)
    sub.add_argument("--out", default="runs/demo", help="output folder (default runs/demo)")
    sub.add_argument("--takes", type=int, default=160, help="takes per keyword (default 160)")
    sub.add_argument("--epochs", type=int, default=24, help="training epochs (default 24)")
    sub.add_argument("--seed", type=int, default=0)
    sub.add_argument("--quiet", action="store_true", help="no progress bars")


def _demo(args) -> int:
    from earmark.demo import DemoSize, run_demo

    run_demo(args.out, DemoSize(takes_per_word=args.takes, epochs=args.epochs),
             seed=args.seed, progress=not args.quiet)
    return 0


def _add_detect(commands) -> None:
    sub = _command(commands, "detect",
                   "Find sound events (onset, offset, label) in long recordings.",
                   "earmark detect bundles/keywords meeting.flac --output events.csv --plot "
                   "events.png", _detect)
    sub.add_argument("bundle", help="a bundle written by `earmark export`")
    sub.add_argument("file", help="the recording (any length: read in blocks)")
    sub.add_argument("--output", help="events as .csv, .json or .txt (Audacity label track)")
    sub.add_argument("--plot", help="PNG: spectrogram, class probabilities and events")
    sub.add_argument("--hop", type=float, default=0.1, help="seconds between windows (0.1)")
    sub.add_argument("--median", type=int, default=5, help="median filter, in windows (5)")
    sub.add_argument("--on", type=float, default=0.5, help="threshold to start an event (0.5)")
    sub.add_argument("--off", type=float, default=0.3, help="threshold to end it (0.3)")
    sub.add_argument("--class-threshold", action="append", default=[], metavar="LABEL=ON:OFF",
                     help="per-class thresholds, e.g. yes=0.7:0.4 (repeatable)")
    sub.add_argument("--min-duration", type=float, default=0.1, help="shortest event, s (0.1)")
    sub.add_argument("--min-gap", type=float, default=0.2,
                     help="merge same-label events closer than this, s (0.2)")
    sub.add_argument("--onset-shift", type=float, default=0.0,
                     help="seconds added to onsets (see evaluate-events' timing bias)")
    sub.add_argument("--offset-shift", type=float, default=0.0,
                     help="seconds added to offsets")
    sub.add_argument("--snap", action="store_true",
                     help="move each event's boundaries to where the signal is active "
                          "(sounds over a quieter background, such as words)")
    sub.add_argument("--threads", type=int, default=0, help="onnxruntime threads (0 = auto)")


def _detect(args) -> int:
    from earmark.errors import ConfigError
    from earmark.runtime import load_bundle
    from earmark.runtime.detect import DetectionSettings, detect_events, write_detected

    thresholds = {}
    for item in args.class_threshold:
        label, _, values = item.partition("=")
        on, _, off = values.partition(":")
        try:
            thresholds[label] = (float(on), float(off or on))
        except ValueError:
            raise ConfigError(f"--class-threshold {item!r}: write LABEL=ON:OFF") from None
    settings = DetectionSettings(hop_seconds=args.hop, median_windows=args.median,
                                 on_threshold=args.on, off_threshold=args.off,
                                 thresholds=thresholds, min_duration=args.min_duration,
                                 min_gap=args.min_gap, onset_shift=args.onset_shift,
                                 offset_shift=args.offset_shift, snap=args.snap)
    bundle = load_bundle(args.bundle, threads=args.threads)
    events, result = detect_events(bundle, args.file, settings)
    for event in events:
        print(f"{event.onset:9.2f} {event.offset:9.2f}  {event.label:<14} {event.confidence:.2f}")
    print(f"{len(events)} event(s) in {result.duration:.1f} s", file=sys.stderr)
    if args.output:
        write_detected(args.output, events)
    if args.plot:
        from earmark.plots import plot_events
        from earmark.runtime.detect import coarse_spectrogram

        spectrogram, seconds_per_frame = coarse_spectrogram(args.file, bundle.sample_rate)
        plot_events(spectrogram, seconds_per_frame, bundle.sample_rate,
                    result.window_starts + result.window_seconds / 2,
                    result.window_probabilities, result.labels, events, args.plot,
                    title=f"{Path(args.file).name}: {len(events)} events")
    return 0


def _add_evaluate_events(commands) -> None:
    sub = _command(commands, "evaluate-events",
                   "Score detected events against reference events (event and segment based).",
                   "earmark evaluate-events truth.csv events.csv --collar 0.2", _evaluate_events)
    sub.add_argument("reference", help="reference events (.csv, .json or Audacity .txt)")
    sub.add_argument("estimated", help="detected events, same formats")
    sub.add_argument("--collar", type=float, default=0.2, help="onset tolerance, s (0.2)")
    sub.add_argument("--offset", action="store_true", help="also require matching offsets")
    sub.add_argument("--segment", type=float, default=1.0, help="segment length, s (1.0)")
    sub.add_argument("--ignore", nargs="*", default=["_silence_", "_unknown_"],
                     help="labels left out of both lists (default: _silence_ _unknown_)")
    sub.add_argument("--json", action="store_true", help="print JSON")


def _evaluate_events(args) -> int:
    from earmark.metrics.events import (event_based, format_report, read_events,
                                                segment_based)

    def kept(path):
        return [e for e in read_events(path) if e.label not in set(args.ignore)]

    reference, estimated = kept(args.reference), kept(args.estimated)
    events = event_based(reference, estimated, t_collar=args.collar,
                         evaluate_offset=args.offset)
    segments = segment_based(reference, estimated, segment_length=args.segment)
    from earmark.runtime.detect import timing_bias

    onset_bias, offset_bias = timing_bias(reference, estimated)
    if args.json:
        print(json.dumps({"event_based": events, "segment_based": segments,
                          "timing_bias": {"onset": onset_bias, "offset": offset_bias}},
                         indent=2, default=str))
    else:
        print(format_report(events, segments))
        print(f"\ntiming bias (reference - detected, median): onset {onset_bias:+.3f} s, "
              f"offset {offset_bias:+.3f} s; correct it with earmark detect --onset-shift "
              f"{onset_bias:.3f} --offset-shift {offset_bias:.3f}")
    return 0


def _export(args) -> int:
    from earmark.export import export_run

    result = export_run(args.run, args.out, int8=args.int8,
                        calibration_windows=args.calibration, progress=not args.quiet)
    print(f"bundle written to {result.bundle}")
    return 0


def _classify(args) -> int:
    from tqdm import tqdm

    from earmark.runtime import Classifier
    from earmark.runtime.results import expand_inputs, table, write_results

    classifier = Classifier.from_bundle(args.bundle, threads=args.threads,
                                        hop_seconds=args.hop, aggregate=args.aggregate)
    paths = expand_inputs(args.inputs)
    results, failures = [], []
    for path in tqdm(paths, desc="classifying", unit="file",
                     disable=args.quiet or len(paths) < 10):
        try:
            results.append(classifier.classify_file(path))
        except EarmarkError as error:
            failures.append(str(error))
    print(table(results, args.top_k))
    if args.output:
        write_results(results, args.output, args.top_k, args.per_window)
        print(f"results written to {args.output}")
    for failure in failures:
        print(f"earmark: skipped: {failure}", file=sys.stderr)
    if failures:
        print(f"earmark: {len(failures)} of {len(paths)} file(s) could not be classified",
              file=sys.stderr)
        return 1
    return 0


def _footprint(args) -> int:
    from earmark.runtime.footprint import footprint, format_footprint

    figures = footprint(args.bundle, runs=args.runs)
    print(json.dumps(figures, indent=2) if args.json else format_footprint(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
