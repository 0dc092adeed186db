"""Inference from an exported bundle with onnxruntime and numpy only.

Nothing under ``earmark.runtime`` imports torch: a deployed model needs
numpy, soundfile, soxr and onnxruntime.

    >>> from earmark.runtime import Classifier
    >>> classifier = Classifier.from_bundle("bundles/keywords")
    >>> result = classifier.classify_file("clip.wav")
    >>> result.top(3)
"""

from earmark.runtime.bundle import Bundle, load_bundle
from earmark.runtime.classify import Classifier, ClipResult
from earmark.runtime.metadata import BundleMetadata, StepNetwork, StreamMetadata

__all__ = ["Bundle", "BundleMetadata", "Classifier", "ClipResult", "StepNetwork",
           "StreamMetadata", "load_bundle"]
