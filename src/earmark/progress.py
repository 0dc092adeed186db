"""Progress reporting for long library calls, without a display of its own.

Library functions take ``progress``: a :class:`Progress` (the CLI passes one
that draws tqdm bars), or ``None``/``False`` for silence. They call it as a
context manager around a loop and advance it by steps::

    with progress(total=len(files), description="decoding", unit="file") as advance:
        for file in files:
            ...
            advance(1)
"""

from __future__ import annotations

import contextlib
from typing import Callable, ContextManager, Iterator, Protocol, Union


class Progress(Protocol):
    def __call__(self, total: int, description: str,
                 unit: str) -> ContextManager[Callable[[int], None]]: ...


@contextlib.contextmanager
def silent(total: int, description: str, unit: str) -> Iterator[Callable[[int], None]]:
    """A progress that shows nothing."""
    yield lambda steps: None


#: A :class:`Progress`, or ``None``/``False`` for silence.
ProgressLike = Union[Progress, None, bool]


def as_progress(progress: ProgressLike) -> Progress:
    """``progress`` itself when it is callable, :func:`silent` for ``None`` or ``False``.

    ``True`` is refused: the library draws nothing itself, so a caller that
    wants bars passes one (the CLI's tqdm progress).
    """
    if progress is True:
        raise TypeError("progress=True draws nothing: pass a Progress (such as the CLI's "
                        "tqdm bars) or None")
    return progress if callable(progress) else silent
