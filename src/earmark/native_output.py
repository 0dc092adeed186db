"""What native (C/C++) libraries print straight to file descriptor 2, around the calls that
print it: hidden (:func:`quiet_stderr`), or kept but for known chatter
(:func:`without_chatter`, such as LiteRT's note on the CPU delegate it created)."""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile

#: What LiteRT prints on stderr when it first allocates (its CPU delegate): not for users.
LITERT_CHATTER = "INFO: Created TensorFlow Lite XNNPACK delegate"


@contextlib.contextmanager
def quiet_stderr():
    """File descriptor 2 to /dev/null for the block (messages printed by C code)."""
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


@contextlib.contextmanager
def without_chatter(*chatter: str):
    """File descriptor 2 kept aside for the block, then written out but for the lines that
    start with one of ``chatter`` (for short calls that print a line or two)."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        try:
            os.dup2(captured.fileno(), 2)
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            lines = captured.read().decode(errors="replace").splitlines(keepends=True)
            kept = "".join(line for line in lines if not line.startswith(chatter))
            if kept:
                sys.stderr.write(kept)
                sys.stderr.flush()
