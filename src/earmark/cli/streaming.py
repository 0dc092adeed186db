"""`earmark listen`, `serve`, `stream-test`: keyword spotting on live streams."""

from __future__ import annotations

import sys

from earmark.cli.common import (add_smoother_options, command, smoother_config,
                                stream_stride_ms)


def register(commands) -> None:
    _add_listen(commands)
    _add_serve(commands)
    _add_stream_test(commands)


def _add_listen(commands) -> None:
    sub = command(commands, "listen",
                  "Spot keywords live: microphone, a file played as a stream, or PCM on stdin.",
                  "earmark listen bundles/keywords --file stream.wav --json", _listen)
    sub.add_argument("bundle", help="a keyword bundle written by `earmark export`")
    source = sub.add_mutually_exclusive_group()
    source.add_argument("--file", help="play this recording as a stream")
    source.add_argument("--stdin", action="store_true",
                        help="read raw PCM from standard input (see --rate, --format)")
    source.add_argument("--list-devices", action="store_true", help="list microphones and exit")
    sub.add_argument("--device", help="microphone index or name (default: the system's)")
    sub.add_argument("--rate", type=int, help="sample rate of the microphone or stdin PCM, "
                                               "1000 to 384000 Hz (default: the model's for "
                                               "stdin, the device's for a microphone)")
    sub.add_argument("--format", default="s16le", choices=["s16le", "s32le", "f32le"],
                     help="stdin PCM sample format (default s16le)")
    sub.add_argument("--channels", type=int, default=1,
                     help="stdin PCM channels, 1 to 64 (default 1)")
    sub.add_argument("--realtime", action="store_true",
                     help="with --file: play at real speed instead of as fast as possible")
    sub.add_argument("--block-ms", type=float, metavar="MS",
                     help="audio handed to the engine at a time (default 50 from a "
                          "microphone, 100 from a file or stdin); longer blocks cost less CPU "
                          "per hour and add up to a block of delay to each detection")
    sub.add_argument("--json", action="store_true", help="one JSON object per detection")
    add_smoother_options(sub)


def _listen(args) -> int:
    from earmark.input_limits import check_channels, check_positive, check_sample_rate
    from earmark.runtime import load_bundle
    from earmark.runtime.listen import format_detection, listen, listening_banner
    from earmark.runtime.sources import MAX_BLOCK_MS, list_input_devices
    from earmark.runtime.stream import StreamEngine

    if args.list_devices:
        print(list_input_devices())
        return 0
    # Every number is checked before the bundle loads or any audio is read.
    if args.rate is not None:
        check_sample_rate(args.rate, "--rate")
    check_channels(args.channels, "--channels")
    if args.block_ms is not None:
        check_positive(args.block_ms, "--block-ms", maximum=MAX_BLOCK_MS)
    smoother_config(args)                  # the options checked before the bundle loads ...
    bundle = load_bundle(args.bundle, threads=1)
    detection = bundle.metadata.detection
    smoother = smoother_config(args, detection)    # ... then merged with its calibration
    source = _listen_source(args, bundle.sample_rate)
    engine = StreamEngine(bundle, stride_ms=stream_stride_ms(args, detection),
                          input_rate=source.sample_rate, smoother=smoother)
    if not args.json:
        print(listening_banner(engine, source), file=sys.stderr)
    summary = listen(engine, source,
                     lambda detection: print(format_detection(detection, args.json), flush=True))
    print(summary.to_text(), file=sys.stderr)
    return 0


def _listen_source(args, model_rate: int):
    """The file, stdin PCM (at ``--rate`` or the model's) or microphone the flags name, in
    blocks of ``--block-ms`` (each source's own default without it)."""
    from earmark.runtime.sources import FileSource, MicrophoneSource, PcmSource

    blocks = {} if args.block_ms is None else {"block_ms": args.block_ms}
    if args.file:
        return FileSource(args.file, realtime=args.realtime, **blocks)
    if args.stdin:
        return PcmSource(model_rate if args.rate is None else args.rate, args.format,
                         args.channels, **blocks)
    device = int(args.device) if args.device and args.device.isdigit() else args.device
    return MicrophoneSource(args.rate, device, **blocks)


