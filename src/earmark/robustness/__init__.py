"""How a model holds up away from its test split's conditions: noise, rooms, telephone
lines, codecs, clipping, loudness, microphones and other sample rates.

``corruptions.py`` (numpy and scipy: each corruption of a recording),
``codecs.py`` (a lossy codec at a low bitrate, through PyAV), ``suite.py``
(the named corruptions at their fixed severities, seeded), ``judges.py``
(a trained run or an exported bundle judging one recording), ``evaluate.py``
(the test split scored clean and under every corruption; table, JSON, PNG).
Needs the ``robustness`` extra (``pip install earmark[robustness]``).
"""

from __future__ import annotations

import importlib.util

from earmark.errors import ConfigError

#: What the suite imports beyond earmark's training dependencies.
LIBRARIES = ("scipy", "pyroomacoustics", "av")


def require_libraries() -> None:
    """ConfigError naming what to install when a library of the suite is missing."""
    missing = [name for name in LIBRARIES if importlib.util.find_spec(name) is None]
    if missing:
        raise ConfigError(f"the robustness suite needs {', '.join(missing)}: "
                          "pip install 'earmark[robustness]'")
