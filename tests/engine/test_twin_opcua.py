"""The twin fed by a live OPC UA server equals the twin fed by a CSV replay of the same rows.

A local ``asyncua`` server on 127.0.0.1 (started and stopped here) publishes a recorded batch row by row
-- biomass in mg/L, substrate in g/L, the sample time in minutes -- and the twin's client reads it
through a node map with units.
"""

import socket
import threading
import time

import pandas as pd
import pytest

import biotwin
from biotwin.core.errors import DataError
from biotwin.twin.opcua import opcua_chunks, read_node_map
from biotwin.twin.runner import record, run_replay
from biotwin.twin.streams import synthetic_stream
from support import TEST_MODELS

MONOD = TEST_MODELS / "monod_switch"
NODE_MAP = {
    "time": {"node": "ns=2;s=SampleTime", "unit": "min"},
    "variables": {
        "X": {"node": "ns=2;s=Biomass", "unit": "mg/L", "sigma_node": "ns=2;s=Biomass_sd"},
        "S": {"node": "ns=2;s=Substrate", "unit": "g/L", "sigma": 0.05},
    },
}


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def stream():
    model = biotwin.load_model(MONOD)
    frame, _ = synthetic_stream(model, "default", {"mu_max": 0.55}, {"S": (0.5, 0.05, 0.0), "X": (2.0, 0, 0.05)})
    frame["S_sigma"] = frame["S_sigma"].where(frame["S"].isna(), 0.05)
    return frame[frame["time"] <= 12.0].reset_index(drop=True)


@pytest.fixture
def server(stream):
    from asyncua import ua
    from asyncua.sync import Server

    url = f"opc.tcp://127.0.0.1:{_free_port()}/biotwin/"
    srv = Server()
    srv.set_endpoint(url)
    idx = srv.register_namespace("urn:biotwin:test")
    assert idx == 2
    reactor = srv.nodes.objects.add_object(idx, "Bioreactor")
    nodes = {
        name: reactor.add_variable(ua.NodeId(name, idx), name, ua.Variant(float("nan"), ua.VariantType.Double))
        for name in ("SampleTime", "Biomass", "Biomass_sd", "Substrate")
    }
    srv.start()

    def publish():
        time.sleep(1.0)  # the client connects
        for _, row in stream.iterrows():
            nodes["SampleTime"].write_value(float("nan"))  # a sample in progress: readers wait
            nodes["Biomass"].write_value(float("nan") if pd.isna(row["X"]) else float(row["X"]) * 1000.0)
            nodes["Biomass_sd"].write_value(float("nan") if pd.isna(row["X"]) else float(row["X_sigma"]) * 1000.0)
            nodes["Substrate"].write_value(float("nan") if pd.isna(row["S"]) else float(row["S"]))
            nodes["SampleTime"].write_value(float(row["time"]) * 60.0)  # the time last: the row is complete
            time.sleep(0.25)

    publisher = threading.Thread(target=publish, daemon=True)
    publisher.start()
    yield url
    publisher.join(timeout=60)
    srv.stop()


def test_opcua_stream_gives_the_same_estimates_as_the_csv_replay(server, stream, tmp_path):
    model = biotwin.load_model(MONOD)
    live = biotwin.Twin(model, "default", estimate=["mu_max"])
    node_map = read_node_map(NODE_MAP, live)
    chunks = opcua_chunks(server, node_map, poll_s=0.01, stop_time=float(stream["time"].iloc[-1]), idle_timeout_s=30)
    record(live, chunks, tmp_path / "live", forecast_every=6)
    run_replay(biotwin.Twin(model, "default", estimate=["mu_max"]), stream, tmp_path / "csv", forecast_every=6)
    a, b = pd.read_csv(tmp_path / "csv" / "estimates.csv"), pd.read_csv(tmp_path / "live" / "estimates.csv")
    print(
        f"\nOPC UA: {len(b)} rows received of {len(stream)} published; mu_max {b['mu_max'].iloc[-1]:.6f} "
        f"(CSV replay {a['mu_max'].iloc[-1]:.6f})"
    )
    assert len(b) == len(a) == len(stream)
    pd.testing.assert_frame_equal(a.drop(columns="update_s"), b.drop(columns="update_s"), rtol=1e-9)


def test_node_map_mistakes_are_refused_before_connecting():
    twin = biotwin.Twin(biotwin.load_model(MONOD), "default", estimate=["mu_max"])
    bad_unit = {**NODE_MAP, "variables": {"X": {"node": "n", "unit": "mL", "sigma": 1}}}
    with pytest.raises(DataError, match="unit 'mL' cannot be converted"):
        read_node_map(bad_unit, twin)
    with pytest.raises(DataError, match="'Xv' is not a state"):
        read_node_map({**NODE_MAP, "variables": {"Xv": {"node": "n", "unit": "g/L", "sigma": 1}}}, twin)
    with pytest.raises(DataError, match="exactly one of sigma"):
        read_node_map({**NODE_MAP, "variables": {"X": {"node": "n", "unit": "g/L"}}}, twin)


def test_cli_twin_serve_records_the_live_batch(server, stream, tmp_path, capsys):
    import yaml

    from biotwin.tools import cli

    nodes = tmp_path / "nodes.yaml"
    nodes.write_text(yaml.safe_dump(NODE_MAP))
    out = tmp_path / "rec"
    args = [
        "twin",
        "serve",
        str(MONOD),
        "--recipe",
        "default",
        "--opcua",
        server,
        "--nodes",
        str(nodes),
        "--estimate",
        "mu_max",
        "--poll-s",
        "0.01",
        "--idle-timeout-s",
        "5",
        "--out",
        str(out),
    ]
    assert cli.main(args) == 0, capsys.readouterr().err
    estimates = pd.read_csv(out / "estimates.csv")
    assert list(estimates["update_time"]) == list(stream["time"])
    assert (out / "summary.json").is_file() and (out / "forecasts.csv").is_file()
