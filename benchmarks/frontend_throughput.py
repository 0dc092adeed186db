"""Front-end throughput: earmark (torch and onnxruntime) against librosa.

Times 1 s clips at 16 kHz through two settings, all in the same run:

- log-mel, 40 bands, 30 ms window / 10 ms hop;
- MFCC, 10 coefficients of 40 bands, 40 ms window / 20 ms hop;

each computed by librosa one clip at a time, by librosa on a (batch,
samples) array, by :class:`earmark.frontend.module.FrontEnd` in torch (batched, all
threads) and by the same front-end exported to ONNX and run in onnxruntime.
Prints clips per second, the ratio of each earmark path to both librosa
paths, and the largest difference from librosa (a sanity check that both
compute the same thing).

    python benchmarks/frontend_throughput.py --clips 2000

A timing benchmark, not a test: figures depend on the machine and its load.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
import warnings
from typing import Callable

import numpy as np
import torch

from earmark.config import FeatureConfig
from earmark.frontend.module import FrontEnd

SAMPLE_RATE = 16000

SETTINGS = {
    "logmel 40 (30/10 ms)": FeatureConfig(kind="logmel", window_ms=30.0, hop_ms=10.0,
                                          n_mels=40),
    "mfcc 10 (40/20 ms)": FeatureConfig(kind="mfcc", window_ms=40.0, hop_ms=20.0,
                                        n_mels=40, n_mfcc=10),
}


def parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clips", type=int, default=2000,
                        help="1 s clips to process per method (default: 2000)")
    parser.add_argument("--batch-size", type=int, default=250,
                        help="clips per batch for the batched methods (default: 250)")
    parser.add_argument("--threads", type=int, default=0,
                        help="torch / onnxruntime threads (default: 0 = all cores)")
    parser.add_argument("--rounds", type=int, default=4,
                        help="split the clips into this many timed rounds and report "
                             "the fastest (default: 4)")
    parser.add_argument("--no-onnx", action="store_true",
                        help="skip the ONNX export and onnxruntime timing")
    return parser.parse_args()


def make_clips(count: int) -> np.ndarray:
    """Noise plus tones, float32 (count, 16000), fixed seed."""
    rng = np.random.default_rng(0)
    time_axis = np.arange(SAMPLE_RATE) / SAMPLE_RATE
    tones = np.sin(2 * np.pi * rng.uniform(100, 4000, (count, 1)) * time_axis)
    return (0.3 * tones + 0.05 * rng.standard_normal((count, SAMPLE_RATE))).astype(np.float32)


def clips_per_second(run: Callable[[np.ndarray], np.ndarray], clips: np.ndarray,
                     batch_size: int, rounds: int) -> tuple[float, np.ndarray]:
    """Best throughput of ``run`` over ``rounds`` rounds, and its first output.

    The clips are split into rounds and the fastest round counts: on a shared
    machine a burst of someone else's work then spoils one round, not the figure.
    """
    first = run(clips[:batch_size])                   # warm-up (allocations, caches)
    best = 0.0
    for part in np.array_split(clips, rounds):
        start = time.perf_counter()
        for index in range(0, len(part), batch_size):
            run(part[index:index + batch_size])
        best = max(best, len(part) / (time.perf_counter() - start))
    return best, first


def librosa_function(config: FeatureConfig, front_end: FrontEnd) -> Callable:
    """librosa's front-end on the same settings; accepts (samples,) or (batch, samples)."""
    import librosa

    def features(clips: np.ndarray) -> np.ndarray:
        mel = librosa.feature.melspectrogram(
            y=clips, sr=SAMPLE_RATE, n_fft=front_end.n_fft, hop_length=front_end.hop_length,
            win_length=front_end.window_length, window="hann", center=config.center,
            pad_mode="reflect", power=2.0, n_mels=config.n_mels, fmin=config.fmin,
            fmax=config.fmax or SAMPLE_RATE / 2)
        log_mel = librosa.power_to_db(mel, ref=1.0, amin=config.log_floor, top_db=None)
        if config.kind == "mfcc":
            return librosa.feature.mfcc(S=log_mel, n_mfcc=config.n_mfcc, dct_type=2,
                                        norm="ortho")
        return log_mel

    return features


def one_at_a_time(function: Callable) -> Callable:
    return lambda clips: np.stack([function(clip) for clip in clips])


def torch_function(front_end: FrontEnd) -> Callable:
    def features(clips: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return front_end(torch.from_numpy(clips))[:, 0].numpy()

    return features


def onnx_function(front_end: FrontEnd, folder: str, threads: int) -> Callable:
    import onnxruntime

    path = os.path.join(folder, "front_end.onnx")
    example = torch.from_numpy(make_clips(2))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(front_end, (example,), path, dynamo=True, external_data=False,
                          input_names=["waveform"], output_names=["features"],
                          dynamic_shapes={"waveform": {0: torch.export.Dim("batch")}},
                          verbose=False)
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    session = onnxruntime.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    return lambda clips: session.run(None, {"waveform": clips})[0][:, 0]


def main() -> None:
    arguments = parse_arguments()
    threads = arguments.threads or os.cpu_count() or 1
    torch.set_num_threads(threads)
    clips = make_clips(arguments.clips)
    batch = arguments.batch_size
    rounds = max(1, min(arguments.rounds, arguments.clips // batch))
    print(f"{arguments.clips} clips of 1 s at {SAMPLE_RATE} Hz, batches of {batch}, "
          f"{threads} thread(s), best of {rounds} rounds, torch {torch.__version__}\n")
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for name, config in SETTINGS.items():
            front_end = FrontEnd(config, SAMPLE_RATE).eval()
            librosa_features = librosa_function(config, front_end)
            single, reference = clips_per_second(one_at_a_time(librosa_features), clips,
                                                 batch, rounds)
            batched, _ = clips_per_second(librosa_features, clips, batch, rounds)
            methods = [("librosa, one clip at a time", single, reference),
                       ("librosa, batched", batched, reference)]
            rate, output = clips_per_second(torch_function(front_end), clips, batch, rounds)
            methods.append(("earmark torch, batched", rate, output))
            if not arguments.no_onnx:
                rate, output = clips_per_second(
                    onnx_function(front_end, folder, threads), clips, batch, rounds)
                methods.append(("earmark onnxruntime, batched", rate, output))
            for method, rate, output in methods:
                difference = float(np.abs(output - reference).max())
                rows.append((name, method, rate, rate / single, rate / batched, difference))
    print_table(rows)


def print_table(rows: list[tuple]) -> None:
    header = ("setting", "method", "clips/s", "x librosa 1-clip", "x librosa batched",
              "max |diff|")
    widths = [22, 30, 9, 17, 18, 10]
    print("  ".join(h.ljust(w) for h, w in zip(header, widths)))
    print("  ".join("-" * w for w in widths))
    for setting, method, rate, single_ratio, batched_ratio, difference in rows:
        cells = [setting, method, f"{rate:9.0f}", f"{single_ratio:17.2f}",
                 f"{batched_ratio:18.2f}", f"{difference:10.1e}"]
        print("  ".join(c.ljust(w) for c, w in zip(cells, widths)))
    print("\nx = clips/s divided by librosa's clips/s on the same setting in this run; "
          "max |diff| in dB (MFCC units) against librosa on the first batch.")


if __name__ == "__main__":
    main()
