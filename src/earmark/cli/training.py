"""`earmark train`, `evaluate`, `prepare`, `manifest`, `models`: from recordings to a trained run."""

from __future__ import annotations

import json
from pathlib import Path

from earmark.cli.common import (add_config_options, check_output_suffix, command,
                                load_config_from_args, progress_bars)
from earmark.data.shards import SHARD_RECORDINGS
from earmark.errors import ConfigError


def register(commands) -> None:
    _add_train(commands)
    _add_evaluate(commands)
    _add_crossval(commands)
    _add_prepare(commands)
    _add_manifest(commands)
    _add_models(commands)


def _add_train(commands) -> None:
    sub = command(commands, "train", "Train a classifier from an experiment config (on several "
                  "processes or machines when started by torchrun).",
                  "earmark train configs/keywords.toml --out runs/keywords\n"
                  "  torchrun --nproc-per-node 2 -m earmark train configs/keywords.toml "
                  "--out runs/keywords-ddp", _train)
    add_config_options(sub)
    sub.add_argument("--out", required=True, help="run folder for the model, logs and reports")
    sub.add_argument("--resume", action="store_true",
                     help="continue the run in --out from its last checkpoint")


def _train(args) -> int:
    from earmark.parallel.processes import from_environment
    from earmark.train import train

    if not from_environment().is_main:       # one voice for a torchrun job: rank 0's
        from earmark.cli import configure_logging

        args.quiet = True
        configure_logging(quiet=True)
    config = load_config_from_args(args)
    train(config, args.out, resume=args.resume, progress=progress_bars(args))
    return 0


def _add_evaluate(commands) -> None:
    sub = command(commands, "evaluate", "Evaluate a trained run on a split.",
                  "earmark evaluate runs/keywords --split test --json\n"
                  "  earmark evaluate runs/demo/run --on ../shared/data/speech_commands_v2_test\n"
                  "  earmark evaluate runs/keywords --robustness        # clean and corrupted\n"
                  "  earmark evaluate runs/keywords --robustness --bundle bundles/keywords-int8",
                  _evaluate)
    sub.add_argument("run", help="a run folder written by `earmark train`")
    sub.add_argument("--split", choices=["train", "validation", "test"],
                     help="the run's split to score (default test)")
    sub.add_argument("--json", action="store_true", help="print the report as JSON")
    sub.add_argument("--device", default="cpu", help="cpu or cuda")
    sub.add_argument("--robustness", action="store_true",
                     help="also score the split under noise (pink, babble, background) at "
                          "20/10/5/0 dB SNR, rooms (RT60 0.3/0.6/1 s), telephone, mu-law, "
                          "codecs, clipping, gain, a microphone's EQ and other rates "
                          "(needs earmark[robustness])")
    sub.add_argument("--bundle", help="with --robustness: score this exported bundle of the "
                                      "run instead of its torch model")
    sub.add_argument("--seed", type=int, default=0, help="the corruptions' seed (0)")
    sub.add_argument("--on", metavar="FOLDER",
                     help="score every recording of this folder of class folders instead of "
                          "a split (e.g. real speakers for a model trained on synthesized "
                          "speech); written as RUN/eval_on_FOLDERNAME.*")


def _evaluate(args) -> int:
    if args.on and (args.robustness or args.split):
        raise ConfigError("--on scores a folder as it is; --split and --robustness score a "
                          "split of the run: choose one")
    args.split = args.split or "test"
    if args.robustness:
        return _robustness(args)
    if args.bundle:
        raise ConfigError("--bundle goes with --robustness; to score a bundle on files, "
                          "use `earmark classify`")
    from earmark.evaluate import evaluate_folder, evaluate_run

    if args.on:
        name = "on_" + Path(args.on).resolve().name
        report = evaluate_folder(args.run, args.on, name, device=args.device,
                                 progress=progress_bars(args))
    else:
        name = args.split
        report = evaluate_run(args.run, args.split, device=args.device,
                              progress=progress_bars(args))
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        print(report.to_text())
        print(f"\nwritten: {Path(args.run) / ('eval_' + name)}.json/.txt/_confusion.png")
    return 0


def _robustness(args) -> int:
    from earmark.robustness import require_libraries

    require_libraries()
    from earmark.robustness.evaluate import evaluate_robustness, robustness_table, stem_for

    report = evaluate_robustness(args.run, args.split, bundle=args.bundle, seed=args.seed,
                                 progress=progress_bars(args))
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(robustness_table(report))
        print(f"\nwritten: {stem_for(args.run, args.split, bool(args.bundle))}.json/.txt/.png")
    return 0


def _add_crossval(commands) -> None:
    sub = command(commands, "crossval",
                  "Cross-validate a config over folds of speakers: every group tested once.",
                  "earmark crossval configs/keywords.toml --out runs/keywords-cv\n"
                  "  earmark crossval configs/gender.toml --out runs/gender-cv --robustness\n"
                  "  earmark crossval configs/keywords.toml --out runs/keywords-cv --stream",
                  _crossval)
    add_config_options(sub)
    sub.add_argument("--out", required=True, help="folder for the fold runs and the report")
    sub.add_argument("--folds", type=int, help="folds for a config split by ratio (default 5) "
                                               "or by data.folds")
    sub.add_argument("--robustness", action="store_true",
                     help="also run each fold's test split through the robustness suite")
    sub.add_argument("--stream", action="store_true",
                     help="also export each fold and score it on streams of its speakers, "
                          "as stream-test does (keyword configs)")


