"""A thinner speech embedding distilled from Google's, judged by a wake word's misses and CPU
on Picovoice's protocol, next to Google's network, Porcupine and microWakeWord.

The experiment behind the CPU aim of the wake words (not a choice in earmark's
bundles: README, Results, says why): Google's network (the teacher) with a
fraction of the channels in every block (``--width``, default 0.5: a quarter
of the multiply-adds) learns to give the same 96 numbers every 80 ms, from
audio alone (no labels):

1. the folders given (``--speech``: speech and other sound; ``--noise``) and
   ``--conversation-minutes`` of synthesized conversation (earmark's running
   speech in espeak-ng's, flite's and festival's voices, none of the
   benchmark phrases' words) cut into 10 s pieces, each also mixed with
   noise at 0-25 dB SNR;
2. the teacher's columns of each piece;
3. the student started from the teacher's own weights, each layer keeping the
   channels that move the next layer most (``--init teacher``; ``random``:
   from scratch), and trained on random 24-column crops (mean squared error
   of the columns, each number scaled by its spread);
4. exported as an ONNX graph of the shipped graph's form (batch norm folded,
   constants as initializers), and the wake-word run (trained on Google's
   columns) exported again with the student computing them;
5. both bundles on the benchmark stream of ``wake_words.py`` (the same
   smoother, stride and stored threshold), each at the best point of its
   sweep within 1 false alarm an hour, Porcupine in the same run, then the
   CPU of both bundles and of microWakeWord's models with the audio arriving
   in 100, 320 and 640 ms blocks.

    python benchmarks/distilled_embedding.py --run runs/view-glass/run \\
        --bundle runs/view-glass/bundle --phrase view_glass --out runs/distilled \\
        --speech ../shared/data/speech_commands_v2_test ../shared/data/fsdd \\
                 ../shared/data/esc10_pieces --conversation-minutes 120

(``--student FILE`` judges a graph made before). Distil on no phrase the
wake word was trained for: a student that has heard the phrase's synthesized
takes flatters its stand-in on that phrase (README). The LibriSpeech speakers
of the benchmark stream are never distilled on. About 25 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import warnings
from pathlib import Path

import numpy as np
import onnx
import torch
import torch.nn.functional as F
from onnx import numpy_helper
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from earmark import audio
from earmark.frontend import speech_embedding as embedding
from earmark.frontend.sliding_embedding import SpeechEmbedding
from earmark.robustness.corruptions import mix_at_snr
from earmark.runtime.metadata import write_detection
from wake_words import (BLOCK_TABLE_SECONDS, BLOCKS_MS, DATA, PHRASES, best_point, build_stream,
                        earmark_block_cpu, earmark_engine, micro_wake_word_cpu,
                        porcupine_engine)

RATE = 16000
PIECE_SECONDS = 10.0
CROP_COLUMNS = 24
EPOCHS = 10
CONVERSATION_SEED = 7
#: Pieces whose activations rank the channels a student started from the teacher keeps.
IMPORTANCE_CLIPS = 16
#: Channels of the shipped network's five blocks.
CHANNELS = (24, 48, 72, 96, 96)


class FlooredLeakyReLU(nn.Module):
    """The shipped network's activation: ``max(leaky_relu(x, 0.2), -0.4)``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.clamp(F.leaky_relu(x, 0.2), min=-0.4)


def convolution(inputs: int, outputs: int, kernel: tuple[int, int],
                batch_norm: bool) -> list[nn.Module]:
    padding = (0, 1) if kernel[1] == 3 else (0, 0)        # bands padded, time never
    norm = [nn.BatchNorm2d(outputs)] if batch_norm else []
    return [nn.Conv2d(inputs, outputs, kernel, padding=padding), *norm, FlooredLeakyReLU()]