def _add_serve(commands) -> None:
    sub = command(commands, "serve",
                  "Serve a bundle: live page, POST /classify, websocket /stream, /model.",
                  "earmark serve bundles/keywords --port 8000   # then open http://127.0.0.1:8000",
                  _serve)
    sub.add_argument("bundle", help="a bundle folder written by `earmark export`")
    sub.add_argument("--host", default="127.0.0.1",
                     help="address to listen on (default 127.0.0.1; 0.0.0.0 for every interface)")
    sub.add_argument("--port", type=int, default=8000, help="TCP port, 1-65535 (default 8000)")
    limits = sub.add_argument_group("limits (refusals are 413, 408 or 503 with a JSON error)")
    limits.add_argument("--max-upload-mb", type=float, default=50.0, metavar="MB",
                        help="largest upload to /classify in MiB (default 50)")
    limits.add_argument("--max-upload-seconds", type=float, default=600.0, metavar="SECONDS",
                        help="longest recording /classify accepts (default 600)")
    limits.add_argument("--max-decoded-mb", type=float, default=256.0, metavar="MB",
                        help="largest upload once decoded, frames x channels x 4 bytes, "
                             "checked from its header before decoding (default 256: 10 "
                             "minutes of 48 kHz stereo fit)")
    limits.add_argument("--max-uploads-in-flight", type=int, default=8, metavar="N",
                        help="uploads received and waiting or being classified; more get "
                             "503 with Retry-After (default 8)")
    limits.add_argument("--max-uploads-receiving", type=int, default=32, metavar="N",
                        help="upload bodies arriving at once; more get 503 (default 32)")
    limits.add_argument("--body-timeout", type=float, default=60.0, metavar="SECONDS",
                        help="an upload's whole body must arrive within this, else 408 "
                             "(default 60)")
    limits.add_argument("--body-stall-timeout", type=float, default=10.0, metavar="SECONDS",
                        help="an upload whose bytes stop for this long gets 408 (default 10)")
    limits.add_argument("--max-streams", type=int, default=64, metavar="N",
                        help="websocket streams served at once (default 64)")
    add_smoother_options(sub)


#: serve's limit options: (option, ServeLimits field, the field's units per option unit).
SERVE_LIMIT_OPTIONS = (
    ("--max-upload-mb", "max_upload_bytes", 2 ** 20),
    ("--max-upload-seconds", "max_upload_seconds", 1),
    ("--max-decoded-mb", "max_upload_samples", 2 ** 20 // 4),     # float32 samples per MiB
    ("--max-uploads-in-flight", "uploads_in_flight", 1),
    ("--max-uploads-receiving", "uploads_receiving", 1),
    ("--body-timeout", "body_timeout_seconds", 1),
    ("--body-stall-timeout", "body_stall_seconds", 1),
    ("--max-streams", "max_streams", 1),
)


def serve_limits(args):
    """The :class:`ServeLimits` serve's options give, each checked under its option's name."""
    from earmark.input_limits import check_count, check_positive
    from earmark.serve.limits import CEILINGS, ServeLimits

    values = {}
    for option, field, scale in SERVE_LIMIT_OPTIONS:
        value = getattr(args, option[2:].replace("-", "_"))
        ceiling = CEILINGS[field] / scale
        if isinstance(value, int) and scale == 1:
            values[field] = check_count(value, option, 1, int(ceiling))
            continue
        number = check_positive(value, option, ceiling) * scale
        values[field] = max(1, int(number)) if isinstance(CEILINGS[field], int) else number
    return ServeLimits(**values)


def _serve(args) -> int:
    """Check every option (nothing starts on a bad one), then serve until Ctrl-C."""
    import uvicorn

    from earmark.input_limits import check_count
    from earmark.runtime import load_bundle
    from earmark.serve import create_app
    from earmark.serve.streaming import websocket_max_size

    port = check_count(args.port, "--port", 1, 65535)
    limits = serve_limits(args)
    smoother_config(args)                  # the options checked before the bundle loads
    bundle = load_bundle(args.bundle, threads=1)
    detection = bundle.metadata.detection
    app = create_app(bundle, limits, smoother_config(args, detection),
                     stream_stride_ms(args, detection))
    _check_address(args.host, port)
    print(f"earmark: serving {args.bundle} on http://{args.host}:{port}/ "
          "(Ctrl-C to stop)", file=sys.stderr)
    # ws_max_size: a websocket message bigger than any stream may send is refused (1009)
    # from its header, before the server holds it.
    uvicorn.run(app, host=args.host, port=port, log_level="warning", ws="websockets-sansio",
                ws_per_message_deflate=False, ws_max_size=websocket_max_size(limits))
    return 0


def _check_address(host: str, port: int) -> None:
    """The address can be served on (a name that resolves, a port that is free), checked
    by binding it once before the server starts, so a wrong one is named plainly."""
    import socket

    from earmark.errors import ConfigError

    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM)[0]
    except (OSError, UnicodeError) as error:
        raise ConfigError(f"--host {host}: not an address of this machine ({error}); give "
                          "127.0.0.1 (this machine only) or 0.0.0.0 (every network)") from None
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as error:
            raise ConfigError(f"--host {host} --port {port}: cannot serve there "
                              f"({error.strerror or error}); choose another --port, or a "
                              "--host of this machine") from None


