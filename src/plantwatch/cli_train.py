"""``plantwatch train``: train, tune and evaluate models from the simulator, a local archive or S3."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec

from plantwatch.domain.simulator import SimulationConfig
from plantwatch.models.pipeline import Periods, simulator_training_assets, summarise, train_on_simulator
from plantwatch.models.registry import ModelRegistry, ObjectStore
from plantwatch.models.report import outcome_report, plot_scores, write_json
from plantwatch.models.trainer import TrainConfig

_DEFAULTS = TrainConfig()


def add_parser(sub: Any) -> None:
    """Register the ``train`` subcommand."""
    p = sub.add_parser("train", help="train, tune and evaluate Isolation Forests (simulator, local archive or S3)")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--from-archive", metavar="DIR", help="train on a local archive (its batches/ folder)")
    src.add_argument("--from-s3", metavar="S3_URL", help="train on the S3 archive, e.g. s3://bucket/prefix")
    p.add_argument("--start", help="archive window start (ISO date/time, UTC); default: everything")
    p.add_argument("--end", help="archive window end (ISO date/time, UTC); default: now")
    p.add_argument(
        "--max-readings",
        type=int,
        help="archive readings kept at most; past it whole 15-minute blocks are sampled (default: all; the "
        "retraining job keeps 8,000,000 per line)",
    )
    p.add_argument("--out", default="models", help="where artifacts, report.json and report.png go")
    p.add_argument(
        "--registry", help="registry folder or s3://bucket/prefix (default for --from-archive: DIR/../registry)"
    )
    p.add_argument(
        "--version",
        default="baseline",
        help="model version when no registry is used (registry versions count 1, 2, ...: a baseline must not share "
        "one, or batches and drift would not tell the two models apart)",
    )
    p.add_argument("--scope", choices=["line", "asset_class"], default="line", help="one model per line or per class")
    p.add_argument("--seed", type=int, default=0, help="forest seed (same data + seed = identical artifact)")
    p.add_argument("--trees", type=int, default=_DEFAULTS.n_estimators)
    p.add_argument("--max-samples", type=int, default=_DEFAULTS.max_samples)
    p.add_argument("--window", type=int, default=_DEFAULTS.window, help="feature window, readings")
    p.add_argument(
        "--waveform-types",
        default=",".join(_DEFAULTS.waveform_types),
        help="comma-separated sensor types that also get rms/peak/crest features (empty: none)",
    )
    p.add_argument(
        "--envelope",
        default=",".join(_DEFAULTS.envelope_statistics),
        help="comma-separated feature statistics (latest,mean,std,slope) the model's training envelope covers "
        "(empty: none; the SKAB benchmark's detector uses one)",
    )
    p.add_argument(
        "--envelope-margin",
        type=float,
        default=_DEFAULTS.envelope_margin,
        help="flag windows beyond this multiple of the largest training deviation",
    )
    p.add_argument(
        "--envelope-tolerance",
        type=float,
        default=_DEFAULTS.envelope_tolerance,
        help="floor each level statistic's scale at this fraction of its training centre (0.02: 2 %%)",
    )
    p.add_argument(
        "--envelope-votes",
        type=int,
        default=_DEFAULTS.envelope_votes,
        help="sensors that must be outside the envelope at once (1: any; 2 of 3 sensors: 2oo3 voting)",
    )
    sim = p.add_argument_group("simulated plant (training source, and labelled validation/test periods)")
    sim.add_argument("--plant", default="plant-1")
    sim.add_argument("--lines", type=int, default=3)
    sim.add_argument("--assets-per-line", type=int, default=4)
    sim.add_argument("--sim-seed", type=int, default=7)
    sim.add_argument("--train-days", type=float, default=7.0)
    sim.add_argument("--validation-days", type=float, default=1.0)
    sim.add_argument("--test-days", type=float, default=1.0)
    p.set_defaults(func=run)

    registry = sub.add_parser("registry", help="the model registry (a folder or s3://bucket/prefix)")
    actions = registry.add_subparsers(dest="registry_command", required=True)
    show = actions.add_parser("show", help="print a model's versions: status, SHA-256, decision")
    promote = actions.add_parser(
        "promote", help="make a version the champion and pin it (a rollback); retraining then deploys it"
    )
    unpin = actions.add_parser("unpin", help="let retraining promote challengers over the pinned champion again")
    for action in (show, promote, unpin):
        action.add_argument("--registry", required=True, help="registry folder or s3://bucket/prefix")
        action.add_argument("name", help="model name, <plant>.<line>")
    promote.add_argument("version", help="the registered version to make the champion")
    promote.add_argument("--reason", required=True, help="why (kept as the version's decision)")
    promote.add_argument(
        "--force", action="store_true", help="also a rejected version, or one with other features than the champion"
    )
    show.set_defaults(func=_registry(_registry_show))
    promote.set_defaults(func=_registry(_registry_promote))
    unpin.set_defaults(func=_registry(_registry_unpin))


def _registry(command: Callable[[argparse.Namespace, ModelRegistry], int]) -> Callable[[argparse.Namespace], int]:
    """Run a registry command; a missing registry, version or artifact, or a storage error, is one line, exit 2."""

    def run_command(args: argparse.Namespace) -> int:
        if not args.registry.startswith("s3://") and not Path(args.registry).is_dir():
            print(f"no registry at {args.registry}", file=sys.stderr)
            return 2
        try:
            return command(args, ModelRegistry(_store(args.registry)))
        except (KeyError, ValueError, OSError) as exc:
            print(f"{args.name}: {exc.args[0] if isinstance(exc, KeyError) else exc}", file=sys.stderr)
            return 2
        except Exception as exc:  # botocore's errors (credentials, AccessDenied, KMS), without importing it here
            if not type(exc).__module__.startswith("botocore"):
                raise
            print(f"{args.registry}: {exc}", file=sys.stderr)
            return 2

    return run_command


def _registry_show(args: argparse.Namespace, registry: ModelRegistry) -> int:
    versions = registry.versions(args.name)
    if not versions:
        print(f"no versions of {args.name} in {args.registry}", file=sys.stderr)
        return 2
    champion = registry.champion(args.name)
    pinned = " (pinned)" if registry.pinned(args.name) else ""
    for version in versions:
        try:
            entry = registry.entry(args.name, version)
        except KeyError:
            print(f"{args.name} v{version}\tincomplete (no entry: an interrupted registration)")
            continue
        if champion and champion.version == version:
            status = "champion" + pinned
        else:  # champion.json is the champion; an entry left saying so by an interrupted promotion is not
            status = "retired" if entry.status == "champion" else entry.status
        print(f"{entry.name} v{entry.version}\t{status}\t{entry.sha256[:12]}\t{entry.decision}")
    return 0


def _registry_promote(args: argparse.Namespace, registry: ModelRegistry) -> int:
    entry = registry.entry(args.name, args.version)
    champion = registry.champion(args.name)
    refusals = []
    # the champion itself may be pinned whatever its entry says (an interrupted promotion leaves it a candidate)
    if entry.status in ("rejected", "candidate") and not (champion and champion.version == entry.version):
        refusals.append(f"v{entry.version} is {entry.status} ({entry.decision or 'never decided'})")
    if champion is not None and champion.feature_spec_hash != entry.feature_spec_hash:
        refusals.append(f"v{entry.version}'s features differ from champion v{champion.version}'s")
    if refusals and not args.force:
        print(f"{args.name}: not promoted: {'; '.join(refusals)} (--force to promote it anyway)", file=sys.stderr)
        return 2
    entry = registry.promote(args.name, args.version, f"promoted by an operator: {args.reason}", pin=True)
    print(
        f"{entry.name} v{entry.version} is the champion, pinned: gateways watching this registry swap to it, the "
        "next retraining run deploys it to the Greengrass gateways, and no challenger replaces it until "
        f"`plantwatch registry unpin --registry {args.registry} {args.name}`"
    )
    return 0


def _registry_unpin(args: argparse.Namespace, registry: ModelRegistry) -> int:
    registry.unpin(args.name)
    print(f"{args.name}: challengers may replace the champion again")
    return 0


def _ms(text: str | None, default: int) -> int:
    if text is None:
        return default
    stamp = datetime.fromisoformat(text)
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=UTC)
    return int(stamp.timestamp() * 1000)


def _store(url: str) -> ObjectStore:
    if url.startswith("s3://"):
        import boto3

        from plantwatch.adapters.object_store import S3ObjectStore, s3_client_config

        bucket, _, prefix = url[5:].partition("/")
        return S3ObjectStore(boto3.client("s3", config=s3_client_config()), bucket, prefix)
    from plantwatch.adapters.object_store import LocalObjectStore

    return LocalObjectStore(Path(url))


def train_config(args: argparse.Namespace) -> TrainConfig:
    """The training configuration ``plantwatch train``'s arguments ask for."""
    return TrainConfig(
        scope=args.scope,
        seed=args.seed,
        n_estimators=args.trees,
        max_samples=args.max_samples,
        window=args.window,
        waveform_types=tuple(t for t in args.waveform_types.split(",") if t),
        envelope_statistics=tuple(t for t in args.envelope.split(",") if t),
        envelope_margin=args.envelope_margin,
        envelope_tolerance=args.envelope_tolerance,
        envelope_votes=args.envelope_votes,
    )