class Student(nn.Module):
    """The shipped network's layers with ``width`` of its channels: mel ``(batch, frames,
    32)`` -> ``(batch, columns, 96)``, a column every 8 frames from the first 76."""

    def __init__(self, width: float, batch_norm: bool = True):
        super().__init__()
        channels = [max(4, round(c * width)) for c in CHANNELS]

        def conv(inputs: int, outputs: int, kernel: tuple[int, int]) -> list[nn.Module]:
            return convolution(inputs, outputs, kernel, batch_norm)

        layers = (conv(1, channels[0], (3, 3)) + conv(channels[0], channels[0], (1, 3))
                  + conv(channels[0], channels[0], (3, 1)) + [nn.MaxPool2d(2)])
        for block, pool in zip(range(1, 5), [(1, 2), (2, 2), (1, 2), (2, 2)]):
            before, now = channels[block - 1], channels[block]
            layers += (conv(before, now, (1, 3)) + conv(now, now, (3, 1))
                       + conv(now, now, (1, 3)) + conv(now, now, (3, 1)))
            layers.append(nn.MaxPool2d(pool))
        layers.append(nn.Conv2d(channels[-1], embedding.DIMENSIONS, (3, 1)))
        self.net = nn.Sequential(*layers)

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        return self.net(mel[:, None])[..., 0].transpose(1, 2)


def macs_per_second(network: Student) -> float:
    """Multiply-adds of the network slid along a stream, per second of audio: each
    convolution's new outputs for 8 new mel frames, 12.5 times a second."""
    total, positions, bands = 0.0, 8.0, embedding.MEL_BANDS   # new time positions a column
    for layer in network.net:
        if isinstance(layer, nn.Conv2d):
            kernel_time, kernel_bands = layer.kernel_size
            bands = bands - kernel_bands + 1 + 2 * layer.padding[1]
            total += (positions * bands * layer.out_channels * layer.in_channels
                      * kernel_time * kernel_bands)
        elif isinstance(layer, nn.MaxPool2d):
            pool = layer.kernel_size
            pool_time, pool_bands = (pool, pool) if isinstance(pool, int) else pool
            positions, bands = positions / pool_time, bands // pool_bands
    return total * RATE / embedding.HOP_SAMPLES


def pieces(folders: list[Path], noise: np.ndarray, rng) -> np.ndarray:
    """Every file of the folders joined in a random order, cut into 10 s pieces, each also
    mixed with noise at 0-25 dB SNR."""
    files = [f for folder in folders for f in audio.find_audio_files(folder)]
    joined = np.concatenate([audio.load(f, RATE) for f in rng.permutation(files)])
    size = int(PIECE_SECONDS * RATE)
    out = []
    for start in range(0, len(joined) - size + 1, size):
        clean = joined[start:start + size]
        at = int(rng.integers(0, len(noise) - size))
        noisy = mix_at_snr(clean, noise[at:at + size], rng.uniform(0, 25))
        out += [clean, np.clip(noisy, -1, 1)]
    return np.stack(out).astype(np.float32)


def write_conversation(folder: Path, minutes: float) -> Path:
    """``minutes`` of synthesized conversation as 10-minute FLAC files in ``folder``: no word
    of the benchmark's phrases in it."""
    from earmark.wakeword.conversation import running_speech
    from earmark.wakeword.phrases import check_phrase

    folder.mkdir(parents=True, exist_ok=True)
    phrases = check_phrase(" ".join(p.replace("_", " ") for p in PHRASES))
    for index, piece in enumerate(running_speech(phrases, minutes, RATE, [], CONVERSATION_SEED,
                                                 engines=("flite", "festival"))):
        audio.write(folder / f"conversation_{index:02d}.flac", piece, RATE)
    return folder


