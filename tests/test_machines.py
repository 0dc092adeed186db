"""Synthetic machine sounds: reproducible takes, each fault measurable, MIMII-layout sets."""

from __future__ import annotations

import numpy as np
import pytest

from earmark import audio
from earmark.data.machines import FAULTS, Machine, machine_dataset, machine_sound
from earmark.data.recipes.mimii import build_mimii
from earmark.errors import ConfigError, DataError

RATE = 16000
MACHINE = Machine(rotation_hz=50.0, sample_rate=RATE)
SECONDS = 4.0


def sound(seed: int, fault: str | None = None, machine: Machine = MACHINE,
          **options) -> np.ndarray:
    return machine_sound(machine, SECONDS, np.random.default_rng(seed), fault=fault, **options)


def spectrum(samples: np.ndarray, rate: int = RATE) -> np.ndarray:
    """Mean power of 1 s Hann frames: bin ``k`` is ``k`` Hz (1 Hz resolution)."""
    frames = samples[:len(samples) // rate * rate].astype(np.float64).reshape(-1, rate)
    return np.mean(np.abs(np.fft.rfft(frames * np.hanning(rate), axis=1)) ** 2, axis=0)


def peak_near(samples: np.ndarray, hz: float, within: float = 5.0) -> int:
    power = spectrum(samples)
    low, high = int(hz - within), int(hz + within)
    return low + int(np.argmax(power[low:high + 1]))


def line_db(samples: np.ndarray, hz: float) -> float:
    """A line's power (dB), summed over the bins next to it (the speed wander smears it)."""
    power = spectrum(samples)
    centre = int(round(hz))
    return 10 * np.log10(power[centre - 2:centre + 3].sum())


def high_band(samples: np.ndarray, above_hz: float = 1000.0) -> np.ndarray:
    spectrum_ = np.fft.rfft(samples.astype(np.float64))
    spectrum_[np.fft.rfftfreq(len(samples), 1 / RATE) < above_hz] = 0
    return np.fft.irfft(spectrum_, len(samples))


def rms_db(samples: np.ndarray) -> float:
    return 10 * np.log10(np.mean(samples.astype(np.float64) ** 2))


def kurtosis(samples: np.ndarray) -> float:
    centred = samples.astype(np.float64) - samples.mean()
    return float(np.mean(centred ** 4) / np.mean(centred ** 2) ** 2)


# ---------------------------------------------------------------- the normal sound
def test_a_seed_gives_the_same_sound_and_each_take_differs():
    assert np.array_equal(sound(3), sound(3))
    assert np.array_equal(sound(3, "rattle"), sound(3, "rattle"))
    rng = np.random.default_rng(3)
    first, second = (machine_sound(MACHINE, 1.0, rng) for _ in range(2))
    assert not np.allclose(first, second, atol=1e-3)


@pytest.mark.parametrize("fault", (None,) + FAULTS)
@pytest.mark.parametrize("seconds, rate", [(1.0, 16000), (0.3217, 8000), (0.5, 44100)])
def test_output_is_finite_float32_in_range_and_of_the_asked_length(fault, seconds, rate):
    machine = Machine(sample_rate=rate)
    samples = machine_sound(machine, seconds, np.random.default_rng(0), fault=fault,
                            gain_db=30.0)            # loud enough to clip
    assert samples.dtype == np.float32 and samples.ndim == 1
    assert len(samples) == round(seconds * rate)
    assert np.isfinite(samples).all() and np.abs(samples).max() <= 1.0


def test_normal_sound_holds_the_machines_harmonic_lines_at_its_level():
    samples = sound(0)
    for order in range(1, 5):
        assert peak_near(samples, 50.0 * order, within=10) == 50 * order
    # Lines ordered as the machine's harmonics say (1, 0.5, 0.3, 0.15), each well above
    # the noise between them.
    levels = [line_db(samples, 50.0 * order) for order in range(1, 5)]
    assert levels == sorted(levels, reverse=True)
    assert levels[3] - line_db(samples, 175.0) > 20
    assert abs(rms_db(samples) - 20 * np.log10(MACHINE.nominal_rms)) < 1.0


# ---------------------------------------------------------------- faults
@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_shifted_harmonic_moves_the_lines_by_two_percent_times_severity(seed):
    assert peak_near(sound(seed), 50.0) == 50
    assert peak_near(sound(seed, "shifted_harmonic"), 50.0) in (49, 51)           # 2 %
    assert peak_near(sound(seed, "shifted_harmonic", severity=2.0), 200.0, 12) in (192, 208)


def envelope_line(samples: np.ndarray, hz: float = 50.0) -> float:
    """The high band's power envelope at ``hz`` over its median level (dB)."""
    envelope = high_band(samples) ** 2
    power = np.abs(np.fft.rfft(envelope - envelope.mean())) ** 2
    frequencies = np.fft.rfftfreq(len(envelope), 1 / RATE)
    near = power[np.abs(frequencies - hz) <= 1.0].max()
    return 10 * np.log10(near / np.median(power[(frequencies > 10) & (frequencies < 400)]))


def test_modulated_raises_the_envelope_at_the_rotation_rate():
    normal, modulated = envelope_line(sound(5)), envelope_line(sound(5, "modulated"))
    assert normal < 15 and modulated > normal + 20


def test_impacts_raise_kurtosis_and_crest_factor():
    normal, impacts = sound(6), sound(6, "impacts")
    assert kurtosis(impacts) > kurtosis(normal) + 1.5
    crest = [np.abs(x).max() / np.sqrt(np.mean(x.astype(np.float64) ** 2))
             for x in (normal, impacts)]
    assert crest[1] > 1.5 * crest[0]
    # Broadband clicks: the band above 1 kHz gains far more than the hum's band.
    assert rms_db(high_band(impacts)) > rms_db(high_band(normal)) + 6


def burstiness(samples: np.ndarray) -> float:
    """Spread of the high band's 10 ms frame energies over their mean."""
    energy = np.mean(high_band(samples)[:len(samples) // 160 * 160].reshape(-1, 160) ** 2,
                     axis=1)
    return float(energy.std() / energy.mean())


def test_rattle_makes_the_high_band_come_in_bursts():
    normal, rattle = sound(7), sound(7, "rattle")
    assert burstiness(normal) < 0.5 and burstiness(rattle) > 3 * burstiness(normal)
    assert rms_db(high_band(rattle)) > rms_db(high_band(normal)) + 6


def line_levels(samples: np.ndarray) -> np.ndarray:
    """Levels (dB) at every half order 0.5 .. 4.5 of the rotation."""
    return np.array([line_db(samples, 25.0 * half) for half in range(1, 10)])


def test_missing_harmonic_fades_a_line_or_adds_one():
    takes = [sound(seed) for seed in range(2)]
    usual = np.abs(line_levels(takes[0]) - line_levels(takes[1])).max()
    assert usual < 6                      # two normal takes: same lines, noise between
    faded = added = 0
    for seed in range(10, 18):
        change = line_levels(sound(seed, "missing_harmonic")) - line_levels(takes[0])
        assert np.abs(change).max() > 12
        faded += bool(change[1::2].min() < -12)       # whole orders 1, 2, 3, 4
        added += bool(change[0::2].max() > 12)        # half orders 0.5, 1.5, ...
    assert faded and added


def test_severity_zero_leaves_the_sound_normal():
    normal = line_levels(sound(8))
    for fault in FAULTS:
        samples = sound(8, fault, severity=0.0)
        assert np.abs(line_levels(samples) - normal).max() < 6, fault
        assert abs(kurtosis(samples) - kurtosis(sound(8))) < 0.5, fault


# ---------------------------------------------------------------- loudness, background
@pytest.mark.parametrize("gain_db", [-20.0, -6.0, 3.0])
def test_gain_db_changes_the_rms_by_that_many_db(gain_db):
    assert rms_db(sound(9, gain_db=gain_db)) - rms_db(sound(9)) == pytest.approx(gain_db,
                                                                                 abs=0.01)


def test_background_is_mixed_at_the_snr_or_its_own_level():
    background = np.random.default_rng(1).uniform(-0.3, 0.3, RATE)   # 1 s, looped
    alone = sound(10)
    mixed = sound(10, background=background, background_snr_db=10.0)
    added = mixed.astype(np.float64) - alone
    snr = 20 * np.log10(MACHINE.nominal_rms) - rms_db(added)
    assert snr == pytest.approx(10.0, abs=0.2)
    own = sound(10, background=background).astype(np.float64) - alone
    assert rms_db(own) == pytest.approx(rms_db(background), abs=0.2)
    stereo = np.stack([background, background], axis=1)
    assert np.allclose(sound(10, background=stereo, background_snr_db=10.0), mixed, atol=1e-6)
    with pytest.raises(DataError, match="silent"):
        sound(10, background=np.zeros(100), background_snr_db=0.0)


def shape_db(samples: np.ndarray) -> np.ndarray:
    """A level-normalised log spectrum in 1/6-octave bands from 30 Hz to 6 kHz."""
    power = spectrum(samples)
    edges = np.unique(np.round(30 * 2 ** (np.arange(47) / 6)).astype(int))
    bands = np.log10(np.add.reduceat(power, edges)[:-1] + 1e-20) * 10
    return bands - bands.mean()


def test_loudness_and_background_change_the_shape_less_than_a_fault():
    background = np.random.default_rng(2).standard_normal(RATE // 2) * 0.01
    reference = shape_db(sound(11))
    distance = lambda samples: np.sqrt(np.mean((shape_db(samples) - reference) ** 2))  # noqa
    quiet = max(distance(sound(12, gain_db=-18.0)),
                distance(sound(13, gain_db=6.0, background=background, background_snr_db=20.0)))
    for fault in ("shifted_harmonic", "impacts", "rattle", "missing_harmonic"):
        assert distance(sound(12, fault)) > 1.5 * quiet, fault


# ---------------------------------------------------------------- refusals
@pytest.mark.parametrize("options, words", [
    ({"seconds": 0.0}, "seconds"),
    ({"seconds": 3601.0}, "seconds"),
    ({"seconds": 1e-6}, "one sample"),
    ({"fault": "wobble"}, "shifted_harmonic, modulated, impacts, rattle, missing_harmonic"),
    ({"severity": -0.5}, "severity"),
    ({"severity": float("nan")}, "severity"),
    ({"gain_db": float("inf")}, "gain_db"),
    ({"gain_db": None}, "gain_db"),
    ({"severity": "much"}, "severity"),
    ({"background_snr_db": 500.0}, "background_snr_db"),
])
def test_bad_options_are_refused_naming_them(options, words):
    call = {"seconds": 1.0, **options}
    with pytest.raises(ConfigError, match=words):
        machine_sound(MACHINE, rng=np.random.default_rng(0), **call)


@pytest.mark.parametrize("fields, words", [
    ({"sample_rate": 100}, "sample_rate"),
    ({"rotation_hz": -1.0}, "rotation_hz"),
    ({"harmonics": ()}, "harmonics"),
    ({"harmonics": (0.0, 0.0)}, "harmonics"),
    ({"harmonics": (1.0, float("nan"))}, "harmonics"),
    ({"rotation_hz": 3000.0}, "half the sample rate"),
    ({"hum_level_db": 3.0}, "hum_level_db"),
    ({"speed_jitter": 0.5}, "speed_jitter"),
])
def test_bad_machines_are_refused_naming_the_field(fields, words):
    with pytest.raises(ConfigError, match=words):
        Machine(**fields)


def test_machine_keeps_harmonics_as_a_tuple():
    machine = Machine(harmonics=[1, 0.5])
    assert machine.harmonics == (1.0, 0.5) and hash(machine) == hash(Machine(harmonics=(1, .5)))


# ---------------------------------------------------------------- datasets
def test_machine_dataset_writes_mimii_layout_that_build_mimii_reads(tmp_path):
    machine = Machine(sample_rate=8000)
    folder = machine_dataset(tmp_path / "fan", machine, normal=6, anomalous=5, seconds=0.5,
                             seed=4)
    assert folder == tmp_path / "fan"
    normal = sorted(p.name for p in (folder / "id_00" / "normal").iterdir())
    abnormal = sorted(p.name for p in (folder / "id_00" / "abnormal").iterdir())
    assert normal == [f"{i:08d}.wav" for i in range(6)]
    assert abnormal == [f"{i:08d}.wav" for i in range(5)]
    clip = audio.load(folder / "id_00" / "abnormal" / "00000002.wav")
    assert len(clip) == 4000 and audio.info(folder / "id_00" / "normal" / "00000000.wav"
                                            ).sample_rate == 8000
    faults = (folder / "id_00" / "faults.csv").read_text().splitlines()
    assert faults[0] == "file,condition,fault" and len(faults) == 12
    assert faults[7:] == [f"abnormal/{i:08d}.wav,abnormal,{FAULTS[i]}" for i in range(5)]
    manifest = build_mimii(folder, "fan")
    labels = [row.label for row in manifest]
    assert labels.count("normal") == 6 and labels.count("anomaly") == 5
    splits = [row.split for row in manifest]
    assert splits.count("train") == 3 and splits.count("test") == 8


def test_machine_dataset_is_deterministic_and_refuses_files_it_would_not_write(tmp_path):
    options = dict(machine=Machine(sample_rate=8000), normal=3, anomalous=2, seconds=0.25,
                   seed=1, faults=("impacts", "rattle"), machine_id="id_02")
    first = machine_dataset(tmp_path / "a", **options)
    second = machine_dataset(tmp_path / "b", **options)
    files = sorted(p.relative_to(first) for p in first.rglob("*.wav"))
    assert len(files) == 5
    assert all((first / f).read_bytes() == (second / f).read_bytes() for f in files)
    machine_dataset(tmp_path / "a", **options)                  # the same set: replaced
    other = machine_dataset(tmp_path / "c", **{**options, "seed": 2})
    assert (other / files[0]).read_bytes() != (first / files[0]).read_bytes()
    with pytest.raises(DataError, match="remove"):
        machine_dataset(tmp_path / "a", **{**options, "normal": 2})


@pytest.mark.parametrize("options, words", [
    ({"normal": 0, "anomalous": 0}, "at least one"),
    ({"normal": -1}, "normal"),
    ({"faults": ("impacts", "hiss")}, "hiss"),
    ({"faults": ()}, "faults is empty"),
    ({"faults": "impacts"}, "sequence"),
    ({"machine_id": "../id_00"}, "machine_id"),
    ({"seconds": 0}, "seconds"),
])
def test_machine_dataset_refuses_bad_options(tmp_path, options, words):
    call = {"normal": 1, "anomalous": 1, "seconds": 0.1, **options}
    with pytest.raises(ConfigError, match=words):
        machine_dataset(tmp_path, Machine(sample_rate=8000), **call)
    assert not any(tmp_path.iterdir())
