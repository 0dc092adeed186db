"""What one server accepts: upload sizes, lengths and decoded sizes, how long a body may
take, stream blocks, how many streams and uploads at once.

Every limit is checked (through :mod:`earmark.input_limits`) when a
:class:`ServeLimits` is made, against a floor of "more than nothing" and a
ceiling past which the limit would no longer protect anything.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

from earmark.input_limits import check_count, check_positive

#: The largest value each limit may take (a bigger one protects nothing).
CEILINGS = {
    "max_upload_bytes": 16 * 2 ** 30,
    "max_upload_seconds": 86_400.0,
    "max_upload_samples": 2 ** 32,
    "max_block_seconds": 60.0,
    "max_streams": 10_000,
    "idle_seconds": 86_400.0,
    "classify_workers": 64,
    "uploads_in_flight": 10_000,
    "uploads_receiving": 10_000,
    "body_timeout_seconds": 86_400.0,
    "body_stall_seconds": 3_600.0,
}

#: Bytes of one decoded sample (float32).
DECODED_SAMPLE_BYTES = 4


@dataclass(frozen=True)
class ServeLimits:
    """Bounds that keep one bad or greedy client from taking the server down."""

    max_upload_bytes: int = 50 * 1024 * 1024     #: a bigger upload gets 413
    max_upload_seconds: float = 600.0            #: a longer recording gets 413
    #: frames x channels a file's header may declare (256 MiB as float32); more gets 413
    max_upload_samples: int = 64 * 2 ** 20
    max_block_seconds: float = 1.0               #: a bigger websocket block closes the stream
    max_streams: int = 64                        #: streams beyond this are refused (1013)
    idle_seconds: float = 30.0                   #: a silent websocket is closed
    classify_workers: int = 2                    #: uploads judged at once; the rest wait
    uploads_in_flight: int = 8                   #: uploads received and waiting or judged; more get 503
    uploads_receiving: int = 32                  #: bodies arriving at once; more get 503
    body_timeout_seconds: float = 60.0           #: a body must arrive whole within this, or 408
    body_stall_seconds: float = 10.0             #: a body silent for this long gets 408

    def __post_init__(self) -> None:
        for field in fields(self):
            value, ceiling = getattr(self, field.name), CEILINGS[field.name]
            what = f"serve limit {field.name}"
            if field.type == "int":
                check_count(value, what, 1, ceiling)
            else:
                check_positive(value, what, ceiling)

    @property
    def upload_size_text(self) -> str:
        """The upload limit for people: ``50 MiB``, ``400 KB``."""
        return size_text(self.max_upload_bytes)

    @property
    def decoded_size_text(self) -> str:
        """The decoded-size budget for people: ``67.1 M samples (256 MiB as float32)``."""
        return (f"{count_text(self.max_upload_samples)} samples "
                f"({size_text(self.max_upload_samples * DECODED_SAMPLE_BYTES)} as float32)")

    @property
    def busy_retry_seconds(self) -> int:
        """What ``Retry-After`` says when the receiving slots are full: a stalled body
        is dropped within ``body_stall_seconds``."""
        return max(1, math.ceil(min(self.body_stall_seconds, self.body_timeout_seconds)))

    def max_block_bytes(self, sample_rate: int, sample_bytes: int) -> int:
        return max(4096, int(self.max_block_seconds * sample_rate) * sample_bytes)


def count_text(count: float) -> str:
    """A count for people: ``67.1 M``, ``1.81 G``, ``96 k``."""
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if count >= scale:
            return f"{count / scale:.3g} {unit}"
    return f"{count:g}"


def size_text(size: float) -> str:
    """A byte count for people: ``50 MiB``, ``1.5 GiB``, ``400 KB``."""
    if size >= 2 ** 30:
        return f"{size / 2 ** 30:.3g} GiB"
    return f"{size / 2 ** 20:.3g} MiB" if size >= 2 ** 20 else f"{size / 1000:.3g} KB"