def run(args: argparse.Namespace) -> int:
    """Run ``plantwatch train``."""
    sim = SimulationConfig(plant=args.plant, lines=args.lines, assets_per_line=args.assets_per_line, seed=args.sim_seed)
    try:
        train = train_config(args)
    except ValueError as exc:
        print(f"plantwatch train: {exc}", file=sys.stderr)
        return 2
    periods = Periods(train_days=args.train_days, validation_days=args.validation_days, test_days=args.test_days)
    out = Path(args.out)
    source_url = args.from_s3 or args.from_archive
    registry_url = args.registry
    if args.from_archive and registry_url is None:
        registry_url = str(Path(args.from_archive).resolve().parent / "registry")
    if source_url is None and registry_url is None:
        outcome = train_on_simulator(sim, train, periods, version=args.version)
        out.mkdir(parents=True, exist_ok=True)
        for name, model in outcome.models.items():
            sha = model.save(out / f"{name}.pwf")
            print(f"{out / f'{name}.pwf'}  sha256 {sha}")
        write_json(outcome_report(outcome), out / "report.json")
        plot_scores(outcome.test_scores, outcome.policy.threshold, out / "report.png", title=_title(sim, periods))
        print(msgspec.json.encode(summarise(outcome.test)).decode())
        return 0 if all(outcome.test.targets_met.values()) else 1
    return _retrain(args, sim, train, periods, source_url, registry_url or str(out / "registry"))


