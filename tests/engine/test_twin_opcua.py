"""The twin fed by a live OPC UA server equals the twin fed by a CSV replay of the same rows.

A local ``asyncua`` server on 127.0.0.1 (started and stopped here) publishes a recorded batch row by row
-- biomass in mg/L, substrate in g/L, the sample time in minutes -- and the twin's client reads it
through a node map with units. The server writes the rows back to back, without a pause, once the
client's subscription is in place: a client that polled would miss most of them.
"""

import socket
import threading
import time
from datetime import UTC

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

    def subscribed():
        subscriptions = srv.aio_obj.iserver.subscription_service.subscriptions.values()
        return any(len(sub.monitored_item_srv._monitored_items) == 4 for sub in subscriptions)

    def publish():
        deadline = time.monotonic() + 30
        while not subscribed() and time.monotonic() < deadline:
            time.sleep(0.02)
        for _, row in stream.iterrows():
            nodes["SampleTime"].write_value(float("nan"))  # a sample in progress: readers wait
            # only what is measured in this sample is written (a node not written is not measured again)
            if not pd.isna(row["X"]):
                nodes["Biomass"].write_value(float(row["X"]) * 1000.0)
                nodes["Biomass_sd"].write_value(float(row["X_sigma"]) * 1000.0)
            if not pd.isna(row["S"]):
                nodes["Substrate"].write_value(float(row["S"]))
            nodes["SampleTime"].write_value(float(row["time"]) * 60.0)  # the time last: the row is complete

    publisher = threading.Thread(target=publish, daemon=True)
    publisher.start()
    yield url
    publisher.join(timeout=60)
    srv.stop()


def test_opcua_stream_gives_the_same_estimates_as_the_csv_replay(server, stream, tmp_path):
    model = biotwin.load_model(MONOD)
    live = biotwin.Twin(model, "default", estimate=["mu_max"])
    node_map = read_node_map(NODE_MAP, live)
    chunks = opcua_chunks(server, node_map, publish_s=0.05, stop_time=float(stream["time"].iloc[-1]), idle_timeout_s=30)
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
        "--publish-s",
        "0.05",
        "--idle-timeout-s",
        "5",
        "--out",
        str(out),
    ]
    assert cli.main(args) == 0, capsys.readouterr().err
    estimates = pd.read_csv(out / "estimates.csv")
    assert list(estimates["update_time"]) == list(stream["time"])
    assert (out / "summary.json").is_file() and (out / "forecasts.csv").is_file()


def test_rows_are_assembled_by_timestamp_whatever_order_a_publish_delivers_its_items():
    """A publish groups changes by item: the sample time may arrive before its values, next to the next sample's."""
    from datetime import datetime, timedelta
    from types import SimpleNamespace

    from asyncua import ua

    from biotwin.twin.opcua import _RowAssembler

    twin = biotwin.Twin(biotwin.load_model(MONOD), "default", estimate=["mu_max"])
    rows = _RowAssembler(read_node_map(NODE_MAP, twin))
    t0 = datetime(2026, 12, 7, tzinfo=UTC)

    def change(node, value, ms, status=ua.StatusCodes.Good):
        dv = ua.DataValue(
            ua.Variant(value), StatusCode=ua.StatusCode(status), SourceTimestamp=t0 + timedelta(milliseconds=ms)
        )
        node = SimpleNamespace(nodeid=ua.NodeId.from_string(f"ns=2;s={node}"))
        rows.datachange_notification(node, value, SimpleNamespace(monitored_item=SimpleNamespace(Value=dv)))

    # one publish, filed item by item: the times first, then each node's queue
    change("SampleTime", 60.0, 3)  # sample 1 complete at 3 ms
    change("SampleTime", 120.0, 7)  # sample 2 complete at 7 ms
    change("Biomass", 1500.0, 1)
    change("Biomass", 1700.0, 5)
    change("Biomass_sd", 30.0, 2)  # not rewritten for sample 2 (unchanged): it keeps its value
    change("Substrate", 4.0, 2)
    change("Substrate", float("nan"), 6)  # not measured in sample 2
    first, second = rows.rows()
    assert first == {"time": 1.0, "X": 1.5, "X_sigma": 0.03, "S": 4.0, "S_sigma": 0.05}
    assert second == {"time": 2.0, "X": 1.7, "X_sigma": 0.03}
    change("Biomass", 1.0, 9, status=ua.StatusCodes.BadSensorFailure)  # a bad status is not a value
    change("SampleTime", 180.0, 10)
    change("SampleTime", 180.0, 11)  # the same sample time again is no new row
    assert rows.rows() == [{"time": 3.0}]
    # a value is a measurement once: a node not written since the last sample is not measured again
    change("Biomass", 1800.0, 12)
    change("SampleTime", 240.0, 13)
    change("SampleTime", 300.0, 14)  # nothing written for sample 5
    assert rows.rows() == [{"time": 4.0, "X": 1.8, "X_sigma": 0.03}, {"time": 5.0}]
    change("Biomass", 1800.0, 15)  # the same value written again is a new measurement (trigger with timestamp)
    change("SampleTime", 360.0, 16)
    assert rows.rows() == [{"time": 6.0, "X": 1.8, "X_sigma": 0.03}]
    # a value without any timestamp cannot be placed: the stream stops by name instead of guessing
    bare = ua.DataValue(ua.Variant(2.0))
    node = SimpleNamespace(nodeid=ua.NodeId.from_string("ns=2;s=Substrate"))
    rows.datachange_notification(node, 2.0, SimpleNamespace(monitored_item=SimpleNamespace(Value=bare)))
    assert "ns=2;s=Substrate carries neither a source nor a server timestamp" in rows.error


