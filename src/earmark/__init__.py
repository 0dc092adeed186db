"""earmark: train, evaluate and deploy audio classifiers.

The package is a pipeline; each stage is a module or sub-package:

    audio -> data (manifest, splits, cache) -> features -> models
          -> train -> evaluate -> export -> runtime -> cli

``earmark.runtime`` never imports torch, so a deployed model needs only
numpy, soundfile, soxr and onnxruntime.
"""

__version__ = "0.1.0"

from earmark.errors import AudioError, ConfigError, DataError, EarmarkError

__all__ = ["AudioError", "ConfigError", "DataError", "EarmarkError", "__version__"]