def _retrain(
    args: argparse.Namespace, sim: SimulationConfig, train: TrainConfig, periods: Periods, source: str | None, reg: str
) -> int:
    from plantwatch.models.datasets import reading_assets
    from plantwatch.services.retraining import retrain, simulator_evaluator

    if source is None:
        assets = simulator_training_assets(sim, train, periods)
        meta: dict[str, Any] = {"kind": "simulator", "plant": sim.plant, "seed": sim.seed}
    else:
        from plantwatch.adapters.archive_reader import read_archive

        start, end = _ms(args.start, 0), _ms(args.end, int(time.time() * 1000))
        unreadable: list[tuple[str, str]] = []
        columns = read_archive(
            _store(source),
            start_ms=start,
            end_ms=end,
            plant=args.plant,
            unreadable=unreadable,
            max_readings=args.max_readings,
        )
        for key, reason in unreadable:
            print(f"plantwatch train: archive object {key} is unreadable and was left out: {reason}", file=sys.stderr)
        assets = reading_assets(columns, train.spec)
        if args.end is None and len(columns.ts):
            # "Until now" is recorded as the newest reading read, not the wall clock: same data, same artifact.
            end = int(columns.ts.max()) + 1
        meta = {"kind": "archive", "url": source, "start_ms": start, "end_ms": end, "readings": len(columns)}
        if unreadable:
            meta["unreadable_objects"] = len(unreadable)
        if (sample := columns.sample) is not None:
            meta["sample"] = msgspec.to_builtins(sample)
            print(
                f"plantwatch train: {sample.read} readings in the window, more than --max-readings: kept {sample.kept}"
                f" of {sample.blocks} blocks of {sample.block_ms // 60_000} minutes ({len(columns)} readings)",
                file=sys.stderr,
            )
        if not assets:
            print(f"no complete feature windows in {source} between {args.start} and {args.end}", file=sys.stderr)
            return 2
    results = retrain(
        assets,
        train=train,
        registry=ModelRegistry(_store(reg)),
        evaluator=simulator_evaluator(sim, train, periods),
        source=meta,
    )
    for r in results:
        if not r.trained:
            print(f"{r.name}: {r.reason} (the simulated plant: --lines, --assets-per-line)", file=sys.stderr)
            continue
        verdict = "promoted" if r.promoted else "rejected"
        print(f"{r.name} v{r.version}: {verdict} ({r.reason}); test {msgspec.json.encode(r.metrics).decode()}")
    return 0 if all(r.trained for r in results) and not meta.get("unreadable_objects") else 2


def _title(sim: SimulationConfig, periods: Periods) -> str:
    return (
        f"{sim.plant}: {sim.lines} lines x {sim.assets_per_line} assets, test period {periods.test_days:g} simulated "
        "day(s)"
    )
