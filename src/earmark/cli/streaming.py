"""`earmark listen`, `serve`, `stream-test`: keyword spotting on live streams."""

from __future__ import annotations

import sys

from earmark.cli.common import add_smoother_options, command, smoother_config


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
    sub.add_argument("--rate", type=int, help="sample rate of the microphone or stdin PCM")
    sub.add_argument("--format", default="s16le", choices=["s16le", "s32le", "f32le"],
                     help="stdin PCM sample format (default s16le)")
    sub.add_argument("--channels", type=int, default=1, help="stdin PCM channels (default 1)")
    sub.add_argument("--realtime", action="store_true",
                     help="with --file: play at real speed instead of as fast as possible")
    sub.add_argument("--json", action="store_true", help="one JSON object per detection")
    add_smoother_options(sub)


def _listen(args) -> int:
    from earmark.runtime import load_bundle
    from earmark.runtime.listen import format_detection, listen, listening_banner
    from earmark.runtime.sources import list_input_devices
    from earmark.runtime.stream import StreamEngine

    if args.list_devices:
        print(list_input_devices())
        return 0
    bundle = load_bundle(args.bundle, threads=1)
    source = _listen_source(args, bundle.sample_rate)
    engine = StreamEngine(bundle, stride_ms=args.stride_ms, input_rate=source.sample_rate,
                          smoother=smoother_config(args))
    if not args.json:
        print(listening_banner(engine, source), file=sys.stderr)
    summary = listen(engine, source,
                     lambda detection: print(format_detection(detection, args.json), flush=True))
    print(summary.to_text(), file=sys.stderr)
    return 0


def _listen_source(args, model_rate: int):
    """The file, stdin PCM (at ``--rate`` or the model's) or microphone the flags name."""
    from earmark.runtime.sources import FileSource, MicrophoneSource, PcmSource

    if args.file:
        return FileSource(args.file, realtime=args.realtime)
    if args.stdin:
        return PcmSource(args.rate or model_rate, args.format, args.channels)
    device = int(args.device) if args.device and args.device.isdigit() else args.device
    return MicrophoneSource(args.rate, device)


def _add_serve(commands) -> None:
    sub = command(commands, "serve",
                  "Serve a bundle: live page, POST /classify, websocket /stream, /model.",
                  "earmark serve bundles/keywords --port 8000   # then open http://127.0.0.1:8000",
                  _serve)
    sub.add_argument("bundle", help="a bundle folder written by `earmark export`")
    sub.add_argument("--host", default="127.0.0.1",
                     help="address to listen on (default 127.0.0.1; 0.0.0.0 for every interface)")
    sub.add_argument("--port", type=int, default=8000, help="TCP port (default 8000)")
    sub.add_argument("--max-upload-mb", type=float, default=50.0,
                     help="largest upload to /classify in MiB (default 50)")
    sub.add_argument("--max-upload-seconds", type=float, default=600.0,
                     help="longest recording /classify accepts (default 600)")
    sub.add_argument("--max-streams", type=int, default=64,
                     help="websocket streams served at once (default 64)")
    add_smoother_options(sub)


def _serve(args) -> int:
    import uvicorn

    from earmark.serve import ServeLimits, create_app

    limits = ServeLimits(max_upload_bytes=int(args.max_upload_mb * 1024 * 1024),
                         max_upload_seconds=args.max_upload_seconds,
                         max_streams=args.max_streams)
    app = create_app(args.bundle, limits, smoother_config(args), args.stride_ms)
    print(f"earmark: serving {args.bundle} on http://{args.host}:{args.port}/ "
          "(Ctrl-C to stop)", file=sys.stderr)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", ws="websockets-sansio",
                ws_per_message_deflate=False)
    return 0


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
    sub.add_argument("--minutes", type=float, default=10.0, help="length of each stream")
    sub.add_argument("--noise-dir", help="background recordings (default: the run's noise)")
    sub.add_argument("--noise-volume", type=float, default=0.1,
                     help="background gain on the recordings' own level (default 0.1)")
    sub.add_argument("--max-false-alarms", type=float, default=60.0, metavar="PER_HOUR",
                     help="calibrate the threshold for at most this many false alarms an hour "
                          "on the validation stream (default 60)")
    add_smoother_options(sub)


def _stream_test(args) -> int:
    from earmark.runtime import load_bundle
    from earmark.stream_eval import evaluate_streaming

    report = evaluate_streaming(load_bundle(args.bundle, threads=1), args.run, args.out,
                                minutes=args.minutes, noise_dir=args.noise_dir,
                                noise_volume=args.noise_volume,
                                max_false_alarms_per_hour=args.max_false_alarms,
                                stride_ms=args.stride_ms, smoother=smoother_config(args))
    score = report["score"]
    print(f"threshold {report['threshold']} (calibrated on the validation stream)")
    def ms(value):
        return "n/a" if value is None else f"{value:.0f} ms"

    print(f"test stream: {report['words']} words in {args.minutes:g} min: correct "
          f"{score['correct_rate']:.1%}, wrong {score['wrong_rate']:.1%}, false positives "
          f"{score['false_positive_rate']:.1%}, {score['false_alarms_per_hour']:.1f} false "
          f"alarms/hour; latency median {ms(report['latency_ms_median'])}, p95 "
          f"{ms(report['latency_ms_p95'])}")
    print(f"evidence in {args.out}")
    return 0
