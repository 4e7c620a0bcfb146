"""Bytes per reading on the wire: scored batches (gzip + columnar JSON) against the original raw JSON, same run.

Run: ``python benchmarks/wire_bytes.py`` (``--minutes`` sets the simulated period).
A simulated gateway with 12 sensors (4 assets x temperature, vibration, pressure) at 1 Hz scores every reading
with thresholds, limits and an Isolation Forest trained on the same simulator (the scores are real, as on a
gateway), then cuts batches every 1, 5, 10, 60 s and at the 2000-reading maximum. The baseline is the original
design's raw reading, one JSON object per reading, as its sensors publish it. Target: at most 16 bytes/reading.
"""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime

from plantwatch.contract.batch import DEFAULT_MAX_READINGS, BatchHeader, encode_batches
from plantwatch.contract.decode import decode_payload
from plantwatch.contract.reading import ScoredReading
from plantwatch.domain.decision import AnomalyDetector
from plantwatch.domain.features import FeatureSpec
from plantwatch.domain.simulator import SIMULATED_PLANT_LIMITS, PlantSimulator, SimulationConfig
from plantwatch.domain.thresholds import ThresholdScorer
from plantwatch.models.training import simulator_features, train_forest

START_MS = 1_790_000_000_000
TARGET = 16.0


def _raw_json(scored: ScoredReading) -> bytes:
    """The original design's payload for this reading (what its sensors publish, one message each)."""
    r = scored.reading
    stamp = datetime.fromtimestamp(r.ts_ms / 1000, tz=UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    doc = {"sensor_id": r.sensor_id, "production_line": r.line, "type": r.sensor_type, "value": r.value}
    return json.dumps({**doc, "timestamp": stamp}).encode()


def main() -> None:
    """Simulate, score, batch at several intervals, and print bytes per reading against the raw JSON."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--minutes", type=int, default=30, help="simulated minutes of scored readings")
    args = parser.parse_args()

    simulator = PlantSimulator(SimulationConfig(lines=1, assets_per_line=4, anchor_ms=START_MS))
    spec = FeatureSpec(window=30)
    data = simulator_features(simulator, spec, start_ms=START_MS, end_ms=START_MS + 3_600_000)
    model = train_forest(data.rows[~data.faulty], spec, n_estimators=100, seed=1)
    detector = AnomalyDetector(spec=spec, thresholds=ThresholdScorer(limits=SIMULATED_PLANT_LIMITS), model=model)
    begin = START_MS + 3_600_000
    scored: list[ScoredReading] = []
    for k in range(args.minutes * 60):
        scored += detector.score_many(simulator.readings("line-1", begin + k * 1000))
    header = BatchHeader(gateway_id="gw-plant-1-line-1", plant=simulator.config.plant, model=model.ref)

    raw = sum(len(_raw_json(s)) for s in scored) / len(scored)
    anomalous = sum(s.anomaly for s in scored) / len(scored)
    print(f"{len(scored)} readings of 12 sensors at 1 Hz, {anomalous:.1%} flagged anomalous")
    print(f"baseline, original raw JSON: {raw:.1f} bytes/reading")
    columns = f"{'batch every':>12} | {'readings':>8} | {'bytes/reading':>13} | {'vs raw JSON':>11}"
    print(f"{columns} | target <= {TARGET:.0f}")
    sizes = [(f"{s} s", 12 * s) for s in (1, 5, 10, 60)] + [("max", DEFAULT_MAX_READINGS)]
    for label, per_batch in sizes:
        payload_bytes = 0
        for start in range(0, len(scored), per_batch):
            chunk = scored[start : start + per_batch]
            for batch in encode_batches(header, chunk, first_seq=1 + start):
                decoded = decode_payload(batch.payload, now_ms=scored[-1].reading.ts_ms)
                if decoded.batch is None or decoded.rejections:  # what is counted must be what arrives
                    raise SystemExit(f"batch {batch.seq} did not decode cleanly: {decoded.rejections}")
                payload_bytes += len(batch.payload)
        per_reading = payload_bytes / len(scored)
        verdict = "meets" if per_reading <= TARGET else "misses"
        print(f"{label:>12} | {per_batch:>8} | {per_reading:>13.1f} | {raw / per_reading:>10.1f}x | {verdict}")


if __name__ == "__main__":
    main()
