"""The one place that says which numbers earmark accepts from outside.

Rates, channel counts, durations, thresholds: whether they come from a
command-line option, a websocket query, a file header or a Python call, they
are checked here, so ``listen``, ``serve``, the runtime and the websocket
refuse the same values with the same words. Every check names what it
checked (``"--rate"``, ``"the rate query parameter"``, ``"clip.wav's header"``)
and says what is allowed. Standard library only.
"""

from __future__ import annotations

import math
import os
from typing import Any

from earmark.errors import ConfigError

#: Audio rates earmark takes as input, in Hz: telephone speech is 8 kHz, studio
#: audio up to 384 kHz; below 1 kHz nothing a model hears is left.
MIN_SAMPLE_RATE = 1_000
MAX_SAMPLE_RATE = 384_000
#: Channels an input may have (they are mixed down).
MAX_CHANNELS = 64
#: The longest stride a stream engine takes between two model runs, in ms.
MAX_STRIDE_MS = 60_000


def check_sample_rate(value: Any, what: str) -> int:
    """``value`` as a rate in Hz between :data:`MIN_SAMPLE_RATE` and :data:`MAX_SAMPLE_RATE`."""
    rate = _integer(value, what)
    if not MIN_SAMPLE_RATE <= rate <= MAX_SAMPLE_RATE:
        raise ConfigError(f"{what}: a sample rate of {value} Hz is outside what earmark "
                          f"accepts ({MIN_SAMPLE_RATE} to {MAX_SAMPLE_RATE} Hz); give the "
                          "rate the audio was recorded at")
    return rate


def check_channels(value: Any, what: str) -> int:
    """``value`` as a channel count from 1 to :data:`MAX_CHANNELS`."""
    channels = _integer(value, what)
    if not 1 <= channels <= MAX_CHANNELS:
        raise ConfigError(f"{what}: {value} channels is outside 1 to {MAX_CHANNELS}; give "
                          "the number of interleaved channels in the audio")
    return channels


def check_positive(value: Any, what: str, maximum: float | None = None) -> float:
    """``value`` as a finite number above 0 (and at most ``maximum``)."""
    number = _number(value, what)
    if not number > 0 or (maximum is not None and number > maximum):
        allowed = f"above 0 and at most {maximum:g}" if maximum is not None else "above 0"
        raise ConfigError(f"{what} must be {allowed}, got {value}")
    return number


def check_count(value: Any, what: str, minimum: int = 1, maximum: int | None = None) -> int:
    """``value`` as a whole number from ``minimum`` (to ``maximum``)."""
    count = _integer(value, what)
    if count < minimum or (maximum is not None and count > maximum):
        allowed = f"from {minimum} to {maximum}" if maximum is not None else f">= {minimum}"
        raise ConfigError(f"{what} must be a whole number {allowed}, got {value}")
    return count


def check_threads(value: Any, what: str = "threads") -> int:
    """onnxruntime's thread count: 0 (its own choice) up to four per core of this machine
    (more only slows it down: 400 took ten times as long as the default)."""
    return check_count(value, what, 0, 4 * (os.cpu_count() or 1))


def check_non_negative(value: Any, what: str, maximum: float | None = None) -> float:
    """``value`` as a finite number >= 0 (and at most ``maximum``)."""
    number = _number(value, what)
    if not number >= 0 or (maximum is not None and number > maximum):
        allowed = f"from 0 to {maximum:g}" if maximum is not None else ">= 0"
        raise ConfigError(f"{what} must be {allowed}, got {value}")
    return number


def check_fraction(value: Any, what: str) -> float:
    """``value`` as a number in [0, 1] (a score threshold that may also be 0)."""
    number = _number(value, what)
    if not 0 <= number <= 1:
        raise ConfigError(f"{what} must be a score from 0 to 1, got {value}")
    return number


def check_stride_ms(value: Any, what: str) -> float:
    """``value`` as a stream stride in ms: above 0 and at most :data:`MAX_STRIDE_MS`."""
    return check_positive(value, what, maximum=MAX_STRIDE_MS)


def check_probability(value: Any, what: str) -> float:
    """``value`` as a score threshold in (0, 1]."""
    number = _number(value, what)
    if not 0 < number <= 1:
        raise ConfigError(f"{what} must be a probability in (0, 1], got {value}")
    return number


def _number(value: Any, what: str) -> float:
    if isinstance(value, bool):
        raise ConfigError(f"{what} must be a number, got {value!r}")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{what} must be a number, got {value!r}") from None
    if not math.isfinite(number):
        raise ConfigError(f"{what} must be a finite number, got {value!r}")
    return number


def _integer(value: Any, what: str) -> int:
    number = _number(value, what)
    if number != int(number):
        raise ConfigError(f"{what} must be a whole number, got {value!r}")
    return int(number)
