"""Knowledge distillation: a larger teacher trained first, the small model taught by it.

``train.teacher`` names a TOML file that holds a teacher's ``[features]``,
``[model]``, ``[augment]`` and ``[train]`` (say, a network on the pretrained
speech embedding, too costly to deploy). Its ``[data]`` is always the
student's, so the teacher learns from the same training recordings and is
never shown a speaker the student is tested on: every cross-validation fold
trains its own teacher. The one thing a teacher may change is the window it
hears (``[data] clip_seconds``, at least the student's): the student's window
centred in a longer one, the way a clip shorter than a window is placed (the
speech embedding hears a one-second word far better inside two seconds, where
its 0.78 s columns can each take in the whole word). Training trains the
teacher into ``RUN/teacher/`` first (an ordinary run folder, reused once
finished), then the student.

The teacher hears each training window as it was recorded (in evaluation mode),
while the student hears it augmented (noise, rooms, gain ...): the student learns
to give, through the corruption, the judgement the teacher gives of the clean
sound. The student's loss (Hinton et al., 2015)::

    (1 - distill_weight) * CE(labels, student)
        + distill_weight * T^2 * CE(softmax(teacher / T), softmax(student / T))

with ``T = train.distill_temperature``: the softened scores carry which wrong
classes the teacher finds close, while the student's own scores (at T = 1, as
deployed) stay as sharp as the labels make them. Class weights weigh both terms;
mixup blends the teacher's scores with the same pairs as the labels.
"""

from __future__ import annotations

import dataclasses
import sys
from collections import OrderedDict
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F

from earmark.config import ExperimentConfig, from_dict, resolved_data
from earmark.data.manifest import Row
from earmark.errors import ConfigError, DataError
from earmark.network import build_classifier
from earmark.windowing import window_starts

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

#: Training windows whose teacher scores are kept (12 classes: about 10 MB).
REMEMBERED_WINDOWS = 200_000


def teacher_config(config: ExperimentConfig) -> ExperimentConfig | None:
    """The teacher's experiment: its own file's sections with the student's ``[data]``;
    ``None`` when ``train.teacher`` is not set.

    Raises
    ------
    ConfigError
        When the file is missing or not valid TOML, holds a ``[data]`` section (the
        data is the student's), or names a teacher of its own.
    """
    if not config.train.teacher:
        return None
    path = Path(config.resolve(config.train.teacher))
    where = f"train.teacher = {config.train.teacher!r}"
    if not path.is_file():
        raise ConfigError(f"{where}: no such file ({path}); give a TOML file with the "
                          "teacher's [features], [model], [augment] and [train]")
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise ConfigError(f"{path}: the teacher's config is not valid TOML: {error}") from error
    own_data = raw.get("data", {})
    if not isinstance(own_data, dict) or set(own_data) - {"clip_seconds"}:
        raise ConfigError(f"{path}: a teacher learns from the student's [data] (same "
                          "recordings, same split); its [data] may only set clip_seconds "
                          "(a longer window it hears, the student's in its middle)")
    teacher = from_dict(raw, base_dir=str(path.parent), source=str(path))
    if teacher.train.teacher:
        raise ConfigError(f"{path}: a teacher cannot have a teacher of its own (train.teacher "
                          f"= {teacher.train.teacher!r}); train that one as the teacher instead")
    window = teacher.data.clip_seconds if "clip_seconds" in own_data else config.data.clip_seconds
    if window < config.data.clip_seconds:
        raise ConfigError(f"{path}: [data] clip_seconds = {window} is shorter than the "
                          f"student's window ({config.data.clip_seconds} s); a teacher hears "
                          "at least what the student hears")
    teacher = dataclasses.replace(
        teacher, data=dataclasses.replace(resolved_data(config), clip_seconds=window))
    try:
        build_classifier(teacher, 2)
    except ConfigError as error:
        raise ConfigError(f"{path} (the teacher): {error}") from error
    return teacher


