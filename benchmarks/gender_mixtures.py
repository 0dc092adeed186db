"""Judging a whole recording: speaker gender of 60-second mixtures of unseen speakers.

For each fold of configs/gender.toml (trained beforehand, see the config),
exports the run, builds 60 s mixtures from that fold's TEST speakers only
(same-gender speakers one after another with 0-5 s pauses, and all at once),
and judges each mixture by the mean of its 2 s windows' probabilities.

    for f in 0 1 2 3 4; do earmark train configs/gender.toml --out runs/gender-fold$f \\
        --set data.fold=$f; done
    python benchmarks/gender_mixtures.py --runs runs/gender-fold --count 10

(configs/gender.toml's header shows how to add training mixtures of each
fold's own training speakers; then pass --runs runs/gender-mix-fold.)
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from earmark.config import load_config
from earmark.data.manifest import from_csv
from earmark.data.mixtures import MixSpec, make_mixtures
from earmark.export import export_run
from earmark.run_folder import RunFolder
from earmark.runtime import Classifier


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", default="runs/gender-fold", help="run folders, + fold number")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--count", type=int, default=10, help="mixtures per fold and mode")
    args = parser.parse_args()
    totals = {}
    with tempfile.TemporaryDirectory() as work:
        for fold in range(args.folds):
            run = Path(f"{args.runs}{fold}")
            bundle = Path(work) / f"bundle{fold}"
            export_run(run, bundle, progress=False)
            classifier = Classifier.from_bundle(bundle)
            config = load_config(RunFolder(run).config)
            manifest = from_csv(RunFolder(run).manifest)        # the run's own split
            for mode in ("sequential", "simultaneous"):
                spec = MixSpec(duration_s=60.0, mode=mode, sample_rate=config.data.sample_rate,
                               seed=fold)
                made = make_mixtures(manifest, "test", args.count, spec,
                                     Path(work) / f"{mode}{fold}")
                right = sum(classifier.classify_file(row.path).label == row.label
                            for row in made)
                correct, count = totals.get(mode, (0, 0))
                totals[mode] = (correct + right, count + len(made))
                print(f"fold {fold} {mode:>12}: {right}/{len(made)}")
    for mode, (correct, count) in totals.items():
        print(f"{mode} 60 s mixtures of unseen speakers: {correct}/{count} = "
              f"{correct / count:.1%}")


if __name__ == "__main__":
    main()
