"""The robustness suite: named corruptions at fixed severities, seeded so that every run
(and every model) hears exactly the same corrupted recordings.

| family | severities |
| --- | --- |
| pink noise, babble of other test talkers, the background recordings | 20, 10, 5, 0 dB SNR |
| reverberation (a simulated room, talker 1-3 m away) | RT60 0.3, 0.6, 1.0 s |
| telephone band (300-3400 Hz); G.711 mu-law at 8 kHz | one each |
| lossy codec (Opus 8 kbit/s, MP3 16 kbit/s) | one each |
| clipping | 6, 20 dB of overdrive |
| gain | +20, -20 dB |
| microphone (random EQ, up to 10 dB) | one |
| the device's rate (8, 44.1, 48 kHz) | one each |

Babble and background noise need recordings; without them those rows are
left out and the report says so.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from earmark.errors import DataError
from earmark.robustness import corruptions as corrupt
from earmark.robustness.codecs import through_codec
from earmark.rooms import reverberate, room_impulse

SNRS_DB = (20, 10, 5, 0)
RT60S = (0.3, 0.6, 1.0)
#: Rooms simulated per reverberation time; each recording is heard in one of them.
ROOMS_PER_TIME = 4
#: Other talkers in a babble.
BABBLE_TALKERS = 5
DEVICE_RATES = (8000, 44100, 48000)

#: A corruption: (samples, rate, rng, group of the recording) -> (samples, rate).
Apply = Callable[[np.ndarray, int, np.random.Generator, str], tuple[np.ndarray, int]]


@dataclass(frozen=True)
class Corruption:
    """One row of the suite."""

    family: str
    severity: str
    apply: Apply = field(compare=False, repr=False)

    @property
    def name(self) -> str:
        return f"{self.family} {self.severity}".strip()


@dataclass
class Sources:
    """What some corruptions mix in: other talkers (with their groups), background
    recordings; all at the recordings' rate."""

    talkers: list[tuple[np.ndarray, str]] = field(default_factory=list)
    backgrounds: list[np.ndarray] = field(default_factory=list)

    @property
    def can_babble(self) -> bool:
        """Enough talkers, and of more than one group: a recording's babble is of the
        others (a split of one speaker, such as a leave-one-speaker-out fold, has none)."""
        return (len(self.talkers) > BABBLE_TALKERS
                and len({group for _, group in self.talkers}) > 1)

    def babble(self, length: int, exclude: str, rng: np.random.Generator) -> np.ndarray:
        others = [voice for voice, group in self.talkers if group != exclude]
        if not others:
            raise DataError(f"no talker outside group {exclude!r} to make a babble of")
        chosen = rng.choice(len(others), min(BABBLE_TALKERS, len(others)), replace=False)
        return corrupt.babble([others[i] for i in chosen], length, rng)


def build_suite(rate: int, sources: Sources, seed: int = 0) -> list[Corruption]:
    """Every corruption of the table, in its order (babble and background noise only with
    recordings to mix in)."""
    suite = [*_noises(sources), *_rooms(rate, seed)]
    same = _keep_rate
    suite += [Corruption("telephone band", "300-3400 Hz",
                         same(lambda x, r, g, _: corrupt.telephone_band(x, r))),
              Corruption("mu-law", "8 kHz", lambda x, r, g, _: corrupt.mu_law(x, r)),
              Corruption("codec", "Opus 8 kbit/s",
                         same(lambda x, r, g, _: through_codec(x, r, "opus", 8000))),
              Corruption("codec", "MP3 16 kbit/s",
                         same(lambda x, r, g, _: through_codec(x, r, "mp3", 16000)))]
    suite += [Corruption("clipping", f"{db} dB", same(_bound(corrupt.clip, db)))
              for db in (6, 20)]
    suite += [Corruption("gain", f"{db:+d} dB", same(_bound(corrupt.gain, db)))
              for db in (20, -20)]
    suite.append(Corruption("microphone", "random EQ",
                            same(lambda x, r, g, _: corrupt.microphone(x, r, g))))
    suite += [Corruption("device rate", f"{new / 1000:g} kHz", _rate(new))
              for new in DEVICE_RATES if new != rate]
    return suite


def _keep_rate(function: Callable) -> Apply:
    return lambda samples, rate, rng, group: (function(samples, rate, rng, group), rate)


def _bound(function: Callable, value: float) -> Callable:
    return lambda samples, rate, rng, group: function(samples, value)


def _rate(new_rate: int) -> Apply:
    return lambda samples, rate, rng, group: corrupt.at_rate(samples, rate, new_rate)


def _noises(sources: Sources) -> list[Corruption]:
    makers: dict[str, Callable] = {
        "pink noise": lambda x, rng, group: corrupt.pink_noise(len(x), rng)}
    if sources.can_babble:
        makers["babble"] = lambda x, rng, group: sources.babble(len(x), group, rng)
    if sources.backgrounds:
        makers["background"] = lambda x, rng, group: corrupt.fit_length(
            sources.backgrounds[int(rng.integers(len(sources.backgrounds)))], len(x), rng)
    return [Corruption(family, f"{snr} dB SNR", _keep_rate(_noisy(make, snr)))
            for family, make in makers.items() for snr in SNRS_DB]


def _noisy(make: Callable, snr: float) -> Callable:
    return lambda samples, rate, rng, group: corrupt.mix_at_snr(
        samples, make(samples, rng, group), snr)


def _rooms(rate: int, seed: int) -> list[Corruption]:
    suite = []
    for rt60 in RT60S:
        rng = np.random.default_rng([seed, int(rt60 * 1000)])
        bank = [room_impulse(rate, rt60, float(rng.uniform(1.0, 3.0)), rng)
                for _ in range(ROOMS_PER_TIME)]
        suite.append(Corruption("reverberation", f"RT60 {rt60:g} s", _keep_rate(
            lambda x, r, g, _, bank=bank: reverberate(x, bank[int(g.integers(len(bank)))]))))
    return suite


def missing_families(sources: Sources) -> list[str]:
    """The noise families left out for want of recordings (babble: of other talkers)."""
    missing = [] if sources.can_babble else ["babble"]
    return missing + ([] if sources.backgrounds else ["background"])