def teacher_columns(clips: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The clips' mel frames and the shipped embedding's columns of them."""
    teacher = SpeechEmbedding(threads=2)
    mel = np.concatenate([teacher.mel(clips[i:i + 64]) for i in range(0, len(clips), 64)])
    columns = np.concatenate([teacher.embed(mel[i:i + 64]) for i in range(0, len(mel), 64)])
    return mel, columns


def distil(mel: np.ndarray, columns: np.ndarray, student: Student, epochs: int,
           peak_rate: float, rng) -> Student:
    """The student trained on the teacher's ``columns`` of the clips' ``mel``."""
    mean, spread = columns.mean((0, 1)), columns.std((0, 1)) + 1e-3
    steps_per_epoch = len(mel) * 4 // 32
    optimiser = torch.optim.AdamW(student.parameters(), peak_rate, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, peak_rate,
                                                   total_steps=epochs * steps_per_epoch)
    mel_t, target = torch.from_numpy(mel), torch.from_numpy((columns - mean) / spread)
    mean_t, spread_t = torch.from_numpy(mean), torch.from_numpy(spread)
    frames = 76 + 8 * (CROP_COLUMNS - 1)
    for epoch in range(epochs):
        student.train()
        losses = []
        for _ in range(steps_per_epoch):
            rows = rng.integers(0, len(mel), 32)
            first = rng.integers(0, columns.shape[1] - CROP_COLUMNS + 1, 32)
            x = torch.stack([mel_t[r, 8 * c:8 * c + frames] for r, c in zip(rows, first)])
            y = torch.stack([target[r, c:c + CROP_COLUMNS] for r, c in zip(rows, first)])
            loss = F.mse_loss((student(x) - mean_t) / spread_t, y)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            schedule.step()
            losses.append(loss.item())
        print(f"epoch {epoch + 1}/{epochs}: loss {np.mean(losses):.4f}", flush=True)
    return student.eval()


def convolutions(network: Student) -> list[nn.Conv2d]:
    return [layer for layer in network.net if isinstance(layer, nn.Conv2d)]


def shipped_network() -> Student:
    """The shipped network itself as a :class:`Student` of full width (its batch norm
    folded into the convolutions, as the graph holds them)."""
    graph = onnx.load(str(embedding.model_files()["embedding"])).graph
    values = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    network = Student(1.0, batch_norm=False)
    weights = [(values[n.input[1]], values[n.input[2]] if len(n.input) > 2 else
                np.zeros(values[n.input[1]].shape[0], np.float32))       # the last: no bias
               for n in graph.node if n.op_type == "Conv"]
    for conv, (weight, bias) in zip(convolutions(network), weights, strict=True):
        conv.weight.data, conv.bias.data = torch.tensor(weight), torch.tensor(bias)
    return network.eval()


def pruned_teacher(width: float, mel: np.ndarray) -> Student:
    """A student with ``width`` of the channels, started from the shipped network's own
    weights: each layer keeps the channels that move the next layer most (the channel's
    spread over ``mel`` times the next layer's weights on it); the mean of the channels
    dropped is folded into the next layer's bias."""
    teacher = shipped_network()
    layers = convolutions(teacher)
    inputs: dict[int, torch.Tensor] = {}
    hooks = [conv.register_forward_hook(
        lambda _module, given, _out, index=index: inputs.__setitem__(index, given[0]))
        for index, conv in enumerate(layers)]
    with torch.no_grad():
        teacher(torch.from_numpy(mel))
    for hook in hooks:
        hook.remove()
    student = Student(width, batch_norm=False)
    kept = torch.arange(1)
    for index, (source, target) in enumerate(zip(layers, convolutions(student))):
        weight, bias = source.weight.detach(), source.bias.detach().clone()
        dropped = torch.ones(weight.shape[1], dtype=torch.bool)
        dropped[kept] = False
        means = inputs[index].mean((0, 2, 3))
        bias += (weight[:, dropped].sum((2, 3)) * means[dropped]).sum(1)
        weight = weight[:, kept]
        if index + 1 < len(layers):
            following = layers[index + 1].weight.detach().abs().sum((0, 2, 3))
            importance = inputs[index + 1].std((0, 2, 3)) * following
            outputs = torch.sort(torch.topk(importance, target.out_channels).indices).values
        else:
            outputs = torch.arange(weight.shape[0])
        target.weight.data, target.bias.data = weight[outputs].clone(), bias[outputs].clone()
        kept = outputs
    return student


class _ShippedForm(nn.Module):
    """``input_1`` (batch, 76, 32, 1) -> (batch, 96), as ``embedding_model.onnx`` reads."""

    def __init__(self, student: Student):
        super().__init__()
        layers, folded = list(student.net), []
        while layers:
            layer = layers.pop(0)
            if isinstance(layer, nn.Conv2d) and layers and isinstance(layers[0], nn.BatchNorm2d):
                layer = fuse_conv_bn_eval(layer, layers.pop(0))
            folded.append(layer)
        self.net = nn.Sequential(*folded).eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.reshape(-1, 1, embedding.EMBEDDING_FRAMES, embedding.MEL_BANDS)
                        ).reshape(-1, embedding.DIMENSIONS)


def export_student(student: Student, path: Path) -> None:
    """``path``: the student in the shipped graph's form, its constants as initializers (as
    earmark's rewrites of the network find them)."""
    example = torch.randn(2, embedding.EMBEDDING_FRAMES, embedding.MEL_BANDS, 1)
    with warnings.catch_warnings():      # the TorchScript exporter: a graph of plain nodes
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(_ShippedForm(student), (example,), str(path),
                          input_names=["input_1"], output_names=["output"], opset_version=13,
                          dynamo=False,
                          dynamic_axes={"input_1": {0: "batch"}, "output": {0: "batch"}})
    model = onnx.load(str(path))
    for node in [n for n in model.graph.node if n.op_type == "Constant"]:
        model.graph.initializer.append(numpy_helper.from_array(
            numpy_helper.to_array(node.attribute[0].t), node.output[0]))
        model.graph.node.remove(node)
    onnx.save(model, str(path))


def convolution_parameters(path: Path) -> int:
    """Weights and biases of a graph's convolutions (batch norm folded into them)."""
    graph = onnx.load(str(path)).graph
    sizes = {t.name: int(np.prod(t.dims)) for t in graph.initializer}
    return sum(sizes[name] for node in graph.node if node.op_type == "Conv"
               for name in node.input[1:])


def prototype_bundle(run: Path, bundle: Path, student_file: Path, out: Path) -> None:
    """The run (trained on Google's network) exported with the student's graph in place of
    that network, the original bundle's streaming settings copied."""
    from earmark.export import export_run

    # earmark has no choice of embedding network in a bundle: the student stands in for the
    # shipped file while the run is exported (this process has built no stepped graph of
    # the shipped network before, so nothing cached holds its shapes).
    original = embedding.model_files
    shipped = original()
    embedding.model_files = functools.lru_cache(maxsize=1)(
        lambda: {"mel": shipped["mel"], "embedding": student_file})
    try:
        export_run(run, out)
    finally:
        embedding.model_files = original
    detection = json.loads((bundle / "earmark.json").read_text())["detection"]
    write_detection(out, detection)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, required=True, help="OUT/run of earmark wakeword")
    parser.add_argument("--bundle", type=Path, required=True, help="OUT/bundle of that run")
    parser.add_argument("--phrase", default=PHRASES[0], choices=PHRASES)
    parser.add_argument("--speech", type=Path, nargs="+",
                        help="folders of audio to distil on (no labels needed)")
    parser.add_argument("--student", type=Path,
                        help="a distilled graph made before (instead of --speech): judge it")
    parser.add_argument("--conversation-minutes", type=float, default=0.0,
                        help="synthesized conversation to distil on besides --speech "
                             "(written to OUT/conversation)")
    parser.add_argument("--noise", type=Path, default=DATA / "background_noise")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--width", type=float, default=0.5)
    parser.add_argument("--epochs", type=int, default=EPOCHS)
    parser.add_argument("--init", choices=["random", "teacher"], default="teacher",
                        help="start from random weights, or from the shipped network's own "
                             "(its channels that matter most kept)")
    args = parser.parse_args()
    if bool(args.speech) == bool(args.student):
        parser.error("give --speech folders to distil on, or --student a graph made before")
    args.out.mkdir(parents=True, exist_ok=True)
    student_file = args.student or distilled_file(args)
    prototype_bundle(args.run, args.bundle, student_file, args.out / "bundle")
    report(args)


