"""What native libraries print on file descriptor 2: hidden, or kept but for chatter."""

from __future__ import annotations

import os

import pytest

from earmark.native_output import LITERT_CHATTER, quiet_stderr, without_chatter


def test_chatter_is_dropped_and_every_other_line_kept(capfd):
    with without_chatter(LITERT_CHATTER):
        os.write(2, b"INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\n")
        os.write(2, b"ERROR: tensor 3 has no buffer\n")
    os.write(2, b"after the block\n")
    err = capfd.readouterr().err
    assert "XNNPACK" not in err
    assert err.index("ERROR: tensor 3 has no buffer") < err.index("after the block")


def test_what_was_printed_is_kept_when_the_block_fails(capfd):
    with pytest.raises(RuntimeError), without_chatter("INFO"):
        os.write(2, b"fatal: out of memory\n")
        raise RuntimeError("allocation failed")
    assert "fatal: out of memory" in capfd.readouterr().err


def test_quiet_stderr_hides_the_block_and_restores_the_terminal(capfd):
    with quiet_stderr():
        os.write(2, b"hidden\n")
    os.write(2, b"shown\n")
    err = capfd.readouterr().err
    assert "hidden" not in err and "shown" in err