def _crossval(args) -> int:
    from earmark.crossval import crossval_table, cross_validate

    if args.robustness:
        from earmark.robustness import require_libraries

        require_libraries()
    if args.folds is not None and args.folds < 2:
        raise ConfigError(f"--folds {args.folds}: cross-validation needs at least 2 folds")
    report = cross_validate(load_config_from_args(args), args.out, args.folds, args.robustness,
                            progress=progress_bars(args), stream=args.stream)
    print(crossval_table(report))
    print(f"\nwritten: {args.out}/crossval.json/.txt (runs in {args.out}/fold*)")
    return 0


def _add_prepare(commands) -> None:
    sub = command(commands, "prepare",
                  "Build the manifest and splits and decode the audio cache of a config "
                  "(here, or in shards on a Ray cluster).",
                  "earmark prepare configs/keywords.toml --manifest-out manifest.csv\n"
                  "  earmark prepare configs/keywords.toml --engine ray              # local Ray\n"
                  "  earmark prepare configs/keywords.toml --engine ray --address auto  "
                  "# a running cluster", _prepare)
    add_config_options(sub)
    sub.add_argument("--manifest-out", help="also write the split manifest as CSV")
    sub.add_argument("--engine", choices=["local", "ray"], default="local",
                     help="local: this machine's threads (default); ray: one task per shard "
                          "on a Ray cluster (needs earmark[ray]; data.cache_dir on storage "
                          "every node sees)")
    sub.add_argument("--address", help="with --engine ray: the cluster to join (auto, "
                                       "HOST:6379, ray://HOST:10001); default: start Ray here")
    sub.add_argument("--cpus", type=int, help="with --engine ray and no --address: CPUs of "
                                              "the local Ray instance (default: all)")
    sub.add_argument("--shard-recordings", type=int, default=None, metavar="N",
                     help=f"with --engine ray: recordings per shard (default "
                          f"{SHARD_RECORDINGS})")


def _prepare(args) -> int:
    from earmark.data.dataset import load_manifest, open_dataset
    from earmark.data.splits import check_trainable

    check_output_suffix(args.manifest_out, "--manifest-out", (".csv",))
    config = load_config_from_args(args)
    ray_options = (args.address, args.cpus, args.shard_recordings)
    if args.engine == "local" and any(option is not None for option in ray_options):
        raise ConfigError("--address, --cpus and --shard-recordings go with --engine ray")
    manifest = load_manifest(config)
    if args.engine == "ray":
        _prepare_on_ray(config, manifest, args)
    dataset = open_dataset(config, manifest, progress=progress_bars(args))
    _print_split_table(dataset)
    if args.manifest_out:
        dataset.manifest.to_csv(args.manifest_out)
        print(f"manifest written to {args.manifest_out}")
    print(f"decoded audio in {dataset.store.folder}")
    check_trainable(dataset.manifest, dataset.labels)     # as training would refuse it
    return 0


def _prepare_on_ray(config, manifest, args) -> None:
    from earmark.data.ray_prepare import prepare_on_ray, require_ray

    require_ray()
    if args.cpus is not None and (args.cpus < 1 or args.address is not None):
        raise ConfigError(f"--cpus {args.cpus}: give at least 1, and only without --address "
                          "(a cluster has its own CPUs)")
    if args.shard_recordings is not None and args.shard_recordings < 1:
        raise ConfigError(f"--shard-recordings {args.shard_recordings}: give at least 1")
    if args.address is not None and not args.address.strip():
        raise ConfigError("--address is empty: give auto, HOST:PORT or ray://HOST:PORT")
    store = prepare_on_ray(manifest, config.data.sample_rate, config.cache_dir(),
                           config.data.skip_bad_files, args.address, args.cpus,
                           args.shard_recordings or SHARD_RECORDINGS,
                           progress=progress_bars(args))
    print(f"prepared on ray: {len(store)} recordings in "
          f"{len(getattr(store, 'shards', [store]))} shard(s)")


def _print_split_table(dataset) -> None:
    splits = ("train", "validation", "test")
    counts = {split: dataset.manifest.select(split) for split in splits}
    width = max(len(label) for label in dataset.labels) + 2
    print(f"{'class':<{width}}" + "".join(f"{s:>12}" for s in splits))
    for label in dataset.labels:
        print(f"{label:<{width}}" + "".join(
            f"{counts[s].label_counts().get(label, 0):>12}" for s in splits))
    print(f"{'groups':<{width}}" + "".join(f"{len(counts[s].groups()):>12}" for s in splits))


def _add_manifest(commands) -> None:
    sub = command(commands, "manifest",
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


def _manifest(args) -> int:
    from earmark.data.manifest import from_folder, keep_labels

    check_output_suffix(args.out, "--out", (".csv",))
    manifest = from_folder(args.root, args.group_pattern, args.label_pattern)
    if args.labels:
        manifest = keep_labels(manifest, args.labels)
    manifest.to_csv(args.out)
    print(f"{len(manifest)} recordings, {len(manifest.labels())} classes, "
          f"{len(manifest.groups())} groups -> {args.out}")
    return 0


def _add_models(commands) -> None:
    command(commands, "models", "List the model architectures.", "earmark models", _models)


def _models(args) -> int:
    from earmark.models import available_models, describe_model

    for name in available_models():
        summary, options = describe_model(name)
        print(f"{name}\n    {summary}")
        if options:
            print("    [model] options: " + ", ".join(f"{key} = {json.dumps(value)}"
                                                      for key, value in options.items()))
    return 0
