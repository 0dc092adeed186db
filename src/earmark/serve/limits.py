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
    uploads_in_flight: int = 8                   #: uploads received or waiting; more get 503

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            if not value > 0:
                raise ConfigError(f"serve limit {name} must be > 0, got {value}")

    @property
    def upload_size_text(self) -> str:
        """The upload limit for people: ``50 MiB``, ``400 KB``."""
        size = self.max_upload_bytes
        return f"{size / 2 ** 20:.3g} MiB" if size >= 2 ** 20 else f"{size / 1000:.3g} KB"

    def max_block_bytes(self, sample_rate: int, sample_bytes: int) -> int:
        return max(4096, int(self.max_block_seconds * sample_rate) * sample_bytes)