def test_a_resumed_subscription_does_not_count_the_values_it_finds_again():
    """Reconnecting after a kill, the subscription first sends each node's current value with its original
    timestamp: a titer written before the kill (and archived) would be counted again in the first row. A
    resumed assembler takes those first values as used; values written after the connection count."""
    from datetime import datetime, timedelta
    from types import SimpleNamespace

    from asyncua import ua

    from biotwin.twin.opcua import _RowAssembler

    twin = biotwin.Twin(biotwin.load_model(MONOD), "default", estimate=["mu_max"])
    t0 = datetime(2026, 12, 7, tzinfo=UTC)

    def feeder(rows):
        def change(node, value, ms):
            dv = ua.DataValue(ua.Variant(value), SourceTimestamp=t0 + timedelta(milliseconds=ms))
            node = SimpleNamespace(nodeid=ua.NodeId.from_string(f"ns=2;s={node}"))
            rows.datachange_notification(node, value, SimpleNamespace(monitored_item=SimpleNamespace(Value=dv)))

        return change

    for resume, expected in ((False, {"X": 1.5, "X_sigma": 0.03, "S": 4.0, "S_sigma": 0.05}), (True, {})):
        rows = _RowAssembler(read_node_map(NODE_MAP, twin), resume=resume)
        change = feeder(rows)
        change("SampleTime", 1500.0, 20)  # the current sample (25 h) as the subscription starts
        change("Biomass", 1500.0, 1)  # written at an earlier sample, before the kill
        change("Biomass_sd", 30.0, 1)
        change("Substrate", 4.0, 1)
        assert rows.rows() == [{"time": 25.0, **expected}], resume
        change("Substrate", 3.5, 21)  # written after the connection: a measurement
        change("SampleTime", 1560.0, 22)
        assert rows.rows() == [{"time": 26.0, "S": 3.5, "S_sigma": 0.05}], resume


def _bare_server():
    """A started server with the four nodes of NODE_MAP holding NaN (no publisher)."""
    from asyncua import ua
    from asyncua.sync import Server

    url = f"opc.tcp://127.0.0.1:{_free_port()}/biotwin/"
    srv = Server()
    srv.set_endpoint(url)
    idx = srv.register_namespace("urn:biotwin:test")
    reactor = srv.nodes.objects.add_object(idx, "Bioreactor")
    nodes = {
        name: reactor.add_variable(ua.NodeId(name, idx), name, ua.Variant(float("nan"), ua.VariantType.Double))
        for name in ("SampleTime", "Biomass", "Biomass_sd", "Substrate")
    }
    srv.start()
    return srv, url, nodes


def test_a_node_the_server_does_not_have_and_a_lost_connection_stop_the_stream_by_name():
    """Review of the subscription: both were silent (no rows; a run without an idle timeout hung)."""
    twin = biotwin.Twin(biotwin.load_model(MONOD), "default", estimate=["mu_max"])
    srv, url, nodes = _bare_server()
    try:
        wrong = {
            **NODE_MAP,
            "variables": {**NODE_MAP["variables"], "S": {"node": "ns=2;s=NoSuchNode", "unit": "g/L", "sigma": 0.05}},
        }
        with pytest.raises(DataError, match="refused to monitor node.*ns=2;s=NoSuchNode"):
            list(opcua_chunks(url, read_node_map(wrong, twin), publish_s=0.05))
        chunks = opcua_chunks(url, read_node_map(NODE_MAP, twin), publish_s=0.05)
        for name, value in (("Biomass", 1500.0), ("Biomass_sd", 30.0), ("Substrate", 4.0), ("SampleTime", 60.0)):
            nodes[name].write_value(value)
        first = next(chunks)
        assert first.iloc[0]["time"] == 1.0 and first.iloc[0]["X"] == 1.5
    finally:
        srv.stop()
    t0 = time.monotonic()
    with pytest.raises(DataError, match="connection lost"):
        next(chunks)
    print(f"\nconnection loss reported after {time.monotonic() - t0:.1f} s")
