"""Process data from an OPC UA server (the interface PAT systems and bioreactor controllers expose).

A node map (YAML) names, for each measured model state or output, the node that carries it and its
unit, and the node that carries the sample time::

    time: {node: "ns=2;s=SampleTime", unit: h}
    variables:
      Glc: {node: "ns=2;s=Glucose", unit: mM, sigma: 0.7}          # sigma in the node's unit
      Xv:  {node: "ns=2;s=VCD", unit: "1e6/mL", sigma_node: "ns=2;s=VCD_sd"}

The client (``asyncua``) holds one subscription with a monitored item on every node, each with a
server-side FIFO queue (``queue_size``), a sampling interval of 0 and the data-change trigger
StatusValueTimestamp (every write is reported, also one that repeats the last value: a probe can read the
same value twice), and reads it in its own thread and event loop, so an update of the twin never delays it. The server's side of the convention: a sample's
values are written first and its sample time last, every value stamped (source or server timestamp)
from one clock with strictly increasing stamps from one write to the next. A row is emitted for every
new finite sample time; it holds, for each variable, the latest value whose timestamp is not later
than the sample time's own (a publish delivers its changes grouped per node, so the arrival order
cannot be used), if that value was written after the one the previous row used: a value is a
measurement once. A node not written since the last sample is not measured in this row (a titer
sampled daily is not read into every hourly row, which would count one measurement 24 times); a
sigma node keeps its last value (it describes the sensor, not a sample). This assumes what an event-driven server such as asyncua's does: every write queued
at once, in order, and a publish carrying all queued changes. A sampling server (one that reads
its values at a rate rather than on every write) or one that splits a publish can deliver a value
after the sample time that followed it; there, publish samples more slowly than the server samples.
A node whose queue overflowed is logged (raise ``queue_size``); a node without timestamps, a node the
server refuses to monitor and a lost connection stop the stream with a named error (``--resume``
continues a recorded run). A variable node holding NaN (or nothing, or a bad status) is not measured in
that row. Values
are converted to the model's units; a map whose unit cannot be converted, or that names an unknown
state, is refused before connecting.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time as _time
from pathlib import Path

import pandas as pd

from biotwin.core import yaml_io
from biotwin.core.checks import is_number
from biotwin.core.errors import DataError
from biotwin.core.units import convert_value, parse_unit

log = logging.getLogger(__name__)


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
    url: str,
    node_map: dict,
    publish_s: float = 0.1,
    idle_timeout_s: float | None = None,
    stop_time: float | None = None,
    queue_size: int = 10000,
    resume: bool = False,
):
    """Rows from an OPC UA subscription as one-row DataFrames (the twin's input), as they are published.

    Parameters
    ----------
    url : str
        ``opc.tcp://host:port/path``.
    node_map : dict
        From :func:`read_node_map`.
    publish_s : float
        Publishing interval of the subscription [s]: how often the server sends what changed.
    idle_timeout_s : float, optional
        Stop when no new sample time has arrived for this long [s] (None: run until ``stop_time``).
    stop_time : float, optional
        Stop after the row at or after this time [model time unit].
    queue_size : int
        Changes the server keeps per node between two publishes; more changes than this within one
        publishing interval lose the oldest.
    resume : bool
        The twin has used this batch's values before (``--resume``): a subscription first sends every node's
        current value with its original timestamp, and a value written before the connection may be one
        the archive already holds (a titer written at sample 18, archived, re-sent when the twin reconnects at
        sample 25). Those first values are taken as used; only values written after the connection are
        measurements. (Samples written while the twin was down are lost, never counted twice.)
    """
    if not (is_number(publish_s) and publish_s > 0):
        raise DataError(f"publish_s must be a positive number of seconds, got {publish_s!r}")
    if not (isinstance(queue_size, int) and not isinstance(queue_size, bool) and queue_size >= 2):
        raise DataError(f"queue_size must be an integer of at least 2 (changes kept per node), got {queue_size!r}")
    rows: queue.Queue = queue.Queue()
    stop = threading.Event()
    assembler = _RowAssembler(node_map, resume=resume)

    async def follow():
        from asyncua import Client, ua

        client = Client(url, timeout=10)
        lost: list = []

        async def on_lost(exc):  # asyncua's connection supervisor (no auto-reconnect): the batch's data stop
            lost.append(exc)

        client.connection_lost_callback = on_lost
        try:
            await client.connect()
        except Exception as exc:  # noqa: BLE001 - reported to the consumer
            rows.put(DataError(f"OPC UA {url}: cannot connect ({type(exc).__name__}: {exc})"))
            return
        try:
            subscription = await client.create_subscription(publish_s * 1000.0, assembler)
            nodes = [client.get_node(i) for i in assembler.node_ids]
            handles = await subscription.create_monitored_items(_monitored_items(nodes, queue_size))
            refused = [f"{i} ({h.name})" for i, h in zip(assembler.node_ids, handles) if isinstance(h, ua.StatusCode)]
            if refused:
                raise DataError(f"the server refused to monitor node(s) {', '.join(refused)}: check the node map")
            last_change = _time.monotonic()
            while not stop.is_set():
                await asyncio.sleep(min(publish_s, 0.05))
                if assembler.error is not None:
                    raise DataError(assembler.error)
                emitted = assembler.rows()
                if stop_time is not None:  # nothing after the row that reaches the end of the recipe
                    last = next((k for k, row in enumerate(emitted) if row["time"] >= stop_time), None)
                    emitted = emitted if last is None else emitted[: last + 1]
                for row in emitted:
                    rows.put(pd.DataFrame([row]))
                if emitted:
                    last_change = _time.monotonic()
                    if stop_time is not None and emitted[-1]["time"] >= stop_time:
                        break
                elif lost:
                    raise DataError(f"connection lost ({type(lost[0]).__name__}: {lost[0]}); resume with --resume")
                elif idle_timeout_s is not None and _time.monotonic() - last_change > idle_timeout_s:
                    break
        except DataError as exc:
            rows.put(DataError(f"OPC UA {url}: {exc}"))
        except Exception as exc:  # noqa: BLE001 - reported to the consumer
            rows.put(DataError(f"OPC UA {url}: {type(exc).__name__}: {exc}"))
        finally:
            rows.put(None)
            try:
                await client.disconnect()
            except Exception:  # noqa: BLE001, S110 - the connection may already be gone
                pass

    reader = threading.Thread(target=lambda: asyncio.run(follow()), daemon=True)
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


class _RowAssembler:
    """The subscription's handler: files every data change and builds rows at each new sample time.

    Runs in the reader's event loop only (``datachange_notification`` from the subscription's
    dispatch, ``rows`` from the reader's loop between two sleeps), so no lock is needed, and a
    publish's changes are all filed before ``rows`` runs (they are dispatched together).
    """

    def __init__(self, node_map, resume=False):
        time_node, self.time_factor = node_map["time"]
        self.time_node = _canonical(time_node)
        self.variables = {
            name: (_canonical(node), f, sigma, _canonical(sigma_node) if sigma_node else None)
            for name, (node, f, sigma, sigma_node) in node_map["variables"].items()
        }
        ids = [self.time_node]
        for node, _, _, sigma_node in self.variables.values():
            ids += [node] + ([sigma_node] if sigma_node else [])
        self.node_ids = list(dict.fromkeys(ids))
        self.changes = {i: [] for i in self.node_ids}  # node -> [(timestamp, value)], in arrival order
        self.times = []  # [(timestamp, sample time)] not yet turned into rows
        self.last_time = None
        self.used = {}  # value node -> timestamp of the change the last row used (a value is used once)
        # resuming: each value node's first notification is its value at connection time, possibly used before
        self.initial = {node for node, _, _, _ in self.variables.values()} if resume else set()
        self.error = None  # why the stream cannot go on (read by the reader's loop)

    def datachange_notification(self, node, val, data):
        value = data.monitored_item.Value
        stamp = value.SourceTimestamp or value.ServerTimestamp
        nid = node.nodeid.to_string()
        if stamp is None:  # arrival order within a publish is per node: rows could mix samples
            self.error = (
                f"node {nid} carries neither a source nor a server timestamp; rows cannot be assembled "
                "safely (let the server stamp its values)"
            )
            return
        status = value.StatusCode
        if status is not None and status.value & _OVERFLOW == _OVERFLOW:
            log.warning("OPC UA node %s: the server's queue overflowed, changes were lost (raise queue_size)", nid)
        key = stamp.timestamp()
        if nid == self.time_node:
            if is_number(val):
                self.times.append((key, float(val)))
            return
        good = value.StatusCode is None or value.StatusCode.is_good()
        self.changes[nid].append((key, val if good else None))
        if nid in self.initial:  # the value at connection time, not a new measurement (resume)
            self.initial.discard(nid)
            self.used[nid] = max(key, self.used.get(nid, float("-inf")))

    def rows(self):
        """Rows for the sample times received so far, in order; each change is kept until superseded."""
        out = []
        for stamp, t in sorted(self.times):
            if t == self.last_time:
                continue
            self.last_time = t
            row = {"time": t * self.time_factor}
            for name, (node, f, sigma, sigma_node) in self.variables.items():
                written, value = self._at(node, stamp)
                if written is None or written <= self.used.get(node, float("-inf")):
                    continue  # not written since the last row: not measured in this one
                self.used[node] = written
                sd = self._at(sigma_node, stamp)[1] if sigma_node else sigma
                if not is_number(value) or not is_number(sd):
                    continue  # not measured in this row (empty or NaN)
                row[name], row[f"{name}_sigma"] = float(value) * f, float(sd) * f
            out.append(row)
        if self.times:
            last = max(s for s, _ in self.times)
            for nid, changes in self.changes.items():  # keep the last change at or before the last sample
                before = [c for c in changes if c[0] <= last]
                self.changes[nid] = before[-1:] + [c for c in changes if c[0] > last]
        self.times = []
        return out

    def _at(self, node, stamp):
        """``(timestamp, value)`` of the node's latest change at or before ``stamp``; ``(None, None)`` if none."""
        found = (None, None)
        for key, v in self.changes[node]:
            if key <= stamp:
                found = (key, v)
        return found


_OVERFLOW = 0x480  # StatusCode info bits: InfoType DataValue + Overflow (OPC UA Part 4, 7.34.1)


def _monitored_items(nodes, queue_size: int) -> list:
    """One monitored item per node on a fresh subscription: the Value attribute, sampled on every write,
    queued on the server (oldest dropped first, logged), reported on every write even of the same value
    (trigger StatusValueTimestamp; asyncua's ``subscribe_data_change`` reports value changes only)."""
    from asyncua import ua

    items = []
    for handle, node in enumerate(nodes, start=1):  # client handles unique within this subscription
        read = ua.ReadValueId()
        read.NodeId = node.nodeid
        read.AttributeId = ua.AttributeIds.Value
        params = ua.MonitoringParameters()
        params.ClientHandle = handle
        params.SamplingInterval = 0
        params.QueueSize = queue_size
        params.DiscardOldest = True
        params.Filter = ua.DataChangeFilter(Trigger=ua.DataChangeTrigger.StatusValueTimestamp)
        item = ua.MonitoredItemCreateRequest()
        item.ItemToMonitor = read
        item.MonitoringMode = ua.MonitoringMode.Reporting
        item.RequestedParameters = params
        items.append(item)
    return items


def _canonical(node_id: str) -> str:
    """The node id as asyncua prints it (``ns=2;s=X``), whatever spelling the map used."""
    from asyncua import ua

    try:
        return ua.NodeId.from_string(node_id).to_string()
    except Exception:  # noqa: BLE001 - an unparsable id: the client's get_node refuses it, reported as a DataError
        return node_id
