"""The ``plantwatch`` command."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from pathlib import Path

from plantwatch.domain.simulator import SimulationConfig


def _up(args: argparse.Namespace) -> int:
    from plantwatch.local.platform import LocalPlatform, PlatformOptions

    options = PlatformOptions(
        data_dir=Path(args.data_dir).resolve(),
        host=args.host,
        port=args.port,
        mqtt_port=args.mqtt_port,
        duration_s=args.duration,
        simulation=SimulationConfig(
            plant=args.plant,
            lines=args.lines,
            assets_per_line=args.assets_per_line,
            seed=args.seed,
            sample_period_ms=args.sample_ms,
            fault_after_s=args.fault_after,
            fault_every_s=args.fault_every,
            fault_duration_s=args.fault_duration,
        ),
    )

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await LocalPlatform(options, out=lambda line: print(line, flush=True)).run(stop)

    asyncio.run(main())
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The command-line interface."""
    parser = argparse.ArgumentParser(prog="plantwatch", description="Watch production lines.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="run the whole platform locally (broker, simulated plant, gateways, API)")
    up.add_argument("--data-dir", default=".plantwatch", help="where the stream, store and archive live")
    up.add_argument("--host", default="127.0.0.1", help="address to bind (default: loopback only)")
    up.add_argument("--port", type=int, default=8080, help="HTTP API port")
    up.add_argument("--mqtt-port", type=int, default=1883, help="embedded MQTT broker port")
    up.add_argument("--duration", type=float, default=None, help="stop after this many seconds")
    sim = up.add_argument_group("simulated plant")
    sim.add_argument("--plant", default="plant-1")
    sim.add_argument("--lines", type=int, default=3)
    sim.add_argument("--assets-per-line", type=int, default=4)
    sim.add_argument("--seed", type=int, default=7)
    sim.add_argument("--sample-ms", type=int, default=1000, help="sample period of every sensor")
    sim.add_argument("--fault-after", type=float, default=20.0, help="seconds from first start to the first fault")
    sim.add_argument("--fault-every", type=float, default=300.0, help="seconds between faults on a line")
    sim.add_argument("--fault-duration", type=float, default=60.0, help="seconds each fault lasts")
    up.set_defaults(func=_up)
    from plantwatch.cli_train import add_parser as add_train_parser

    add_train_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
