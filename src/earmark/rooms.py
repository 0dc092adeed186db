"""Reverberation: recordings played in rooms simulated by pyroomacoustics (image source
method in a shoebox room, absorption from Sabine's formula for the reverberation time asked),
for training augmentation (:mod:`earmark.augment`) and the robustness suite. pyroomacoustics
and scipy come with the ``robustness`` extra and are imported only when a room is built.

The image source method's decay is not exactly Sabine's, so a room is built
once more with the time asked scaled by how far the first one's measured RT60
(T30, from the impulse response) fell from it.
"""

from __future__ import annotations

import numpy as np

from earmark.errors import ConfigError

#: The range of room sizes drawn (length, width, height; metres).
SMALLEST_ROOM, LARGEST_ROOM = (4.0, 3.0, 2.5), (9.0, 7.0, 3.5)


def room_impulse(rate: int, rt60: float, distance: float,
                 rng: np.random.Generator) -> np.ndarray:
    """The impulse response from a talker to a microphone ``distance`` metres away in a
    random room whose reverberation time is about ``rt60`` seconds (peak 1)."""
    try:
        import pyroomacoustics
    except ImportError as error:
        raise ConfigError("simulated rooms need pyroomacoustics: pip install "
                          "'earmark[robustness]' (or train without rooms: "
                          "augment.reverb_probability = 0)") from error

    size = rng.uniform(SMALLEST_ROOM, LARGEST_ROOM)
    if distance > 0.8 * size[0]:
        raise ConfigError(f"a source {distance} m from the microphone does not fit rooms "
                          f"{size[0]:.1f} m long; give a distance under {0.8 * SMALLEST_ROOM[0]} m")
    source = np.array([0.1 * size[0], rng.uniform(0.3, 0.7) * size[1], 1.6])
    microphone = source + np.array([distance, 0.0, -0.4])
    asked = rt60
    for _ in range(2):
        absorption, order = pyroomacoustics.inverse_sabine(asked, size)
        room = pyroomacoustics.ShoeBox(size, fs=rate, max_order=order,
                                       materials=pyroomacoustics.Material(absorption))
        room.add_source(source)
        room.add_microphone(microphone)
        room.compute_rir()
        response = np.asarray(room.rir[0][0], dtype=np.float64)
        asked *= rt60 / measured_rt60(response, rate)
    return (response / np.max(np.abs(response))).astype(np.float32)


def measured_rt60(response: np.ndarray, rate: int) -> float:
    """The reverberation time of an impulse response: T30 from Schroeder's backward
    integration (the decay from -5 to -35 dB, extrapolated to 60 dB)."""
    import pyroomacoustics

    return float(pyroomacoustics.experimental.measure_rt60(response, fs=rate, decay_db=30))


def reverberate(samples: np.ndarray, response: np.ndarray) -> np.ndarray:
    """``samples`` heard through ``response``, as long as they were (the tail past the end
    is cut, as a recording that stops), at their original power."""
    from scipy import signal

    wet = signal.fftconvolve(np.asarray(samples, np.float64), response)[:len(samples)]
    before, after = float(np.mean(np.square(samples, dtype=np.float64))), float(np.mean(wet * wet))
    scale = np.sqrt(before / after) if after > 0 else 0.0
    return (wet * scale).astype(np.float32)
