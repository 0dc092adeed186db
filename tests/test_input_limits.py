"""The shared checks of numbers from outside: rates, channels, durations, thresholds."""

from __future__ import annotations

import math

import pytest

from earmark.errors import ConfigError
from earmark.input_limits import (check_channels, check_count, check_positive,
                                  check_probability, check_sample_rate)


@pytest.mark.parametrize("rate", [8000, 16000, 44100.0, "48000", 384000, 1000])
def test_real_rates_pass(rate):
    assert check_sample_rate(rate, "--rate") == int(float(rate))


@pytest.mark.parametrize("rate", [0, -16000, 1, 16, 999, 384001, 16000.5, math.nan, math.inf,
                                  "fast", None, True])
def test_absurd_rates_are_refused_naming_the_option(rate):
    with pytest.raises(ConfigError, match="--rate"):
        check_sample_rate(rate, "--rate")


@pytest.mark.parametrize("channels", [0, -1, 65, 1.5, "two"])
def test_channel_counts_outside_1_to_64_are_refused(channels):
    with pytest.raises(ConfigError, match="--channels"):
        check_channels(channels, "--channels")


def test_positive_and_count_and_probability():
    assert check_positive("20", "--stride-ms") == 20.0
    assert check_count(3, "--min-count") == 3
    assert check_probability(1, "--threshold") == 1.0
    for bad in (0, -1, math.nan):
        with pytest.raises(ConfigError, match="--stride-ms"):
            check_positive(bad, "--stride-ms")
    with pytest.raises(ConfigError, match="at most 10"):
        check_positive(11, "--seconds", maximum=10)
    with pytest.raises(ConfigError, match="--min-count"):
        check_count(0, "--min-count")
    for bad in (0, 2, -0.5):
        with pytest.raises(ConfigError, match="--threshold"):
            check_probability(bad, "--threshold")
