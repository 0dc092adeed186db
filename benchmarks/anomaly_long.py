"""An hour of fan sound through an anomaly bundle: real-time factor, peak memory, alarms.

Trains and exports the recommended detector on ../shared/data/mimii_fan
(configs/anomaly_fan.toml), writes a 1-hour FLAC of its *test* clips (normal
clips, with 5 minutes of abnormal clips from minute 30), then monitors it with
the torch-free runtime (:func:`earmark.runtime.anomaly_monitor.monitor_file`,
read in blocks). Prints wall time, real-time factor, the peak resident memory
of the monitoring alone (a fresh process) and the alarms against the truth.

    python benchmarks/anomaly_long.py
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "configs" / "anomaly_fan.toml"
RATE = 16000
FAULT_START, FAULT_END = 1800.0, 2100.0


def build_hour(run: Path, out: Path) -> None:
    """Test normals looped for an hour, test abnormals in [FAULT_START, FAULT_END)."""
    import soundfile

    from earmark import audio
    from earmark.data.manifest import from_csv

    rows = [r for r in from_csv(run / "manifest.csv") if r.split == "test"]
    clips = {label: [audio.load(r.path, RATE) for r in rows if r.label == label]
             for label in ("normal", "anomaly")}
    with soundfile.SoundFile(out, "w", RATE, 1, format="FLAC", subtype="PCM_16") as sink:
        seconds, turn = 0.0, 0
        while seconds < 3600:
            label = "anomaly" if FAULT_START <= seconds < FAULT_END else "normal"
            clip = clips[label][turn % len(clips[label])]
            sink.write(clip)
            seconds, turn = seconds + len(clip) / RATE, turn + 1


def monitor(bundle: str, path: str) -> None:
    """Runs in a fresh process: the runtime alone, so its peak memory is its own."""
    from earmark.runtime.anomaly_bundle import load_anomaly_bundle
    from earmark.runtime.anomaly_monitor import monitor_file

    started = time.monotonic()
    result = monitor_file(load_anomaly_bundle(bundle), path)
    wall = time.monotonic() - started
    print(json.dumps({"wall": wall, "peak_mib": resource.getrusage(resource.RUSAGE_SELF)
                      .ru_maxrss / 1024, "windows": len(result.scores.window_scores),
                      "alarms": [[a.onset, a.offset] for a in result.alarms]}))


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] == "--monitor":
        monitor(sys.argv[2], sys.argv[3])
        return
    from earmark.anomaly.export import export_detector
    from earmark.anomaly.train import train_anomaly
    from earmark.config import load_config

    with tempfile.TemporaryDirectory() as scratch:
        run, bundle, hour = Path(scratch) / "run", Path(scratch) / "bundle", Path(scratch) / "hour.flac"
        train_anomaly(load_config(CONFIG), run)
        export_detector(run, bundle)
        build_hour(run, hour)
        output = subprocess.run([sys.executable, __file__, "--monitor", str(bundle), str(hour)],
                                check=True, capture_output=True, text=True).stdout
    figures = json.loads(output.strip().splitlines()[-1])
    print(f"1 hour, {figures['windows']} windows: {figures['wall']:.1f} s wall, real-time factor "
          f"{figures['wall'] / 3600:.4f} ({3600 / figures['wall']:.0f}x faster than real time), "
          f"peak memory {figures['peak_mib']:.0f} MiB")
    alarms = figures["alarms"]
    inside = [a for a in alarms if a[1] > FAULT_START and a[0] < FAULT_END]
    print(f"alarms: {len(alarms)}; overlapping the faulty 5 minutes ({FAULT_START:.0f}-"
          f"{FAULT_END:.0f} s): {len(inside)}; elsewhere: {len(alarms) - len(inside)}")
    for onset, offset in alarms[:10]:
        print(f"  {onset:8.1f} - {offset:8.1f} s")


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