def distilled_file(args) -> Path:
    """Steps 1-4: the student distilled and written as ``OUT/distilled_embedding.onnx``."""
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    noise = np.concatenate(audio.load_folder(args.noise, RATE, "noise"))
    folders = list(args.speech)
    if args.conversation_minutes > 0:
        folders.append(write_conversation(args.out / "conversation", args.conversation_minutes))
    clips = pieces(folders, noise, rng)
    print(f"distilling on {len(clips)} pieces of {PIECE_SECONDS:g} s "
          f"({len(clips) * PIECE_SECONDS / 3600:.1f} h, half of them noisy)", flush=True)
    mel, columns = teacher_columns(clips)
    if args.init == "teacher":
        student = pruned_teacher(args.width, mel[:IMPORTANCE_CLIPS])
        rate = 1e-3
    else:
        student, rate = Student(args.width), 3e-3
    student = distil(mel, columns, student, args.epochs, rate, rng)
    path = args.out / "distilled_embedding.onnx"
    export_student(student, path)
    print(f"student: {convolution_parameters(path):,} parameters (width {args.width:g}; the "
          f"shipped network {convolution_parameters(embedding.model_files()['embedding']):,}),"
          f" {macs_per_second(student) / 1e6:.1f} M multiply-adds a second of audio (the "
          f"shipped network's layers: {macs_per_second(Student(1.0)) / 1e6:.1f} M); {path}: "
          f"sha256 {hashlib.sha256(path.read_bytes()).hexdigest()}")
    return path


