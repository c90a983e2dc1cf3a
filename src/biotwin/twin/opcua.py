"""Process data from an OPC UA server (the interface PAT systems and bioreactor controllers expose).

A node map (YAML) names, for each measured model state, the node that carries it and its unit, and
the node that carries the sample time::

    time: {node: "ns=2;s=SampleTime", unit: h}
    variables:
      Glc: {node: "ns=2;s=Glucose", unit: mM, sigma: 0.7}          # sigma in the node's unit
      Xv:  {node: "ns=2;s=VCD", unit: "1e6/mL", sigma_node: "ns=2;s=VCD_sd"}

The client (``asyncua``) reads the time node and every variable node in one Read request every
``poll_s`` seconds and emits a row when the sample time changes to a new finite value. The server's
side of the convention: while it writes a sample it sets the time node to NaN (or leaves it empty),
then writes the values, then the new time -- a read in the middle of an update sees no time and waits,
so a row never mixes two samples. Samples must be published more slowly than ``poll_s`` (PAT data
arrive every minutes to hours; a sample replaced before it was read is lost). A variable node holding
NaN (or nothing) is not measured in that row. Values are converted to the model's units; a map whose unit cannot be converted, or that names
an unknown state, is refused before connecting. A node that reads empty (a bad status, None) leaves
that variable unmeasured in the row.
"""

from __future__ import annotations

import math
import queue
import threading
import time as _time
from pathlib import Path

import pandas as pd

from biotwin.core import yaml_io
from biotwin.core.errors import DataError
from biotwin.core.units import convert_value, parse_unit


def read_node_map(path_or_dict, twin) -> dict:
    """The validated node map: ``{"time": (node, factor), "variables": {state: (node, factor, sigma, sigma_node)}}``.

    ``factor`` converts the node's unit to the model's (for the time: to the model's time unit).
    """
    where = str(path_or_dict) if not isinstance(path_or_dict, dict) else "node map"
    raw = path_or_dict if isinstance(path_or_dict, dict) else yaml_io.load(Path(path_or_dict).read_text())
    if not isinstance(raw, dict) or "time" not in raw or "variables" not in raw:
        raise DataError(f"{where}: expected keys 'time' and 'variables'")

    def factor(given, target, what):
        try:
            return convert_value(1.0, parse_unit(str(given), f"{where}: {what}"), parse_unit(target))
        except Exception as exc:  # noqa: BLE001 - any unit failure is the map's fault
            raise DataError(
                f"{where}: {what}: unit {given!r} cannot be converted to the model's {target!r} ({exc})"
            ) from None

    t = raw["time"]
    if not isinstance(t, dict) or "node" not in t or "unit" not in t:
        raise DataError(f"{where}: time: expected {{node: ..., unit: ...}}")
    out = {"time": (str(t["node"]), factor(t["unit"], twin.time_unit, "time")), "variables": {}}
    for name, spec in (raw["variables"] or {}).items():
        if name not in twin.measurable:
            raise DataError(
                f"{where}: variables: {name!r} is not a state or output of '{twin.model.name}' "
                f"({', '.join(twin.measurable)})"
            )
        if not isinstance(spec, dict) or "node" not in spec or "unit" not in spec:
            raise DataError(f"{where}: variables: {name}: expected {{node: ..., unit: ..., sigma: ...}}")
        if ("sigma" in spec) == ("sigma_node" in spec):
            raise DataError(f"{where}: variables: {name}: give exactly one of sigma (a number) or sigma_node")
        f = factor(spec["unit"], twin.unit_of(name), f"variables: {name}")
        sigma = spec.get("sigma")
        if sigma is not None and not (isinstance(sigma, (int, float)) and sigma > 0):
            raise DataError(f"{where}: variables: {name}: sigma must be a positive number, got {sigma!r}")
        out["variables"][name] = (str(spec["node"]), f, sigma, spec.get("sigma_node"))
    if not out["variables"]:
        raise DataError(f"{where}: variables: none given")
    return out


def opcua_chunks(
    url: str, node_map: dict, poll_s: float = 0.5, idle_timeout_s: float | None = None, stop_time: float | None = None
):
    """Rows from an OPC UA server as one-row DataFrames (the twin's input), as they are published.

    Parameters
    ----------
    url : str
        ``opc.tcp://host:port/path``.
    node_map : dict
        From :func:`read_node_map`.
    poll_s : float
        Seconds between reads.
    idle_timeout_s : float, optional
        Stop when the sample time has not changed for this long (None: run until ``stop_time``).
    stop_time : float, optional
        Stop after the row at or after this time [model time unit].
    """
    from asyncua.sync import Client

    time_node, time_factor = node_map["time"]
    names = list(node_map["variables"])
    ids = [time_node]
    for name in names:
        node, _, _, sigma_node = node_map["variables"][name]
        ids.append(node)
        if sigma_node:
            ids.append(sigma_node)
    rows: queue.Queue = queue.Queue()
    stop = threading.Event()

    def poll():  # a reader thread: the twin's updates and forecasts never delay a read
        client = Client(url, timeout=10)
        try:
            client.connect()
        except Exception as exc:  # noqa: BLE001 - reported to the consumer
            rows.put(DataError(f"OPC UA {url}: cannot connect ({type(exc).__name__}: {exc})"))
            return
        try:
            nodes = [client.get_node(i) for i in ids]
            last_time, last_change = None, _time.monotonic()
            while not stop.is_set():
                values = client.read_values(nodes)
                t = values[0]
                if isinstance(t, (int, float)) and math.isfinite(t) and t != last_time:
                    last_time, last_change = t, _time.monotonic()
                    row = _row(values, float(t) * time_factor)
                    rows.put(pd.DataFrame([row]))
                    if stop_time is not None and row["time"] >= stop_time:
                        break
                elif idle_timeout_s is not None and _time.monotonic() - last_change > idle_timeout_s:
                    break
                _time.sleep(poll_s)
        except Exception as exc:  # noqa: BLE001 - reported to the consumer
            rows.put(DataError(f"OPC UA {url}: {type(exc).__name__}: {exc}"))
        finally:
            rows.put(None)
            client.disconnect()

    def _row(values, t):
        row, k = {"time": t}, 1
        for name in names:
            _, f, sigma, sigma_node = node_map["variables"][name]
            value = values[k]
            k += 1
            sd = sigma
            if sigma_node:
                sd = values[k]
                k += 1
            if value is None or sd is None or not math.isfinite(value) or not math.isfinite(sd):
                continue  # not measured in this row (empty or NaN)
            row[name], row[f"{name}_sigma"] = float(value) * f, float(sd) * f
        return row

    reader = threading.Thread(target=poll, daemon=True)
    reader.start()
    try:
        while True:
            item = rows.get()
            if item is None:
                return
            if isinstance(item, Exception):
                raise item
            yield item
    finally:
        stop.set()
        reader.join(timeout=30)
