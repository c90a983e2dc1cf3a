"""A live view of the twin for JupyterLab: measurements arriving, the estimate with its band, the forecast
to the end of the batch with its 95 % band, and alarms marked."""

from __future__ import annotations

import math
import time

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from biotwin.twin.streams import replay

ESTIMATE, FORECAST, DATA, ALARM = "#1f77b4", "#ff7f0e", "black", "#d62728"


def _band(color, fill, name):
    """A 95 % band: its lower edge (no name, no legend) and its upper edge filled down to it."""
    edge = {"mode": "lines", "line": {"color": color, "width": 0}}
    return [edge, {**edge, "fill": "tonexty", "fillcolor": fill, "name": name}]


# per panel, in this order: estimate band (lower edge, upper edge filled to it), estimate, forecast band
# (lower, upper), forecast, measurements, alarms; a band's lower edge has no name and no legend entry
TRACES = [
    *_band(ESTIMATE, "rgba(31,119,180,0.2)", "estimate 95 %"),
    {"mode": "lines", "line": {"color": ESTIMATE}, "name": "estimate"},
    *_band(FORECAST, "rgba(255,127,14,0.2)", "forecast 95 %"),
    {"mode": "lines", "line": {"color": FORECAST, "dash": "dash"}, "name": "forecast"},
    {"mode": "markers", "marker": {"color": DATA, "size": 5}, "name": "measured"},
    {"mode": "markers", "marker": {"color": ALARM, "size": 11, "symbol": "x"}, "name": "alarm"},
]


class TwinView:
    """A plotly figure per state panel that follows a :class:`biotwin.twin.Twin` update by update.

    Parameters
    ----------
    twin : biotwin.twin.Twin
    variables : list of str, optional
        States to show (default: the first six).
    widget : bool
        Draw into a ``plotly.graph_objects.FigureWidget`` (live in JupyterLab) instead of a Figure.
    """

    def __init__(self, twin, variables=None, widget=True, columns=3):
        self.twin = twin
        self.variables = list(variables or twin.state_names[:6])
        unknown = set(self.variables) - set(twin.state_names)
        if unknown:
            raise ValueError(f"variables: unknown state(s) {sorted(unknown)}; states: {twin.state_names}")
        rows = math.ceil(len(self.variables) / columns)
        titles = [f"{v} [{twin.units.get(v, '')}]" for v in self.variables]
        base = make_subplots(rows=rows, cols=columns, subplot_titles=titles, horizontal_spacing=0.08)
        self.figure = go.FigureWidget(base) if widget else base
        self._traces = {}
        for i, v in enumerate(self.variables):
            r, c = i // columns + 1, i % columns + 1
            for spec in TRACES:
                named = "name" in spec
                self.figure.add_scatter(
                    x=[], y=[], row=r, col=c, showlegend=named and i == 0, hoverinfo=None if named else "skip", **spec
                )
            n = len(self.figure.data)
            self._traces[v] = list(range(n - len(TRACES), n))
            self.figure.update_xaxes(title_text=f"time [{twin.time_unit}]", range=[0, twin.t_end], row=r, col=c)
        self.figure.update_layout(
            height=280 * rows + 80, template="plotly_white", margin={"l": 50, "r": 20, "t": 50, "b": 40}
        )
        self.measured = {v: ([], []) for v in self.variables}
        self.alarm_times = []

    def show(self, update, rows=None, forecast=True) -> None:
        """Draw the twin's history, the new ``rows``' measurements and (optionally) ``update``'s forecast."""
        if rows is not None:
            for v in self.variables:
                if v in rows:
                    ok = rows[v].notna()
                    self.measured[v][0].extend(rows.loc[ok, "time"].tolist())
                    self.measured[v][1].extend(rows.loc[ok, v].tolist())
        self.alarm_times += [a["update_time"] for a in update.alarms]
        hist = self.twin.history
        times = [h.time for h in hist]
        fc = update.forecast() if forecast else None
        with self.figure.batch_update() if hasattr(self.figure, "batch_update") else _nothing():
            for v in self.variables:
                lo_t, band_t, mean_t, flo_t, fband_t, fmean_t, data_t, alarm_t = (
                    self.figure.data[k] for k in self._traces[v]
                )
                mean = np.array([h.states[v][0] for h in hist])
                sd = np.array([h.states[v][1] for h in hist])
                lo_t.x, lo_t.y = times, mean - 1.96 * sd
                band_t.x, band_t.y = times, mean + 1.96 * sd
                mean_t.x, mean_t.y = times, mean
                if fc is not None:
                    f = fc[fc["variable"] == v]
                    flo_t.x, flo_t.y = f["time"], f["lo95"]
                    fband_t.x, fband_t.y = f["time"], f["hi95"]
                    fmean_t.x, fmean_t.y = f["time"], f["value"]
                data_t.x, data_t.y = self.measured[v]
                if self.alarm_times:
                    at = [t for t in self.alarm_times if t in times]
                    alarm_t.x = at
                    alarm_t.y = [mean[times.index(t)] for t in at]
        title = (
            f"t = {update.time:g} {self.twin.time_unit}; "
            + ", ".join(f"{p} {v:.4g} +- {s:.2g}" for p, (v, s) in update.parameters.items())
            + (f"; ALARM: {update.alarms[0]['message']}" if update.alarms else "")
        )
        self.figure.update_layout(title={"text": title, "font": {"size": 13}})


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def watch(twin, stream, speed=None, every=24.0, variables=None, widget=True):
    """Replay ``stream`` (CSV path or DataFrame) through ``twin`` and draw it as it goes.

    Parameters
    ----------
    speed : float, optional
        Model time units per wall-clock second (None: as fast as the twin updates).
    every : float
        Redraw (with a forecast) at most once per this many model time units, and at the end.

    Returns
    -------
    TwinView
        Display ``view.figure`` before calling to watch it live in JupyterLab.
    """
    view = TwinView(twin, variables=variables, widget=widget)
    next_draw, update, pending = 0.0, None, []
    start = time.perf_counter()
    for rows in replay(stream):
        update = twin.update(rows)
        pending.append(rows)
        if speed:
            lag = update.time / speed - (time.perf_counter() - start)
            if lag > 0:
                time.sleep(lag)
        if update.time >= next_draw or update.alarms:
            view.show(update, pd.concat(pending))
            pending = []
            next_draw = (math.floor(update.time / every) + 1) * every
    if update is not None and pending:
        view.show(update, pd.concat(pending))
    return view
