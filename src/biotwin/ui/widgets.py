"""Interactive explorers for JupyterLab: sliders over a recipe and parameters, live plotly figures.

``biotwin.explore(model)`` returns an :class:`Explorer`: sliders (with units and ranges) for the
process knobs a model declares and for chosen kinetic parameters, a ``plotly`` ``FigureWidget`` of
its key trajectories (with measurements overlaid when given), and a readout of its key outcomes.
Moving a slider re-solves the model warm (the discretized model is cached, only parameters and
inputs change) and updates the figure inside ``batch_update``; a failed solve clears the traces and
shows the error instead of leaving a stale plot. In a running kernel a slider move is solved in a
background thread and the latest values win: moves that arrive while a solve runs are merged into one
solve of the newest values, and a result that is already stale is not drawn (five set points typed into
the lyophilization shelf knob in half a second: one redraw, measured in tests/ui/test_browser.py).

A model declares what to explore in ``model.py``::

    EXPLORER = {
        "knobs": [  # recipe knobs: apply(raw_recipe, value) -> raw_recipe
            {"name": "shelf_C", "label": "shelf set point", "unit": "degC", "min": -20, "max": 40,
             "step": 1, "value": 20, "apply": set_shelf},
        ],
        "parameters": ["R0", "A1"],          # sliders over parameters.yaml bounds
        "panels": [("T_bottom_C", "vial-bottom temperature [degC]"), ...],
        "table": output_table,               # optional: result -> DataFrame with a time column
        "time_column": "time_h",
        "time_scale": 1.0,                   # optional: axis time per model time (1/24: hours drawn in days)
        "readouts": readouts,                # result -> {label with unit: value}
        "scenario": "case1_standard", "nfe": 60,
    }

Models without ``EXPLORER`` get sliders for their bounded parameters and panels of their states.

:class:`DesignSpaceView` maps a readout over two knobs (in parallel processes, with a progress bar)
with a pass/fail contour; clicking a cell loads that point into the explorer.
:class:`CalibrationView` picks parameters to free, runs the fit with progress, and shows the
estimates with intervals, the fit against the data and the residuals.
"""

from __future__ import annotations

import html
import math
import threading
import time

import numpy as np

from biotwin.core.errors import BiotwinError
from biotwin.engine.knobs import evaluate, explorer_spec
from biotwin.ui.figures import cell_edges, cell_map, cell_text, pale_cells


