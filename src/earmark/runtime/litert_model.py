"""LiteRT (TensorFlow Lite) models at work, without torch: scores, latency, tensor arena.

Two interpreters that are not earmark's: ``ai-edge-litert`` (the LiteRT runtime
for phones and Linux boards) runs a ``.tflite`` file on windows and times it;
``tflite-micro``'s Python runtime (the TFLite-Micro C++ interpreter that
microcontrollers run) proves the file runs there and finds the smallest
tensor arena it allocates in. Both come with ``pip install earmark[edge]``.

Quantized inputs and outputs are handled here: a float window is quantized
with the input's scale and zero point, an int8 output dequantized, so every
model answers in probabilities.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from earmark.errors import ConfigError
from earmark.native_output import LITERT_CHATTER, quiet_stderr, without_chatter
from earmark.runtime.footprint import call_milliseconds

#: The largest tensor arena searched for (bytes).
MAX_ARENA = 1 << 25


def require_litert():
    """The LiteRT interpreter class, or a ConfigError that says how to install it."""
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError as error:
        raise ConfigError("LiteRT models need the edge extra: pip install 'earmark[edge]'") \
            from error
    return Interpreter


@dataclass
class LiteRTModel:
    """A ``.tflite`` model in the LiteRT interpreter, batch 1."""

    path: Path
    interpreter: object
    input: dict
    output: dict

    @classmethod
    def load(cls, path: str | os.PathLike, threads: int = 1) -> LiteRTModel:
        interpreter = require_litert()(model_path=str(path), num_threads=threads)
        with without_chatter(LITERT_CHATTER):
            interpreter.allocate_tensors()
        return cls(Path(path), interpreter, interpreter.get_input_details()[0],
                   interpreter.get_output_details()[0])

    def __call__(self, example: np.ndarray) -> np.ndarray:
        """One input (without the batch axis) -> float scores."""
        self.interpreter.set_tensor(self.input["index"],
                                    quantize(example[None], self.input))
        self.interpreter.invoke()
        return dequantize(self.interpreter.get_tensor(self.output["index"])[0], self.output)

    def predict(self, examples: np.ndarray) -> np.ndarray:
        """Scores of each example, one call each."""
        return np.stack([self(example) for example in examples])

    def latency_ms(self, example: np.ndarray, runs: int = 100) -> float:
        """Median milliseconds per call on ``example``."""
        return float(np.median(call_milliseconds(lambda: self(example), runs)))

    def io_description(self) -> dict:
        """Shapes, types and quantization of the input and the output."""
        return {name: {"shape": [int(n) for n in details["shape"]],
                       "dtype": np.dtype(details["dtype"]).name,
                       "scale": float(details["quantization"][0]),
                       "zero_point": int(details["quantization"][1])}
                for name, details in (("input", self.input), ("output", self.output))}


def litert_footprint(path: str | os.PathLike, runs: int = 200) -> dict:
    """What a ``.tflite`` file costs: flash (its bytes), the TFLite-Micro tensor arena
    (RAM), and the LiteRT latency of one call on one thread.

    Raises
    ------
    ConfigError
        When the file is missing or not a model LiteRT loads.
    """
    path = Path(path)
    if not path.is_file():
        what = "a folder" if path.is_dir() else "no such file"
        raise ConfigError(f"{path}: {what}; give a .tflite file written by "
                          "`earmark export --target litert`")
    try:
        model = LiteRTModel.load(path)
    except (ValueError, RuntimeError) as error:   # not a flatbuffer; a graph that cannot run
        raise ConfigError(f"{path}: not a LiteRT model LiteRT can load ({error})") from error
    example = np.zeros([int(n) for n in model.input["shape"][1:]], dtype=np.float32)
    return {"model": str(path), "flash_bytes": path.stat().st_size,
            "tensor_arena_bytes": tensor_arena_bytes(path.read_bytes()),
            "latency_ms_median": model.latency_ms(example, runs), **model.io_description()}


def format_litert_footprint(figures: dict) -> str:
    """A short human-readable table."""
    arena = figures["tensor_arena_bytes"]
    rows = [("model", figures["model"]),
            ("flash (file size)", f"{figures['flash_bytes']:,} bytes"),
            ("tensor arena (TFLite-Micro)", f"{arena:,} bytes" if arena else
             "not measured (pip install tflite-micro)"),
            ("input", f"{figures['input']['dtype']} {figures['input']['shape']}"),
            ("output", f"{figures['output']['dtype']} {figures['output']['shape']}"),
            ("latency, LiteRT, 1 thread", f"{figures['latency_ms_median']:.3f} ms")]
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"{name:<{width}}  {value}" for name, value in rows)


def quantize(values: np.ndarray, details: dict) -> np.ndarray:
    """Float values in the tensor's type (quantized with its scale and zero point)."""
    dtype = np.dtype(details["dtype"])
    if dtype.kind == "f":
        return values.astype(dtype)
    scale, zero_point = details["quantization"]
    limits = np.iinfo(dtype)
    return np.clip(np.round(values / scale) + zero_point, limits.min, limits.max).astype(dtype)


