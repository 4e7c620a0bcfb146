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
        models_dir=Path(args.models_dir),
        summary_window_s=args.summary_window,
        drift_window=args.drift_window,
        simulation=SimulationConfig(
            plant=args.plant,
            lines=args.lines,
            assets_per_line=args.assets_per_line,
            seed=args.seed,
            sample_period_ms=args.sample_ms,
            fault_after_s=args.fault_after,
            fault_every_s=args.fault_every,
            fault_duration_s=args.fault_duration,
            fault_stagger_s=args.fault_stagger,
            fault_ramp_s=args.fault_ramp,
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


def _archive_verify(args: argparse.Namespace) -> int:
    from plantwatch.adapters.archive_manifest import verify
    from plantwatch.adapters.archive_url import open_store

    if "://" not in args.location and not Path(args.location).is_dir():
        print(f"plantwatch archive verify: no archive directory at {args.location}", file=sys.stderr)
        return 2
    result = verify(open_store(args.location))
    for finding in result.findings:
        print(f"{finding.problem}: {finding.key} ({finding.detail})")
    verdict = "intact" if result.ok else f"NOT intact: {len(result.findings)} problem(s)"
    print(f"{result.location}: {result.entries} manifest entries, {result.objects} objects: {verdict}")
    return 0 if result.ok else 1


def _add_archive_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    archive = sub.add_parser("archive", help="work with the compliance archive")
    actions = archive.add_subparsers(dest="archive_command", required=True)
    check = actions.add_parser(
        "verify", help="check every object against the hash-chained manifest; exit 1 naming each difference"
    )
    check.add_argument("location", metavar="PATH_OR_S3_URL", help="archive directory or s3://bucket/prefix")
    check.set_defaults(func=_archive_verify)


def _report(args: argparse.Namespace) -> int:
    from plantwatch.adapters.compliance_report import write_report
    from plantwatch.services.compliance_report import ReportRequest

    try:
        request = ReportRequest.of(plant=args.plant, start=args.start, end=args.end)
    except ValueError as exc:
        print(f"plantwatch report: {exc}", file=sys.stderr)
        return 2
    paths = write_report(request, archive=args.archive, out_dir=Path(args.out))
    for path in paths:
        print(path)
    return 0


def _add_report_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    report = sub.add_parser("report", help="write a compliance report (HTML and CSV) for a plant and date range")
    report.add_argument("--plant", required=True)
    report.add_argument("--from", dest="start", required=True, metavar="DATE", help="first day, YYYY-MM-DD (UTC)")
    report.add_argument("--to", dest="end", required=True, metavar="DATE", help="last day, YYYY-MM-DD (UTC), inclusive")
    report.add_argument(
        "--archive",
        default=".plantwatch/archive",
        metavar="PATH_OR_S3_URL",
        help="archive directory or s3://bucket/prefix (default: the local platform's)",
    )
    report.add_argument("--out", default="report", help="directory to write report.html and the CSV tables to")
    report.set_defaults(func=_report)


def _gateway(args: argparse.Namespace) -> int:
    from plantwatch.edge.config import ConfigError, load_config

    try:
        config = load_config(Path(args.config))
    except (ConfigError, OSError) as exc:
        print(f"plantwatch gateway: {exc}", file=sys.stderr)
        return 2
    if args.once:
        from plantwatch.edge.run import read_once, reading_line

        readings, problems = read_once(config, timeout_s=args.timeout)
        for reading in readings:
            print(reading_line(reading), flush=True)
        for problem in problems:
            print(f"plantwatch gateway: {problem}", file=sys.stderr)
        return 1 if problems else 0
    import threading

    from plantwatch.edge.bootstrap import build_gateway
    from plantwatch.edge.run import run_gateway

    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    run_gateway(build_gateway(config), stop)
    return 0


def _edge_build(args: argparse.Namespace) -> int:
    from plantwatch.edge.build import build_components

    model = Path(args.model).resolve() if args.model else None
    for out in build_components(Path(args.root).resolve(), version=args.version, model=model):
        print(f"greengrass build output in {out}")
    return 0


def _edge_deploy(args: argparse.Namespace) -> int:
    from plantwatch.adapters.greengrass_deploy import DeploymentRequest, create_deployment

    request = DeploymentRequest(
        thing_group_arn=args.thing_group_arn,
        gateway_version=args.gateway_version,
        model_version=args.model_version,
        deployment_name=args.name,
        gateway_config=args.gateway_config,
    )
    deployment_id = create_deployment(request, region=args.region)
    print(deployment_id)
    return 0


def _token_create(args: argparse.Namespace) -> int:
    from plantwatch.api.auth import create_token, load_or_create_key

    key = load_or_create_key(Path(args.data_dir).resolve())
    ttl_s = int(args.ttl_days * 86400)
    try:
        print(create_token(key, plants=args.plant, lines=args.line, subject=args.subject, ttl_s=ttl_s))
    except ValueError as exc:
        print(f"plantwatch token create: {exc}", file=sys.stderr)
        return 2
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
    up.add_argument("--models-dir", default="models", help="baseline models {plant}.{line}.pwf (default: ./models)")
    up.add_argument(
        "--summary-window", type=float, default=60.0, help="seconds per gateway score summary (drift; a gateway: 3600)"
    )
    up.add_argument("--drift-window", type=int, default=5, help="summaries per drift check (a plant: 24 hourly ones)")
    sim = up.add_argument_group("simulated plant")
    sim.add_argument("--plant", default="plant-1")
    sim.add_argument("--lines", type=int, default=3)
    sim.add_argument("--assets-per-line", type=int, default=4)
    sim.add_argument("--seed", type=int, default=7)
    sim.add_argument("--sample-ms", type=int, default=1000, help="sample period of every sensor")
    sim.add_argument("--fault-after", type=float, default=20.0, help="seconds from first start to the first fault")
    sim.add_argument("--fault-every", type=float, default=300.0, help="seconds between faults on a line")
    sim.add_argument("--fault-duration", type=float, default=60.0, help="seconds each fault lasts")
    sim.add_argument("--fault-stagger", type=float, default=10.0, help="seconds between the lines' faults")
    sim.add_argument("--fault-ramp", type=float, default=15.0, help="seconds a fault takes to develop fully")
    up.set_defaults(func=_up)
    _add_archive_parser(sub)
    _add_report_parser(sub)

    gw = sub.add_parser("gateway", help="run one edge gateway from a config file (outside Greengrass)")
    gw.add_argument("--config", required=True, help="gateway configuration (TOML or JSON), see edge/examples/")
    gw.add_argument("--once", action="store_true", help="read every source once, print readings as JSON lines")
    gw.add_argument("--timeout", type=float, default=10.0, help="--once: seconds to wait for a source's values")
    gw.set_defaults(func=_gateway)

    edge = sub.add_parser("edge", help="Greengrass packaging and deployment")
    edge_sub = edge.add_subparsers(dest="edge_command", required=True)
    build = edge_sub.add_parser("build", help="build greengrass-build/ (recipes + artifacts) without the GDK CLI")
    build.add_argument("--root", default=".", help="repository root (holds src/ and edge/components/)")
    build.add_argument("--version", default=None, help="component version (default: the package version)")
    build.add_argument("--model", default=None, help="model the model component packs (default: line-1's baseline)")
    build.set_defaults(func=_edge_build)
    deploy = edge_sub.add_parser("deploy", help="create a Greengrass deployment for a thing group (boto3)")
    deploy.add_argument("--thing-group-arn", required=True)
    deploy.add_argument("--gateway-version", required=True, help="version of com.plantwatch.Gateway")
    deploy.add_argument(
        "--model-version",
        default=None,
        help="version of com.plantwatch.Model (omitted: the version the group runs now, kept)",
    )
    deploy.add_argument("--gateway-config", default=None, help="JSON file merged into the gateway's configuration")
    deploy.add_argument("--name", default="plantwatch-gateways")
    deploy.add_argument("--region", default=None)
    deploy.set_defaults(func=_edge_deploy)
    token = sub.add_parser("token", help="API bearer tokens").add_subparsers(dest="token_command", required=True)
    create = token.add_parser("create", help="print a token for plants (and lines), signed with the data dir's key")
    create.add_argument("--data-dir", default=".plantwatch", help="the data dir whose key signs the token")
    create.add_argument("--plant", action="append", required=True, help="plant the token may read (repeatable)")
    create.add_argument("--line", action="append", default=None, help="restrict to these lines (repeatable)")
    create.add_argument("--subject", default="operator", help="who the token is for (recorded in the audit log)")
    create.add_argument("--ttl-days", type=float, default=30.0, help="validity in days")
    create.set_defaults(func=_token_create)
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