class Explorer:
    """Sliders, a live figure and a readout for one model and recipe.

    Attributes
    ----------
    sliders : dict[str, ipywidgets.FloatSlider]
    figure : plotly.graph_objects.FigureWidget
    readout, status : ipywidgets.HTML
    header : ipywidgets.HTML
        The model's name and its validation status in a registry (:func:`validation_badge`).
    widget : ipywidgets.VBox
        What the notebook displays.
    last_readouts : dict
    last_update_s : float
        Wall time of the last update, slider change to updated figure data [s].
    error : str or None
        The last solve's error, if it failed.
    live : bool
        Slider moves are solved in a background thread, latest values first (default: inside a running
        IPython kernel). Otherwise each move is solved at once, in the caller's thread.
    solves, stale : int
        Solves run for slider moves and for :meth:`set`, and solves whose result was not drawn because the
        sliders had moved on while they ran.
    """

    def __init__(
        self,
        model,
        scenario=None,
        parameters=None,
        panels=None,
        data=None,
        nfe=None,
        columns=3,
        live=None,
        validation=None,
    ):
        import ipywidgets as w
        import plotly.graph_objects as go
        from plotly.subplots import make_subplots

        self.model = model
        self.spec = explorer_spec(model, scenario, parameters, panels)
        if nfe:
            self.spec.nfe = int(nfe)
        self.base_raw = dict(model.load_scenario(self.spec.scenario).raw)
        self.data = data
        self.sliders = {}
        for knob in self.spec.knobs:
            slider = w.FloatSlider(
                value=knob.value,
                min=knob.min,
                max=knob.max,
                step=knob.step,
                description=knob.description,
                tooltip=knob.help or knob.description,
                continuous_update=False,
                readout_format=".4g",
                style={"description_width": "initial"},
                layout=w.Layout(width="560px"),
            )
            slider.observe(self._on_change, names="value")
            self.sliders[knob.name] = slider
        rows = math.ceil(len(self.spec.panels) / columns)
        base = make_subplots(
            rows=rows,
            cols=columns,
            subplot_titles=[t for _, t in self.spec.panels],
            horizontal_spacing=0.08,
            vertical_spacing=0.15 if rows > 1 else 0.2,
        )
        self.figure = go.FigureWidget(base)
        for i, (column, title) in enumerate(self.spec.panels):
            r, c = i // columns + 1, i % columns + 1
            self.figure.add_scatter(
                x=[], y=[], mode="lines", name=column, showlegend=False, row=r, col=c, line={"color": "#1f77b4"}
            )
            self.figure.update_xaxes(title_text=self.spec.time_label, row=r, col=c)
        if data is not None:
            for i, (column, _) in enumerate(self.spec.panels):
                if column in data:
                    self.figure.add_scatter(
                        x=data["time"] * self.spec.time_scale,
                        y=data[column],
                        mode="markers",
                        name=f"data {column}",
                        showlegend=False,
                        marker={"color": "black", "size": 6},
                        row=i // columns + 1,
                        col=i % columns + 1,
                    )
        self.figure.update_layout(
            height=260 * rows + 60, template="plotly_white", margin={"l": 50, "r": 20, "t": 40, "b": 40}
        )
        self.readout = w.HTML()
        self.status = w.HTML()
        self.reset_button = w.Button(description="reset to start", tooltip="every knob back to its starting value")
        self.reset_button.on_click(lambda _: self.reset())
        controls = w.VBox([*self.sliders.values(), self.reset_button])
        self.header = w.HTML(validation_badge(model.name, validation))
        self.widget = w.VBox([self.header, w.HBox([controls, self.readout]), self.status, self.figure])
        self.columns = columns
        self.start_values = self.values()
        self.last_readouts, self.last_table, self.last_result, self.error = {}, None, None, None
        self.last_update_s = float("nan")
        self.baseline, self._yranges = None, {}
        self.live = _in_kernel() if live is None else bool(live)
        self.solves = self.stale = 0
        self._lock = threading.Lock()
        self._requested, self._busy = 0, False
        self._worker = None
        self.update()
        if self.last_table is not None:  # the starting run stays on every panel as a grey dotted line
            self.baseline = self.last_table
            times = self.baseline[self.spec.time_column].to_numpy() * self.spec.time_scale
            for i, (column, _) in enumerate(self.spec.panels):
                self.figure.add_scatter(
                    x=times,
                    y=self.baseline[column].to_numpy(),
                    mode="lines",
                    name=f"start {column}",
                    showlegend=False,
                    hoverinfo="skip",
                    line={"color": "#999999", "dash": "dot", "width": 1.5},
                    row=i // columns + 1,
                    col=i % columns + 1,
                )
            self._fix_axes()

    # -- state --------------------------------------------------------------------------------
    def values(self) -> dict:
        return {name: float(s.value) for name, s in self.sliders.items()}

    def set(self, **values):
        """Set several sliders and update once (used by the design-space view and tests)."""
        unknown = set(values) - set(self.sliders)
        if unknown:
            raise BiotwinError(f"unknown knob(s) {sorted(unknown)}; knobs: {', '.join(self.sliders)}")
        for name, value in values.items():
            slider = self.sliders[name]
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not slider.min <= value <= slider.max:
                raise BiotwinError(
                    f"knob {name}: {value!r} is outside its range [{slider.min:g}, {slider.max:g}] "
                    "(a slider would clamp it silently; choose a value inside the range)"
                )
        self._hold = True
        try:
            for name, value in values.items():
                self.sliders[name].value = value
        finally:
            self._hold = False
        self.update()

    _hold = False

    def reset(self):
        """Every knob back to its starting value (one solve); the axes are fitted to the start again."""
        self._yranges = {}
        self.set(**self.start_values)

    def _fix_axes(self):
        """Fixed y axes that only grow: the start and the current run stay comparable (autoscaling would
        redraw a changed curve pixel-identical on a rescaled axis)."""
        if self.last_table is None:
            return
        for i, (column, _) in enumerate(self.spec.panels):
            values = [self.last_table[column].to_numpy()]
            if self.baseline is not None:
                values.append(self.baseline[column].to_numpy())
            values = [v[np.isfinite(v)] for v in values]
            lo = min(float(v.min()) for v in values if v.size)
            hi = max(float(v.max()) for v in values if v.size)
            old = self._yranges.get(column)
            if old is not None:
                lo, hi = min(lo, old[0]), max(hi, old[1])
            self._yranges[column] = (lo, hi)
            pad = 0.05 * (hi - lo) if hi > lo else max(abs(hi), 1.0) * 0.05
            self.figure.update_yaxes(range=[lo - pad, hi + pad], row=i // self.columns + 1, col=i % self.columns + 1)

    def _on_change(self, change):
        if self._hold:
            return
        if not self.live:
            self.update()
            return
        with self._lock:
            self._requested += 1
            if self._busy:  # the running solve's worker picks the newest values up when it finishes
                self.status.value = "<i>solving... (newer values waiting)</i>"
                return
            self._busy = True
        self._worker = threading.Thread(target=self._work, name="biotwin-explorer", daemon=True)
        self._worker.start()

    def _work(self):
        """Solve the newest slider values until no newer ones arrived during a solve."""
        while True:
            with self._lock:
                seen = self._requested
            try:
                self.update(current=lambda seen=seen: self._requested == seen)
            except Exception as exc:  # noqa: BLE001 - an error in a thread nobody reads would be lost
                self.error = f"{type(exc).__name__}: {exc}"
                self.status.value = f"<b style='color:#b00'>solve failed:</b> {html.escape(self.error)}"
            with self._lock:
                if self._requested == seen:
                    self._busy = False
                    return

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until the background solves of slider moves are done; False when ``timeout`` [s] passed."""
        worker = self._worker
        if worker is not None and worker is not threading.current_thread():
            worker.join(timeout)
        return not self._busy or worker is threading.current_thread()

    # -- solve and draw ------------------------------------------------------------------------
    def update(self, current=None):
        """Re-solve with the current slider values and redraw (inside ``batch_update``).

        ``current`` (used by the background worker) says whether the values solved are still the
        sliders' values; a result that is no longer current is counted in :attr:`stale` and not drawn.
        """
        self.wait()  # never two solves of one model at once
        t0 = time.perf_counter()
        self.status.value = "<i>solving...</i>"
        self.solves += 1
        try:
            table, readouts, result = evaluate(self.model, self.spec, self.values(), self.base_raw)
            if current is not None and not current():
                self.stale += 1
                return
        except (BiotwinError, ValueError) as exc:
            self.error = str(exc)
            with self.figure.batch_update():
                for trace in self.figure.data[: len(self.spec.panels)]:
                    trace.x, trace.y = [], []
            self.readout.value = ""
            self.status.value = f"<b style='color:#b00'>solve failed:</b> {html.escape(self.error)}"
            self.last_readouts, self.last_table = {}, None
            self.last_update_s = time.perf_counter() - t0
            return
        self.error = None
        times = table[self.spec.time_column].to_numpy() * self.spec.time_scale
        self.last_readouts, self.last_table, self.last_result = readouts, table, result
        with self.figure.batch_update():
            for trace, (column, _) in zip(self.figure.data, self.spec.panels):
                trace.x, trace.y = times, table[column].to_numpy()
            if self.baseline is not None:
                self._fix_axes()
        rows = "".join(
            f"<tr><td>{html.escape(k)}</td><td style='text-align:right'><b>{v:.4g}</b></td></tr>"
            for k, v in readouts.items()
        )
        self.readout.value = f"<table style='margin-left:2em'>{rows}</table>"
        self.last_update_s = time.perf_counter() - t0
        self.status.value = f"<span style='color:#666'>solved in {self.last_update_s:.2f} s</span>"

    def _ipython_display_(self):
        from IPython.display import display

        display(self.widget)


def _in_kernel() -> bool:
    """True inside a running IPython kernel (JupyterLab, papermill), where widgets send their events."""
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


#: colour of each registry state in the explorer header
_STATE_COLOURS = {
    "approved": "#1a7f37",
    "requalification required": "#b35900",
    "not approved": "#57606a",
    "retired": "#cf222e",
}


def validation_badge(name: str, status: dict | None) -> str:
    """The explorer header: the model's name and its standing in a registry, in HTML.

    Parameters
    ----------
    name : str
        The model's name.
    status : dict or None
        :meth:`biotwin.governance.Registry.status` of the model (``state``, ``tier``, ``reason``), or None
        when no registry was looked up.
    """
    import html

    if status is None:
        text = (
            "validation status not looked up: pass registry= to biotwin.explore (or set $BIOTWIN_REGISTRY); "
            "without an approval, use it as exploratory (tier 1)"
        )
        colour = _STATE_COLOURS["not approved"]
    else:
        state = status["state"]
        text = state + (f" for tier {status['tier']}" if state == "approved" and status.get("tier") else "")
        if state == "not approved":
            text += ": no review decision recorded; use it as exploratory (tier 1)"
        elif status.get("reason"):
            text += f": {status['reason']}"
        colour = _STATE_COLOURS.get(state, "#57606a")
    return (
        f"<div style='padding:4px 8px;border-left:4px solid {colour}'><b>{html.escape(name)}</b> &middot; "
        f"<span style='color:{colour}'>validation: {html.escape(text)}</span></div>"
    )


def explore(model, scenario=None, parameters=None, panels=None, data=None, nfe=None, validation=None) -> Explorer:
    """An interactive explorer of ``model`` (a :class:`biotwin.Model` or a model name).

    Parameters
    ----------
    model : biotwin.Model or str
    scenario : recipe to start from (default: the model's ``EXPLORER`` scenario, else its default)
    parameters : list of str, optional
        Parameters to put on sliders (default: the model's choice).
    panels : list of str or (column, title), optional
    data : pandas.DataFrame, optional
        Measurements (a ``time`` column and columns named like the panels) drawn as markers.
    nfe : int, optional
    validation : dict, optional
        The model's standing in a registry (:meth:`biotwin.governance.Registry.status`), shown in the
        header; :func:`biotwin.explore` looks it up when given ``registry=``.
    """
    from biotwin.core.model import Model, load_model

    name = model.name if isinstance(model, Model) else str(model)
    # shown at once under the cell: the first build and solve takes seconds, the widget appears after it
    print(f"[biotwin] starting the {name} explorer: building the model and solving its starting recipe...", flush=True)
    if not isinstance(model, Model):
        model = load_model(model)
    return Explorer(model, scenario, parameters, panels, data, nfe, validation=validation)


# -- design space ---------------------------------------------------------------------------------
def _design_point(folder, scenario, values, readout, nfe):
    """Worker: one grid point (runs in a separate process)."""
    from biotwin.core.model import load_model

    model = load_model(folder)
    spec = explorer_spec(model, scenario)
    spec.nfe = nfe
    try:
        _, readouts, _ = evaluate(model, spec, values, dict(model.load_scenario(spec.scenario).raw))
        return float(readouts[readout])
    except BiotwinError:
        return float("nan")


class DesignSpaceView:
    """A map of one readout over two knobs of an explorer, with a pass/fail contour (and, from a sweep with
    uncertain parameters, contours of the probability that every limit holds: :meth:`show_probability`).

    Parameters
    ----------
    explorer : Explorer
    x, y : str
        Knob names.
    readout : str
        Readout label (as shown by the explorer).
    limit : float
        The pass/fail level of the readout.
    passes : {"below", "above"}
        Whether passing means at or below the limit (e.g. maximum product temperature) or at or above
        it (e.g. titer).
    x_values, y_values : sequences, optional
        Grid (default 6 values across each knob's range).
    workers : int
        Parallel processes (default 2); 1 computes in this process.
    """

    def __init__(self, explorer, x, y, readout, limit, passes="below", x_values=None, y_values=None, workers=2):
        import ipywidgets as w
        import plotly.graph_objects as go

        knobs = {k.name: k for k in explorer.spec.knobs}
        for name in (x, y):
            if name not in knobs:
                raise BiotwinError(f"design space: unknown knob '{name}'; knobs: {', '.join(knobs)}")
        if passes not in ("below", "above"):
            raise BiotwinError("design space: passes must be 'below' or 'above'")
        self.explorer, self.x, self.y, self.readout_name = explorer, x, y, readout
        self.limit, self.passes, self.workers = float(limit), passes, int(workers)
        self.x_values = list(x_values if x_values is not None else np.linspace(knobs[x].min, knobs[x].max, 6))
        self.y_values = list(y_values if y_values is not None else np.linspace(knobs[y].min, knobs[y].max, 6))
        self.progress = w.IntProgress(min=0, max=len(self.x_values) * len(self.y_values), description="grid")
        self.figure = go.FigureWidget()
        # one cell per computed point, reaching midway to its neighbours (as biotwin.ui.figures.design_space_map)
        xe, ye = cell_edges(self.x_values), cell_edges(self.y_values)
        empty = np.full((len(self.y_values), len(self.x_values)), np.nan)
        heat, pale = cell_map(
            self.x_values,
            self.y_values,
            empty,
            np.zeros(empty.shape, bool),
            knobs[x].description,
            knobs[y].description,
            readout,
        )
        heat.text = None  # written by compute()
        self.figure.add_trace(heat)
        self.figure.add_contour(
            x=self.x_values,
            y=self.y_values,
            z=np.zeros((len(self.y_values), len(self.x_values))),
            showscale=False,
            contours={"coloring": "none", "start": self.limit, "end": self.limit, "size": 1},
            line={"color": "#d62728", "width": 3},
            name=f"limit {limit}",
            hoverinfo="skip",
        )
        self.figure.add_trace(pale)  # failing cells paled
        self.figure.update_xaxes(tickvals=self.x_values, range=[xe[0], xe[-1]])
        self.figure.update_yaxes(tickvals=self.y_values, range=[ye[0], ye[-1]])
        self.figure.update_layout(
            xaxis_title=knobs[x].description,
            yaxis_title=knobs[y].description,
            template="plotly_white",
            height=420,
            title=f"{readout} per computed point: passes {passes} {limit} (crossed and paled: fails)",
        )
        self.figure.data[0].on_click(self._on_click)
        self.button = w.Button(description="compute map", button_style="primary")
        self.button.on_click(lambda _: self.compute())
        self.widget = w.VBox([w.HBox([self.button, self.progress]), self.figure])
        self.values = None
        self.probability = None  # the probability grid of show_probability

    def compute(self):
        """Evaluate the grid (in parallel processes) and draw the map; returns the grid as an array."""
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        base = self.explorer.values()
        points = [
            (i, j, {**base, self.x: float(xv), self.y: float(yv)})
            for j, yv in enumerate(self.y_values)
            for i, xv in enumerate(self.x_values)
        ]
        z = np.full((len(self.y_values), len(self.x_values)), np.nan)
        self.progress.value = 0
        folder, scenario = str(self.explorer.model.folder), self.explorer.base_raw
        args = [(folder, scenario, values, self.readout_name, self.explorer.spec.nfe) for _, _, values in points]
        if self.workers > 1:
            with ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("spawn")) as pool:
                futures = [pool.submit(_design_point, *a) for a in args]
                for (i, j, _), future in zip(points, futures):
                    z[j, i] = future.result()
                    self.progress.value += 1
        else:
            for (i, j, _), a in zip(points, args):
                z[j, i] = _design_point(*a)
                self.progress.value += 1
        self.values = z
        fails = ~self.passing()
        with self.figure.batch_update():
            self.figure.data[0].z, self.figure.data[0].text = z, cell_text(z, fails)
            self.figure.data[1].z = z
            self.figure.data[2].z = pale_cells(fails)
        return z

    def show_probability(self, probability, levels=(0.5, 0.9, 0.99)):
        """Draw probability contours (from a sweep with uncertain parameters) over the map.

        Parameters
        ----------
        probability : biotwin.sweep.SweepResult or pandas.DataFrame
            A sweep over this view's two knobs with sampled parameters (its
            :func:`~biotwin.sweep.analysis.probability_map`), or such a table: columns ``x``, ``y`` and
            ``probability`` [-] (that every limit holds in a cell).
        levels : sequence of float
            Probabilities to draw, each in (0, 1).

        Returns
        -------
        pandas.DataFrame
            The probability grid drawn (rows ``y``, columns ``x``).
        """
        import pandas as pd
        import plotly.graph_objects as go

        from biotwin.sweep.analysis import probability_map

        table = probability if isinstance(probability, pd.DataFrame) else probability_map(probability)
        missing = [c for c in (self.x, self.y, "probability") if c not in table.columns]
        if missing:
            raise BiotwinError(
                f"probability contours: the table has no column {missing}; it needs the view's knobs "
                f"{self.x}, {self.y} and 'probability' (a sweep over these knobs with sampled parameters)"
            )
        levels = [float(lv) for lv in np.atleast_1d(np.asarray(levels, dtype=float))]
        if not levels or not all(0 < lv < 1 for lv in levels):
            raise BiotwinError(f"probability contours: levels must be probabilities in (0, 1), got {levels}")
        if table.duplicated([self.x, self.y]).any():
            raise BiotwinError(
                f"probability contours: several rows per ({self.x}, {self.y}) cell - a sweep over more knobs than "
                "the view's two; select one value of the others first"
            )
        grid = table.pivot_table(index=self.y, columns=self.x, values="probability")
        if grid.shape[0] < 2 or grid.shape[1] < 2:
            raise BiotwinError("probability contours need at least 2 x 2 cells of the sweep's grid")
        styles = ["dot", "dash", "solid"]
        self.figure.data = [t for t in self.figure.data if not (t.name or "").startswith("P(all limits hold)")]
        with self.figure.batch_update():
            for k, level in enumerate(sorted(levels)):
                self.figure.add_trace(
                    go.Contour(
                        x=list(grid.columns),
                        y=list(grid.index),
                        z=grid.to_numpy(dtype=float),
                        showscale=False,
                        contours={"coloring": "none", "start": level, "end": level, "size": 1.0, "showlabels": True},
                        line={"color": "#1f3a93", "width": 2, "dash": styles[k % len(styles)]},
                        name=f"P(all limits hold) = {level:g}",
                        showlegend=True,
                        hoverinfo="skip",
                    )
                )
        self.probability = grid
        return grid

    def passing(self):
        """Boolean grid: which points pass the limit (a point without a value does not)."""
        if self.values is None:
            raise BiotwinError("compute the map first")
        with np.errstate(invalid="ignore"):
            return self.values <= self.limit if self.passes == "below" else self.values >= self.limit

    def _on_click(self, trace, points, selector):
        if points.xs:  # the computed point of the clicked cell (plotly may report the cell's midpoint)
            x = min(self.x_values, key=lambda v: abs(v - float(points.xs[0])))
            y = min(self.y_values, key=lambda v: abs(v - float(points.ys[0])))
            self.explorer.set(**{self.x: float(x), self.y: float(y)})

    def _ipython_display_(self):
        from IPython.display import display

        display(self.widget)


# -- calibration ----------------------------------------------------------------------------------
class CalibrationView:
    """Pick parameters to free, fit with a progress indicator, see estimates, fit and residuals.

    Parameters
    ----------
    model : biotwin.Model
    experiments : list
        What :func:`biotwin.calibrate` accepts.
    candidates : list of str
        Parameters offered as check boxes.
    selected : list of str, optional
        Initially ticked.
    nfe : int
    """

    def __init__(self, model, experiments, candidates, selected=None, nfe=50):
        import ipywidgets as w

        self.model, self.experiments, self.nfe = model, experiments, nfe
        selected = set(selected or candidates[:2])
        self.boxes = {name: w.Checkbox(value=name in selected, description=name, indent=False) for name in candidates}
        self.button = w.Button(description="fit", button_style="primary")
        self.button.on_click(lambda _: self.run())
        self.progress = w.HTML()
        self.table = w.HTML()
        self.figures = w.VBox()  # FigureWidgets, not an Output widget: nbclient hangs on plotly output inside one
        self.widget = w.VBox(
            [w.HBox(list(self.boxes.values())), w.HBox([self.button, self.progress]), self.table, self.figures]
        )
        self.result = None

    def run(self):
        """Fit the ticked parameters; returns the :class:`CalibrationResult` (also kept in ``.result``)."""
        from biotwin.calibration.api import calibrate
        from biotwin.ui.calibration_figures import plot_fit, plot_residuals

        chosen = [n for n, b in self.boxes.items() if b.value]
        if not chosen:
            self.progress.value = "<b style='color:#b00'>tick at least one parameter</b>"
            return None
        self.button.disabled = True
        try:
            self.result = calibrate(
                self.model,
                self.experiments,
                chosen,
                nfe=self.nfe,
                progress=lambda text: setattr(self.progress, "value", f"<i>{html.escape(text)}</i>"),
            )
        except BiotwinError as exc:
            self.progress.value = f"<b style='color:#b00'>fit failed:</b> {html.escape(str(exc))}"
            return None
        finally:
            self.button.disabled = False
        table = self.result.table()[["value", "unit", "std_error", "ci95_low", "ci95_high"]]
        self.table.value = table.to_html(float_format=lambda v: f"{v:.4g}")
        import plotly.graph_objects as go

        figures = [plot_fit(self.result), plot_residuals(self.result)]
        for figure in figures:  # one column per measured variable: give them room (a widget box is 700 px)
            columns = len({tuple(figure.layout[name].domain) for name in figure.layout if name.startswith("xaxis")})
            figure.update_layout(width=max(700, 170 * columns))
        self.figures.children = [go.FigureWidget(f) for f in figures]
        self.progress.value = f"done: weighted SSE {self.result.objective:.4g}"
        return self.result

    def _ipython_display_(self):
        from IPython.display import display

        display(self.widget)