def report(args) -> None:
    """Step 5: misses within 1 false alarm an hour, then CPU by the block the audio arrives
    in, of both bundles, Porcupine and microWakeWord on the same stream."""
    stream = build_stream(args.phrase, 0)
    print(f"\nstream: {len(stream.truth)} real '{args.phrase}' recordings, "
          f"{stream.seconds / 60:.1f} min")
    porcupine = porcupine_engine(args.phrase, stream)
    bundles = {"Google's network": str(args.bundle), "distilled": str(args.out / "bundle")}
    for name, bundle in bundles.items():
        miss, alarms, threshold = best_point(earmark_engine(bundle, stream), "spans")
        print(f"earmark on {name:<17}: miss {miss:.1%} at {alarms:.2f} false alarms/h "
              f"(threshold {threshold})")
    if porcupine:
        miss, alarms, _ = best_point(porcupine, "spans")
        print(f"{'Porcupine 1.9.5':<28}: miss {miss:.1%} at {alarms:.2f} false alarms/h")
    samples = stream.samples[:RATE * BLOCK_TABLE_SECONDS]
    hours = len(samples) / RATE / 3600
    print(f"\nCPU on one thread, s per hour of audio (the stream's first "
          f"{BLOCK_TABLE_SECONDS // 60} min), by the block the audio arrives in:")
    for block_ms in BLOCKS_MS:
        ours = [earmark_block_cpu(b, samples, block_ms) / hours for b in bundles.values()]
        theirs = [c / hours for c in micro_wake_word_cpu(samples, block_ms).values()]
        peers = f", microWakeWord {min(theirs):.1f}-{max(theirs):.1f}" if theirs else ""
        print(f"  {block_ms:4d} ms: earmark on Google's network {ours[0]:.1f}, on the "
              f"distilled {ours[1]:.1f}{peers}")


if __name__ == "__main__":
    main()