def dequantize(values: np.ndarray, details: dict) -> np.ndarray:
    """The tensor's values as float32."""
    if np.dtype(details["dtype"]).kind == "f":
        return values.astype(np.float32)
    scale, zero_point = details["quantization"]
    return ((values.astype(np.float32) - zero_point) * scale).astype(np.float32)


def tensor_arena_bytes(model: bytes) -> int | None:
    """The smallest tensor arena (to 16 bytes) in which TFLite-Micro allocates and runs
    ``model``; None without ``tflite-micro``.

    The search runs in a child process: TFLite-Micro's Python runtime can crash
    (not fail) at some arena sizes a model with resource variables does not fit
    in; a crash counts as "does not fit" and the search goes on in a new child.

    Raises
    ------
    ConfigError
        When TFLite-Micro cannot run the model in :data:`MAX_ARENA` bytes (an
        operator it lacks, say), with its message.
    """
    try:
        import tflite_micro  # noqa: F401  (the child imports it)
    except ImportError:
        return None
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "model.tflite"
        path.write_bytes(model)
        low, high = 0, MAX_ARENA
        for _ in range(_MAX_CHILDREN):
            low, high, problem = _search_in_child(path, low, high)
            if problem is None:
                return high
            if problem:
                raise ConfigError(f"TFLite-Micro cannot run this model: {problem}")
    raise ConfigError("TFLite-Micro crashed on every arena size tried for this model")


#: Children started for one arena search before giving up (each crash starts one),
#: and the seconds one may take.
_MAX_CHILDREN, _CHILD_SECONDS = 8, 300


def _search_in_child(path: Path, low: int, high: int) -> tuple[int, int, str | None]:
    """Go on with the binary search in a child; (low, high, problem): problem is None when
    the search ended, "" when the child crashed mid-way, else why the model cannot run."""
    try:
        child = subprocess.run(
            [sys.executable, "-c", "from earmark.runtime.litert_model import "
             "arena_search_child; arena_search_child()", str(path), str(low), str(high)],
            capture_output=True, text=True, timeout=_CHILD_SECONDS)
    except subprocess.TimeoutExpired:
        return low, high, f"one arena search took over {_CHILD_SECONDS} s"
    trying = None
    for line in child.stdout.splitlines():
        word, _, value = line.partition(" ")
        if word == "try":
            trying = int(value)
        elif word == "fits":
            high, trying = int(value), None
        elif word == "fails":
            low, trying = int(value), None
        elif word == "unusable":
            return low, high, value
    if child.returncode == 0:
        return low, high, None
    if trying is None or trying >= MAX_ARENA:     # not a size: the model itself
        return low, high, (f"it crashed (exit {child.returncode}): "
                           f"{child.stderr.strip()[-300:] or 'no message'}")
    return max(low, trying), high, ""             # it crashed on this size: too small


def arena_search_child() -> None:
    """In the child: the binary search over arena sizes, each step printed before and after
    it (``try N``, ``fits N`` / ``fails N``), so a crash tells the parent where."""
    from tflite_micro.python.tflite_micro import runtime

    path, low, high = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    model = Path(path).read_bytes()
    if high == MAX_ARENA and low == 0:
        print(f"try {high}", flush=True)
        runs, problem = _runs_in(runtime, model, high)
        if not runs:
            print(f"unusable {problem}", flush=True)
            return
        print(f"fits {high}", flush=True)
    while high - low > 16:
        middle = (low + high) // 2
        print(f"try {middle}", flush=True)
        runs = _runs_in(runtime, model, middle)[0]
        print(f"{'fits' if runs else 'fails'} {middle}", flush=True)
        low, high = (low, middle) if runs else (middle, high)


def _runs_in(runtime, model: bytes, arena: int) -> tuple[bool, str]:
    """Whether the model allocates and runs once in ``arena`` bytes (C-level errors of
    the failed tries are kept off the terminal)."""
    with quiet_stderr():
        try:
            interpreter = runtime.Interpreter.from_bytes(model, arena_size=arena)
            details = interpreter.get_input_details(0)
            interpreter.set_input(np.zeros(details["shape"], dtype=details["dtype"]), 0)
            interpreter.invoke()
            interpreter.get_output(0)
        except (RuntimeError, ValueError) as error:
            return False, str(error)
    return True, ""