#: The longest stream `stream-test` builds (each is held in memory, twice).
MAX_STREAM_TEST_MINUTES = 120.0


def _add_stream_test(commands) -> None:
    sub = command(commands, "stream-test",
                  "Score streaming recognition on long streams of held-out speakers.",
                  "earmark stream-test bundles/keywords --run runs/keywords --minutes 10 "
                  "--out runs/keywords/stream", _stream_test)
    sub.add_argument("bundle", help="a keyword bundle")
    sub.add_argument("--run", required=True,
                     help="the training run it came from (its validation and test speakers)")
    sub.add_argument("--out", required=True, help="folder for the stream, truth, detections, "
                                                 "sweep, trade-off plot and report")
    sub.add_argument("--minutes", type=float, default=10.0,
                     help=f"length of each stream, at most {MAX_STREAM_TEST_MINUTES:g} "
                          "(default 10)")
    sub.add_argument("--noise-dir", help="background recordings (default: the run's noise)")
    sub.add_argument("--noise-volume", type=float, default=0.1,
                     help="background gain on the recordings' own level (default 0.1)")
    sub.add_argument("--max-false-alarms", type=float, default=60.0, metavar="PER_HOUR",
                     help="calibrate the threshold for at most this many false alarms an hour "
                          "on the validation stream (default 60)")
    add_smoother_options(sub)


def _stream_test(args) -> int:
    from earmark.input_limits import check_non_negative, check_positive
    from earmark.runtime import load_bundle
    from earmark.stream_eval import evaluate_streaming

    minutes = check_positive(args.minutes, "--minutes", maximum=MAX_STREAM_TEST_MINUTES)
    noise_volume = check_non_negative(args.noise_volume, "--noise-volume")
    max_false_alarms = check_non_negative(args.max_false_alarms, "--max-false-alarms")
    smoother = smoother_config(args)
    report = evaluate_streaming(load_bundle(args.bundle, threads=1), args.run, args.out,
                                minutes=minutes, noise_dir=args.noise_dir,
                                noise_volume=noise_volume,
                                max_false_alarms_per_hour=max_false_alarms,
                                stride_ms=stream_stride_ms(args), smoother=smoother)
    score = report["score"]
    print(f"threshold {report['threshold']} " + (
        "(calibrated on the validation stream)" if report["calibration_met"] else
        f"(the fewest false alarms on the validation stream; none kept them at or below "
        f"{max_false_alarms:g}/hour)"))

    def ms(value):
        return "n/a" if value is None else f"{value:.0f} ms"

    print(f"test stream: {report['words']} words in {args.minutes:g} min: correct "
          f"{score['correct_rate']:.1%}, wrong {score['wrong_rate']:.1%}, false positives "
          f"{score['false_positive_rate']:.1%}, {score['false_alarms_per_hour']:.1f} false "
          f"alarms/hour; latency median {ms(report['latency_ms_median'])}, p95 "
          f"{ms(report['latency_ms_p95'])}")
    print(f"evidence in {args.out}")
    return 0
