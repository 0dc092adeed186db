"""How well does a keyword model trained on synthesized speech recognise real people?

In one run, on the speaker-disjoint test split of configs/keywords.toml
(real Speech Commands recordings):
  1. train on synthesized words only (espeak-ng voices), evaluate on the real test split;
  2. train on the real training split plus the synthesized words, evaluate the same way;
and print both next to the real-only reference (trained here too unless --reference RUN).

    python benchmarks/synth_transfer.py [--takes 150] [--epochs 40] [--reference runs/keywords]
    python benchmarks/synth_transfer.py --voices flite festival --recorded-sound --only-synthesized
    python benchmarks/synth_transfer.py --features embedding --recorded-sound --only-synthesized

``--voices`` adds flite's and festival's voices (tools/install-voices) to
espeak-ng's; ``--recorded-sound`` trains with the augmentation of ``earmark
wakeword`` (rooms, microphone EQ, band limits, noise at SNR, other talkers,
clipping, level, speed, vocal tract length) instead of the config's.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import tempfile
from pathlib import Path

import torch

from earmark.augment import RECORDED_SOUND
from earmark.config import from_dict, load_config, to_dict
from earmark.data.dataset import load_manifest, open_dataset
from earmark.data.synth_keywords import SPEECH_COMMANDS_WORDS, KeywordSynthesis, synthesize_keywords
from earmark.data.voices import available_voices
from earmark.evaluate import predict, report_for
from earmark.frontend.speech_embedding import WORD_WINDOW_SECONDS
from earmark.network import load_trained
from earmark.train import train

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "keywords.toml"


def real_test_accuracy(run_dir: Path, real_config) -> float:
    """Accuracy of a run's model on the real keyword test split (in the run's window)."""
    trained, labels, classifier = load_trained(run_dir)
    real_config = dataclasses.replace(real_config, data=dataclasses.replace(
        real_config.data, clip_seconds=trained.data.clip_seconds))
    dataset = open_dataset(real_config, load_manifest(real_config), progress=False)
    if labels != dataset.labels:
        raise SystemExit(f"label mismatch: {labels} vs {dataset.labels}")
    indices = dataset.indices("test")
    predictions = predict(classifier, dataset, indices, real_config, torch.device("cpu"))
    return report_for(predictions, dataset).accuracy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--takes", type=int, default=150, help="synthesized takes per word")
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--reference", help="an existing real-only run of configs/keywords.toml")
    parser.add_argument("--work", help="folder for the data and runs (default: temporary)")
    parser.add_argument("--voices", nargs="*", default=[], choices=["flite", "festival"])
    parser.add_argument("--recorded-sound", action="store_true",
                        help="train with earmark wakeword's augmentation")
    parser.add_argument("--features", choices=["config", "embedding"], default="config",
                        help="embedding: the pretrained speech embedding with a small model "
                             "on top (pip install -e '.[wakeword]') instead of the config's "
                             "log-mel DS-CNN")
    parser.add_argument("--only-synthesized", action="store_true",
                        help="train only the synthesized-only model")
    args = parser.parse_args()
    work = Path(args.work or tempfile.mkdtemp(prefix="earmark-transfer-"))
    real = load_config(CONFIG)
    noise = real.resolve(real.augment.noise_dir)
    synthesize_keywords(KeywordSynthesis(words=SPEECH_COMMANDS_WORDS, takes_per_word=args.takes,
                                         noise_dir=noise, seed=1,
                                         extra_voices=tuple(available_voices(tuple(args.voices)))),
                        work / "synth", progress=False)
    synth_csv = str(work / "synth" / "manifest.csv")
    base = to_dict(real)
    base["train"]["epochs"] = args.epochs
    if args.recorded_sound:
        base["augment"].update(RECORDED_SOUND, noise_dir=real.augment.noise_dir)
    if args.features == "embedding":
        base.update(features={"kind": "embedding"}, model={"name": "embedding_mlp"})
        base["augment"].update(frequency_warp=[1.0, 1.0], time_masks=0, freq_masks=0)
        base["data"]["clip_seconds"] = WORD_WINDOW_SECONDS   # each word inside 1.5 s
    synth_only = json.loads(json.dumps(base))
    synth_only["data"].update(root="", csv=synth_csv, group_pattern="auto",
                              ratios=[0.9, 0.1, 0.0])
    mixed = json.loads(json.dumps(base))
    mixed["data"]["extra_train"] = [synth_csv]
    runs = {"synthesized only": (synth_only, work / "synth-only"),
            "real + synthesized": (mixed, work / "mixed")}
    if args.only_synthesized:
        runs.pop("real + synthesized")
    results = {}
    if args.reference:
        results["real only (reference)"] = real_test_accuracy(Path(args.reference), real)
    elif not args.only_synthesized:
        runs = {"real only (reference)": (base, work / "real-only"), **runs}
    for name, (raw, run_dir) in runs.items():
        config = from_dict(raw, base_dir=real.base_dir)
        train(config, run_dir, progress=False)
        results[name] = real_test_accuracy(run_dir, real)
    print(f"\nreal Speech Commands test split (speaker-disjoint), {args.takes} synthesized "
          f"takes per word, {args.epochs} epochs:")
    reference = results.get("real only (reference)")
    for name, accuracy in results.items():
        versus = "" if reference is None else f"   ({accuracy - reference:+.1%} vs real only)"
        print(f"  {name:<24} {accuracy:7.1%}{versus}")


if __name__ == "__main__":
    main()
