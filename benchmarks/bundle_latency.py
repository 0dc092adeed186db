"""Single-window latency of a bundle (onnxruntime, 1 thread, front-end included)
against the same trained model in torch eager (1 thread), in the same run.

    earmark train configs/keywords.toml --out runs/keywords      # once
    python benchmarks/bundle_latency.py --run runs/keywords [--bundle bundles/keywords]

The bundle is exported from the run when it does not exist yet (also as int8).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch


def _time(function, runs: int) -> np.ndarray:
    function()
    timings = []
    for _ in range(runs):
        started = time.perf_counter()
        function()
        timings.append((time.perf_counter() - started) * 1000)
    return np.asarray(timings)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", default="runs/keywords", help="a trained run folder")
    parser.add_argument("--bundle", help="its bundle (default: RUN-bundle, exported if missing)")
    parser.add_argument("--runs", type=int, default=500, help="timed inferences")
    args = parser.parse_args()
    from earmark.export import export_run
    from earmark.network import load_trained
    from earmark.runtime import load_bundle

    run = Path(args.run)
    bundles = {"float32": Path(args.bundle or f"{run}-bundle"), "int8": Path(f"{run}-bundle-int8")}
    for name, path in bundles.items():
        if not (path / "model.onnx").is_file():
            print(f"exporting {run} -> {path}")
            export_run(run, path, int8=name == "int8", progress=False)
    torch.set_num_threads(1)
    _, _, classifier = load_trained(run)
    loaded = {name: load_bundle(path, threads=1) for name, path in bundles.items()}
    window = loaded["float32"].window_samples
    clip = (0.1 * np.random.default_rng(0).standard_normal((1, window))).astype(np.float32)
    tensor = torch.from_numpy(clip)

    def eager():
        with torch.inference_mode():
            torch.softmax(classifier(tensor), dim=-1)

    results = {"torch eager": _time(eager, args.runs)}
    for name, bundle in loaded.items():
        results[f"onnxruntime {name}"] = _time(lambda b=bundle: b.predict_proba(clip), args.runs)
    reference = np.median(results["torch eager"])
    print(f"\none {window / loaded['float32'].sample_rate:.2f} s window, batch 1, 1 thread, "
          f"front-end included, {args.runs} runs")
    print(f"{'engine':<22}{'median ms':>11}{'p95 ms':>9}{'x faster than torch':>22}")
    for name, timings in results.items():
        print(f"{name:<22}{np.median(timings):>11.3f}{np.percentile(timings, 95):>9.3f}"
              f"{reference / np.median(timings):>22.1f}")


if __name__ == "__main__":
    main()