def check_split(teacher_rows: list[Row], student_rows: list[Row], teacher: str) -> None:
    """Refuse a teacher that trained on a recording the student validates or tests on
    (say, a teacher added on ``--resume`` after the recordings changed)."""
    def key(row: Row) -> tuple:
        return row.path, row.start, row.end

    held_out = {key(row) for row in student_rows if row.split != "train"}
    heard = [row.path for row in teacher_rows if row.split == "train" and key(row) in held_out]
    if heard:
        raise DataError(f"{teacher}: the teacher trained on {len(heard)} recording(s) the run "
                        f"holds out for validation or test (such as {heard[0]}); remove the "
                        "teacher folder to train it again on the run's split")


def centred(waveform: torch.Tensor, window: int) -> torch.Tensor:
    """A batch of windows ``(batch, samples)`` in the middle of longer ones of ``window``
    samples, zeros around them, where :func:`earmark.windowing.window_starts` places a
    recording shorter than a window; unchanged when ``window`` is not longer."""
    length = waveform.shape[-1]
    if window <= length:
        return waveform
    before = -int(window_starts(length, window, window)[0])
    return F.pad(waveform, (before, window - length - before))


def softened(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """Scores at a temperature: ``softmax(logits / T)``; a higher T spreads them."""
    return F.softmax(logits.float() / temperature, dim=1)


def distillation_loss(label_loss: torch.Tensor, logits: torch.Tensor,
                      teacher_scores: torch.Tensor, weight: float, temperature: float,
                      cross_entropy: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
                      ) -> torch.Tensor:
    """The student's loss from its loss on the labels and the teacher's softened scores.

    ``cross_entropy(logits, soft_targets)`` is the loss the labels use (with its class
    weights); the teacher's term is scaled by ``T^2`` so that its gradients keep their
    size whatever the temperature.
    """
    if weight == 0.0:
        return label_loss
    taught = cross_entropy(logits / temperature, teacher_scores)
    return (1.0 - weight) * label_loss + weight * temperature ** 2 * taught


class Teacher:
    """A trained network that scores the student's training windows (no gradients).

    Its scores of a window as recorded never change, so they are kept by the window's
    ``(recording, start)`` (up to :data:`REMEMBERED_WINDOWS` of them, oldest first out):
    a dataset of clips no longer than the window is heard by the teacher once, not once
    an epoch. A teacher with a longer ``window`` (samples) hears the student's windows
    in the middle of its own, silence around them.
    """

    def __init__(self, classifier: torch.nn.Module, labels: list[str], weight: float,
                 temperature: float, window: int = 0):
        self.classifier = classifier.eval()
        self.labels = labels             #: its classes, in its output order
        self.weight = weight
        self.temperature = temperature
        self.window = window             #: samples it hears (0: the student's)
        self._remembered: OrderedDict[tuple[int, int], torch.Tensor] = OrderedDict()

    def scores(self, waveform: torch.Tensor,
               windows: list[tuple[int, int]] | None = None) -> torch.Tensor:
        """Its softened scores of a batch of training windows as recorded; ``windows``
        names them (``(recording, start)``) so that each is scored once."""
        if windows is None:
            return self._score(waveform)
        unheard = [row for row, window in enumerate(windows)
                   if window not in self._remembered]
        if unheard:
            for row, scores in zip(unheard, self._score(waveform[unheard])):
                self._remember(windows[row], scores)
        return torch.stack([self._remembered[window] for window in windows])

    def _score(self, waveform: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return softened(self.classifier(centred(waveform, self.window)), self.temperature)

    def _remember(self, window: tuple[int, int], scores: torch.Tensor) -> None:
        self._remembered[window] = scores
        if len(self._remembered) > REMEMBERED_WINDOWS:
            self._remembered.popitem(last=False)

    def loss(self, label_loss: torch.Tensor, logits: torch.Tensor, scores: torch.Tensor,
             cross_entropy: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
             ) -> torch.Tensor:
        """:func:`distillation_loss` with this teacher's weight and temperature."""
        return distillation_loss(label_loss, logits, scores, self.weight, self.temperature,
                                 cross_entropy)
