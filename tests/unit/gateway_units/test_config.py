"""The gateway configuration file: the documented examples load; mistakes are refused with a usable reason."""

from __future__ import annotations

from pathlib import Path

import pytest

from plantwatch.cli import main
from plantwatch.edge.config import ConfigError, FullPolicy, load_config, parse_config
from plantwatch.models import ForestModel

ROOT = Path(__file__).resolve().parents[3]
EXAMPLES = sorted((ROOT / "edge" / "examples").glob("*.toml"))


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_every_example_loads(path: Path) -> None:
    config = load_config(path)
    assert config.sources
    assert config.spool.when_full in tuple(FullPolicy)
    if config.model_path is not None:  # relative to the repository root, where the examples say to start
        model = ForestModel.load(ROOT / config.model_path)
        assert model.info.name.startswith(f"{config.plant}.")


def test_examples_cover_every_source_kind() -> None:
    kinds = {s.__struct_config__.tag for p in EXAMPLES for s in load_config(p).sources}
    assert kinds == {"modbus", "opcua", "simulator", "mqtt"}


@pytest.mark.parametrize(
    ("document", "reason"),
    [
        ({"gateway_id": "gw/1", "plant": "p", "sources": []}, "gateway_id"),
        ({"gateway_id": "gw", "plant": "p"}, "sources"),
        ({"gateway_id": "gw", "plant": "p", "sources": [], "spool": {"budget": 1}}, "budget"),
        ({"gateway_id": "gw", "plant": "p", "sources": [{"kind": "profibus"}]}, "profibus"),
        (
            {
                "gateway_id": "gw", "plant": "p",
                "sources": [{"kind": "modbus", "host": "h", "line": "l", "sensors": [
                    {"asset": "a", "sensor_id": "s", "sensor_type": "pressure", "unit": "kPa", "address": 0,
                     "data_type": "float64"}
                ]}],
            },
            "float64",
        ),
        # a source's line or asset every reading carries: a name the cloud refuses would lose them all there
        ({"gateway_id": "gw", "plant": "p", "sources": [{"kind": "modbus", "host": "h", "line": "Press Line 2",
                                                         "sensors": []}]}, "line 'Press Line 2'"),
        ({"gateway_id": "gw", "plant": "p", "sources": [{"kind": "opcua", "endpoint": "opc.tcp://h:4840",
                                                         "line": "line/2", "nodes": []}]}, "line 'line/2'"),
        ({"gateway_id": "gw", "plant": "p", "sources": [{"kind": "simulator", "line": "line 1"}]}, "line 'line 1'"),
        ({"gateway_id": "gw", "plant": "p", "sources": [{"kind": "mqtt", "asset": "Unassigned Sensors"}]},
         "asset 'Unassigned Sensors'"),
        (  # two assets' sensors under one id: one's readings would be filed as the other's
            {
                "gateway_id": "gw", "plant": "p",
                "sources": [
                    {"kind": "modbus", "host": "h", "line": "l", "sensors": [
                        {"asset": "pump-1", "sensor_id": "temp", "sensor_type": "temperature", "unit": "degC",
                         "address": 0},
                    ]},
                    {"kind": "opcua", "endpoint": "opc.tcp://h:4840", "line": "l", "nodes": [
                        {"asset": "pump-2", "sensor_id": "temp", "sensor_type": "temperature", "unit": "degC",
                         "node_id": "ns=2;i=1"},
                    ]},
                ],
            },
            "sensor_id 'temp' is configured twice",
        ),
    ],
)  # fmt: skip
def test_mistakes_are_refused_with_the_reason(document: dict[str, object], reason: str) -> None:
    with pytest.raises(ConfigError, match=reason):
        parse_config(document)


def test_cli_refuses_a_broken_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "gw.toml"
    path.write_text("gateway_id = [")
    assert main(["gateway", "--config", str(path), "--once"]) == 2
    assert "not valid TOML" in capsys.readouterr().err
