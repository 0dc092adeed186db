"""`earmark spectrogram`: a recording as a picture, and as the model hears it."""

from __future__ import annotations

import math
import sys

from earmark.cli.common import check_output_suffix, command, refuse_overwriting_inputs
from earmark.plots import IMAGE_SUFFIXES

#: What --hear writes (:func:`earmark.audio.write`, by suffix).
HEARD_SUFFIXES = (".wav", ".flac", ".ogg")
#: Columns of a picture: a longer recording is pooled (the loudest frame of each run kept).
DEFAULT_COLUMNS = 1500


def register(commands) -> None:
    sub = command(commands, "spectrogram",
                  "Draw a recording's spectrogram (any length; axes in Hz and seconds), "
                  "and hear what a model hears (its log-mel turned back into sound).",
                  "earmark spectrogram dawn.flac --out dawn.png --start 600 --duration 60\n"
                  "  earmark spectrogram dog.flac --hear heard.wav --bundle bundles/esc10",
                  _spectrogram)
    sub.add_argument("file", help="the recording (any length: read in blocks)")
    sub.add_argument("--out", help="the picture (.png, .svg or .pdf)")
    sub.add_argument("--kind", choices=["logmel", "linear"], default="logmel",
                     help="mel bands or every DFT bin (default logmel)")
    sub.add_argument("--start", type=float, default=0.0, help="from this second (0)")
    sub.add_argument("--duration", type=float, help="this many seconds (default: to the end)")
    sub.add_argument("--columns", type=int, default=DEFAULT_COLUMNS,
                     help=f"at most this many time columns (default {DEFAULT_COLUMNS})")
    sub.add_argument("--rate", type=int,
                     help="picture the audio resampled to this rate (default: the file's)")
    sub.add_argument("--n-mels", type=int, default=64, help="mel bands (64)")
    hearing = sub.add_argument_group("hear what the model hears")
    hearing.add_argument("--hear", metavar="WAV",
                         help="write the model's log-mel turned back into sound (Griffin-Lim)")
    hearing.add_argument("--bundle", help="hear with this bundle's front-end (default: the "
                                          "default log-mel at 16 kHz)")
    hearing.add_argument("--iterations", type=int, default=32,
                         help="Griffin-Lim iterations (32)")


def _spectrogram(args) -> int:
    from earmark.errors import ConfigError

    if not args.out and not args.hear:
        raise ConfigError("give --out PICTURE, --hear WAV, or both")
    check_output_suffix(args.out, "--out", IMAGE_SUFFIXES)
    check_output_suffix(args.hear, "--hear", HEARD_SUFFIXES)
    for option, path in (("--out", args.out), ("--hear", args.hear)):
        refuse_overwriting_inputs(path, option, [args.file])
    if args.out:
        _picture(args)
    if args.hear:
        _hear(args)
    return 0


def _picture(args) -> None:
    from earmark import audio
    from earmark.errors import ConfigError
    from earmark.frontend.spectrogram import (SpectrogramSettings, band_frequencies,
                                              pooled_decibels)
    from earmark.input_limits import check_count, check_sample_rate
    from earmark.plots import plot_spectrogram

    header = audio.info(args.file)
    rate = check_sample_rate(args.rate or header.sample_rate, "--rate")
    settings = SpectrogramSettings(n_mels=check_count(args.n_mels, "--n-mels", 1, 512),
                                   fmin=0.0 if args.kind == "linear" else 40.0,
                                   fmax=rate / 2, kind=args.kind)
    seconds = max(0.0, header.duration - args.start)
    if args.duration is not None:
        seconds = min(seconds, args.duration)
    blocks = audio.read_blocks(args.file, rate, 30.0, header=header, start=args.start,
                               duration=args.duration)
    decibels, column_seconds = pooled_decibels(
        blocks, rate, int(seconds * rate), settings,
        check_count(args.columns, "--columns", 10, 20000))
    if len(decibels) == 0:
        raise ConfigError(f"{args.file}: too short for one {settings.window_ms:g} ms frame")
    hop = int(round(column_seconds * rate))
    plot_spectrogram(decibels.T, args.out, rate, hop,
                     title=f"{args.file} ({args.kind}, {seconds:.1f} s from {args.start:g} s)",
                     frequencies=band_frequencies(rate, settings), start=args.start)
    print(f"wrote {args.out} ({decibels.shape[0]} columns x {decibels.shape[1]} bands)",
          file=sys.stderr)


def _hear(args) -> None:
    from earmark import audio
    from earmark.runtime.hear import bundle_front_end, hear_file

    config, rate = bundle_front_end(args.bundle) if args.bundle else (None, None)
    hearing = hear_file(args.file, config, rate, start=args.start, duration=args.duration,
                        iterations=args.iterations)
    audio.write(args.hear, hearing.audio, hearing.sample_rate)
    if math.isnan(hearing.spectral_convergence):
        print("spectral convergence: none (the stretch is digital silence, nothing to rebuild)")
    else:
        print(f"spectral convergence {hearing.spectral_convergence:.3f} (STFT magnitude, 0 = "
              f"perfect), {hearing.feature_convergence:.3f} on the model's own features")
    print(f"wrote {args.hear} ({len(hearing.audio) / hearing.sample_rate:.1f} s at "
          f"{hearing.sample_rate} Hz)", file=sys.stderr)
