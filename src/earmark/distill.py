"""Knowledge distillation: a larger teacher trained first, the small model taught by it.

``train.teacher`` names a TOML file that holds a teacher's ``[features]``,
``[model]``, ``[augment]`` and ``[train]`` (say, a network on the pretrained
speech embedding, too costly to deploy). Its ``[data]`` is always the
student's, so the teacher learns from the same training recordings and is
never shown a speaker the student is tested on: every cross-validation fold
trains its own teacher. Training trains the teacher into ``RUN/teacher/``
first (an ordinary run folder, reused once finished), then the student.

The teacher hears each training window as it was recorded (in evaluation mode),
while the student hears it augmented (noise, rooms, gain ...): the student learns
to give, through the corruption, the judgement the teacher gives of the clean
sound. Its targets become::

    (1 - distill_weight) * label targets + distill_weight * softmax(teacher logits / T)

with ``T = train.distill_temperature``. Blending the targets keeps one loss,
so class weights, label smoothing and mixup apply to the blend unchanged.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

from earmark.config import ExperimentConfig, from_dict, resolved_data
from earmark.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


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
    if "data" in raw:
        raise ConfigError(f"{path}: a teacher learns from the student's [data] (same "
                          "recordings, same split); leave [data] out of the teacher's file")
    teacher = from_dict(raw, base_dir=str(path.parent), source=str(path))
    if teacher.train.teacher:
        raise ConfigError(f"{path}: a teacher cannot have a teacher of its own (train.teacher "
                          f"= {teacher.train.teacher!r}); train that one as the teacher instead")
    return dataclasses.replace(teacher, data=resolved_data(config))


def blend_targets(label_targets: torch.Tensor, teacher_logits: torch.Tensor, weight: float,
                  temperature: float) -> torch.Tensor:
    """The student's soft targets: the label targets and the teacher's softened scores,
    mixed by ``weight`` (0 = labels only, 1 = teacher only). Rows still sum to one."""
    teacher = F.softmax(teacher_logits.float() / temperature, dim=1)
    return (1.0 - weight) * label_targets + weight * teacher


class Teacher:
    """A trained network that scores the student's training windows (no gradients)."""

    def __init__(self, classifier: torch.nn.Module, labels: list[str], weight: float,
                 temperature: float):
        self.classifier = classifier.eval()
        self.labels = labels             #: its classes, in its output order
        self.weight = weight
        self.temperature = temperature

    def targets(self, waveform: torch.Tensor, label_targets: torch.Tensor) -> torch.Tensor:
        """:func:`blend_targets` for a batch of training windows as recorded."""
        with torch.no_grad():
            logits = self.classifier(waveform)
        return blend_targets(label_targets, logits, self.weight, self.temperature)
