"""A keyword model on the edge: the LiteRT int8 files next to the float ONNX bundle, on the
run's *test* speakers (export chose the int8 settings on validation).

Exports RUN with `--target litert --int8` (unless --bundle names one already
exported), then scores every test recording of the run's manifest (one window,
padded as training pads) with the float ONNX bundle (onnxruntime) and the LiteRT
files (LiteRT interpreter, one thread): accuracy with a 95% Wilson interval,
agreement with the bundle, size and latency per window, and the TFLite-Micro
tensor arena of the microcontroller model.

    python benchmarks/litert_keywords.py --run runs/keywords
    python benchmarks/litert_keywords.py --run runs/keywords --bundle bundles/keywords-edge
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np

from earmark import audio
from earmark.data.manifest import from_csv
from earmark.metrics.classification import wilson_interval
from earmark.network import load_trained
from earmark.run_folder import RunFolder
from earmark.runtime import load_bundle
from earmark.runtime.litert_model import LiteRTModel


def test_windows(run: Path, rate: int, window: int) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """The first window of every test recording (zero-padded) and its class id."""
    labels = RunFolder(run).read_labels()
    rows = [row for row in from_csv(RunFolder(run).manifest) if row.split == "test"]
    windows = np.zeros((len(rows), window), dtype=np.float32)
    for number, row in enumerate(rows):
        clip = audio.load(row.path, rate)[:window]
        windows[number, :len(clip)] = clip
    return windows, np.array([labels.index(row.label) for row in rows]), labels


def line(name: str, scores: np.ndarray, targets: np.ndarray, reference: np.ndarray,
         size: int, latency: float) -> str:
    right = int((scores.argmax(1) == targets).sum())
    low, high = wilson_interval(right, len(targets))
    agree = float((scores.argmax(1) == reference.argmax(1)).mean())
    return (f"{name:<22}{right / len(targets):>9.1%}  [{low:.1%}-{high:.1%}]{agree:>9.3f}"
            f"{size / 1024:>9.1f}{latency:>10.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", required=True, help="a keyword run folder")
    parser.add_argument("--bundle", help="its `export --target litert --int8` folder")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(args.bundle) if args.bundle else Path(scratch) / "edge"
        if not args.bundle:
            from earmark.export.litert import export_litert

            export_litert(args.run, folder, int8=True)
        figures = json.loads((folder / "litert" / "litert.json").read_text())
        bundle = load_bundle(folder, threads=1)
        windows, targets, _ = test_windows(Path(args.run), bundle.sample_rate,
                                           bundle.window_samples)
        reference = bundle.predict_proba(windows)
        _, _, classifier = load_trained(args.run)
        import torch

        with torch.no_grad():
            features = classifier.frontend(torch.from_numpy(windows)).numpy()
        print(f"{len(targets)} test recordings of {args.run}")
        print(f"{'model':<22}{'accuracy':>9}  {'95% interval':<15}{'agrees':>9}{'KiB':>9}"
              f"{'ms/window':>10}")
        print(line("ONNX bundle (float)", reference, targets, reference,
                   figures["onnx"]["size_bytes"], figures["onnx"]["latency_ms"]))
        for name, inputs in (("model.tflite", windows), ("network_int8.tflite", features)):
            model = LiteRTModel.load(folder / "litert" / name)
            print(line(name, model.predict(inputs), targets, reference,
                       figures[name]["size_bytes"], figures[name]["latency_ms"]))
        print(f"TFLite-Micro tensor arena of network_int8.tflite: "
              f"{figures['tensor_arena_bytes']:,} bytes")


if __name__ == "__main__":
    main()
