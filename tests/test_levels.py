"""Sound levels (earmark.levels): A-weighting against IEC 61672-1, LAeq, LAFmax, LA10/LA90."""

from __future__ import annotations

import math

import numpy as np
import pytest

from earmark.levels import (LevelMeter, a_weighting_db, a_weighting_taps, energy_mean,
                            exceeded_level, measure_file)

#: IEC 61672-1 Table 3, A-weighting (dB, given to 0.1 dB) at the nominal frequencies.
IEC_A_WEIGHTING = {31.5: -39.4, 63: -26.2, 100: -19.1, 125: -16.1, 250: -8.6, 500: -3.2,
                   1000: 0.0, 2000: 1.2, 4000: 1.0, 8000: -1.1, 10000: -2.5, 16000: -6.6}


def exact(nominal: float) -> float:
    """The standard's exact frequency behind a nominal one: ``1000 * 10 ** (n / 10)`` Hz
    (31.62 Hz for "31.5", 15849 Hz for "16000"), as IEC 61672-1 Annex E computes its table."""
    return 1000.0 * 10 ** (round(10 * math.log10(nominal / 1000)) / 10)


def sine(frequency: float, seconds: float, rate: int, amplitude: float) -> np.ndarray:
    t = np.arange(int(round(seconds * rate))) / rate
    return amplitude * np.sin(2 * np.pi * frequency * t)


def measured(samples: np.ndarray, rate: int, blocks: int = 7, **options):
    meter = LevelMeter(rate, **options)
    for block in np.array_split(samples, blocks):
        meter.push(block)
    return meter.finish()


def test_the_formula_matches_the_iec_table_within_a_tenth_of_a_db():
    deviations = {f: float(a_weighting_db(exact(f))) - table
                  for f, table in IEC_A_WEIGHTING.items()}
    assert max(abs(d) for d in deviations.values()) < 0.1, deviations
    assert max(abs(d) for d in deviations.values()) < 0.05       # the table's own rounding
    assert a_weighting_db(1000.0) == pytest.approx(0.0, abs=1e-12)
    assert a_weighting_db(0.0) == -np.inf


@pytest.mark.parametrize("rate", [16000, 48000])
def test_tones_through_the_meter_read_the_table(rate):
    """The FIR the meter runs, not just the formula: each tone's LAeq is its level plus the
    table's weighting, within 0.1 dB, up to the rate's Nyquist."""
    errors = {}
    for nominal, table in IEC_A_WEIGHTING.items():
        if exact(nominal) >= 0.45 * rate:
            continue
        seconds = measured(sine(exact(nominal), 4.0, rate, 0.1), rate)
        laeq = seconds.summary(1, 3).laeq                    # away from the edges
        errors[nominal] = laeq - (-20.0 + table)
    assert max(abs(e) for e in errors.values()) < 0.1, errors


def test_the_fir_is_exact_at_1_khz_and_zero_phase():
    taps = a_weighting_taps(16000)
    assert len(taps) == 8192
    np.testing.assert_allclose(taps[1:], taps[1:][::-1], atol=1e-15)   # symmetric about N/2
    response = np.abs(np.sum(taps * np.exp(-2j * np.pi * 1000 * np.arange(len(taps)) / 16000)))
    assert 20 * np.log10(response) == pytest.approx(0.0, abs=0.001)


def test_laeq_of_a_tone_of_known_level():
    rate = 44100
    samples = sine(1000.0, 5.0, rate, 10 ** (-23.0 / 20))      # -23 dBFS (full-scale sine: 0)
    seconds = measured(samples, rate)
    assert seconds.summary().laeq == pytest.approx(-23.0, abs=0.1)
    assert seconds.summary(1, 4).laeq == pytest.approx(-23.0, abs=0.01)
    np.testing.assert_allclose(seconds.laeq[1:4], -23.0, atol=0.01)
    calibrated = measured(samples, rate, calibration_db=117.0)     # 94 dB SPL
    assert calibrated.summary(1, 4).laeq == pytest.approx(94.0, abs=0.01)
    assert calibrated.summary(1, 4).lafmax - seconds.summary(1, 4).lafmax == \
        pytest.approx(117.0, abs=1e-9)


