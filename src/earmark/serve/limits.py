"""What one server accepts: upload sizes and lengths, stream blocks, how many streams."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from earmark.errors import ConfigError


@dataclass(frozen=True)
class ServeLimits:
    """Bounds that keep one bad or greedy client from taking the server down."""

    max_upload_bytes: int = 50 * 1024 * 1024     #: a bigger upload gets 413
    max_upload_seconds: float = 600.0            #: a longer recording gets 413
    max_block_seconds: float = 1.0               #: a bigger websocket block closes the stream
    max_streams: int = 64                        #: streams beyond this are refused (1013)
    idle_seconds: float = 30.0                   #: a silent websocket is closed
    classify_workers: int = 2                    #: uploads judged at once; the rest wait

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            if not value > 0:
                raise ConfigError(f"serve limit {name} must be > 0, got {value}")

    def max_block_bytes(self, sample_rate: int, sample_bytes: int) -> int:
        return max(4096, int(self.max_block_seconds * sample_rate) * sample_bytes)