def test_a_full_scale_sine_reads_0_dbfs_and_silence_stays_finite():
    rate = 8000
    assert measured(sine(1000.0, 3.0, rate, 1.0), rate).laeq[1] == pytest.approx(0.0, abs=0.01)
    quiet = measured(np.zeros(2 * rate), rate)
    assert np.isfinite(quiet.laeq).all() and quiet.laeq.max() < -190


def test_lafmax_follows_the_iec_tone_burst_response():
    """A 200 ms burst reads 10 lg(1 - e^(-T/tau)) = -0.90 dB below the steady tone under
    F weighting (IEC 61672-1's tone-burst response: about -1 dB)."""
    rate = 16000
    steady = measured(sine(1000.0, 3.0, rate, 0.1), rate).summary(1, 3).lafmax
    burst = np.zeros(3 * rate)
    burst[rate:rate + rate // 5] = sine(1000.0, 0.2, rate, 0.1)
    reading = measured(burst, rate).summary().lafmax
    expected = 10 * math.log10(1 - math.exp(-0.2 / 0.125))
    assert reading - steady == pytest.approx(expected, abs=0.1)


def test_la10_and_la90_of_a_known_mixture():
    """Quiet noise 90 % of the time and loud bursts (20 dB up) 10 %: LA90 is the quiet
    level, LA10 sits at the bursts' edge, LAeq is the energy mean of the two."""
    rate, rng = 16000, np.random.default_rng(0)
    samples = 0.01 * rng.standard_normal(100 * rate)
    for second in range(0, 100, 10):                  # 1 s of every 10 is 20 dB louder
        samples[(second + 5) * rate:(second + 6) * rate] *= 10
    seconds = measured(samples, rate, blocks=13)
    quiet = energy_mean(np.delete(seconds.laeq, np.arange(5, 100, 10)))
    loud = energy_mean(seconds.laeq[5::10])
    span = seconds.summary()
    assert loud - quiet == pytest.approx(20.0, abs=0.1)
    assert span.la90 == pytest.approx(quiet, abs=0.5)
    assert quiet + 1 < span.la10 < loud
    assert span.laeq == pytest.approx(10 * math.log10(0.9 * 10 ** (quiet / 10)
                                                      + 0.1 * 10 ** (loud / 10)), abs=0.05)
    assert span.lafmax == pytest.approx(loud, abs=1.0)


def test_blocks_of_any_size_give_the_same_levels():
    rate, rng = 8000, np.random.default_rng(1)
    samples = 0.1 * rng.standard_normal(int(7.3 * rate))
    one = measured(samples, rate, blocks=1)
    many = measured(samples, rate, blocks=97)
    assert len(one.laeq) == 8 and one.durations[-1] == pytest.approx(0.3)
    for name in ("laeq", "lafmax", "durations"):
        np.testing.assert_allclose(getattr(many, name), getattr(one, name), atol=1e-9)
    np.testing.assert_allclose(many.fast, one.fast, atol=1e-9)
    assert np.isnan(one.fast[-1, 3:]).all() and not np.isnan(one.fast[-1, :3]).any()


def test_energy_mean_and_exceeded_levels():
    assert energy_mean(np.array([60.0, 60.0])) == pytest.approx(60.0)
    assert energy_mean(np.array([60.0, 70.0]), np.array([1.0, 0.0])) == pytest.approx(60.0)
    assert energy_mean(np.array([-200.0, 0.0])) == pytest.approx(10 * math.log10(0.5))
    assert math.isnan(energy_mean(np.array([])))
    levels = np.arange(100.0)
    assert exceeded_level(levels, 10) == pytest.approx(89.1)
    assert exceeded_level(levels, 90) == pytest.approx(9.9)


def test_measure_file_reads_in_blocks(tmp_path):
    import soundfile

    rate = 16000
    soundfile.write(tmp_path / "tone.flac", sine(500.0, 4.0, rate, 0.5).astype(np.float32),
                    rate)
    seconds = measure_file(tmp_path / "tone.flac", block_seconds=0.7)
    assert seconds.sample_rate == rate and len(seconds.laeq) == 4
    expected = 20 * math.log10(0.5) + float(a_weighting_db(500.0))
    assert seconds.summary(1, 3).laeq == pytest.approx(expected, abs=0.05)
