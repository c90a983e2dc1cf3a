"""Plotly figures of simulation results, with units on every axis."""

from __future__ import annotations

import math

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from biotwin.core.units import convert_value, parse_unit


def _time_factor(result, time_unit: str | None) -> tuple[float, str]:
    if time_unit is None or time_unit == result.time_unit:
        return 1.0, result.time_unit
    return convert_value(1.0, parse_unit(result.time_unit), parse_unit(time_unit)), time_unit


def plot_trajectories(
    results,
    variables=None,
    data=None,
    time_unit: str | None = None,
    columns: int = 3,
    title: str | None = None,
    height_per_row: int = 260,
) -> go.Figure:
    """Trajectories of one or more simulations, one panel per variable.

    Parameters
    ----------
    results : SimulationResult or dict[str, SimulationResult]
        One result, or several by label (overlaid in each panel).
    variables : list of str, optional
        Columns to plot; default: the states.
    data : pandas.DataFrame, optional
        Measurements with a ``time`` column (in the model's time unit) and columns named
        like the variables; drawn as markers.
    time_unit : str, optional
        Unit of the time axis (e.g. ``"d"``); default the model's.
    columns : int
        Panels per row.
    title : str, optional

    Returns
    -------
    plotly.graph_objects.Figure
    """
    if not isinstance(results, dict):
        results = {"simulation": results}
    first = next(iter(results.values()))
    if variables is None:
        variables = [c for c, k in first.kinds.items() if k == "state"]
    factor, t_label = _time_factor(first, time_unit)
    rows = math.ceil(len(variables) / columns)
    fig = make_subplots(
        rows=rows,
        cols=columns,
        subplot_titles=list(variables),
        horizontal_spacing=0.08,
        vertical_spacing=0.12 if rows > 1 else 0.2,
    )
    palette = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"]
    for k, (label, result) in enumerate(results.items()):
        for i, name in enumerate(variables):
            if name not in result.wide:
                raise KeyError(f"'{name}' is not a column of the result; columns: {', '.join(result.wide.columns)}")
            fig.add_trace(
                go.Scatter(
                    x=result.wide["time"] * factor,
                    y=result.wide[name],
                    mode="lines",
                    name=label,
                    legendgroup=label,
                    showlegend=(i == 0),
                    line={"color": palette[k % len(palette)]},
                ),
                row=i // columns + 1,
                col=i % columns + 1,
            )
    if data is not None:
        for i, name in enumerate(variables):
            if name in data:
                fig.add_trace(
                    go.Scatter(
                        x=data["time"] * factor,
                        y=data[name],
                        mode="markers",
                        name="data",
                        legendgroup="data",
                        showlegend=(i == 0),
                        marker={"color": "black", "size": 6},
                    ),
                    row=i // columns + 1,
                    col=i % columns + 1,
                )
    for i, name in enumerate(variables):
        fig.update_yaxes(title_text=f"{name} [{first.units.get(name, '?')}]", row=i // columns + 1, col=i % columns + 1)
        fig.update_xaxes(title_text=f"time [{t_label}]", row=i // columns + 1, col=i % columns + 1)
    fig.update_layout(
        height=height_per_row * rows + 80,
        title=title,
        template="plotly_white",
        margin={"l": 60, "r": 20, "t": 60 if title else 40, "b": 40},
    )
    return fig


def cell_edges(centres) -> np.ndarray:
    """Edges of the cells around grid values: midway between neighbours; the outer cells reach as far out
    as they reach in (on an uneven grid a cell is not centred on its value: the 100 of 50, 100, 150, 200
    spans 75-125, the 150 spans 125-175)."""
    c = np.unique(np.asarray(centres, dtype=float))
    if len(c) == 1:  # one value: a cell of width 1 in its unit (0.1 of it when larger)
        half = 0.5 * max(abs(c[0]) * 0.1, 1.0)
        return np.array([c[0] - half, c[0] + half])
    mid = 0.5 * (c[:-1] + c[1:])
    return np.concatenate([[c[0] - (mid[0] - c[0])], mid, [c[-1] + (c[-1] - mid[-1])]])


def cell_text(values, fails) -> list[list[str]]:
    """Each cell's value, with a cross where the point fails."""
    return [[f"{v:.3g}" + (" \u2717" if f else "") for v, f in zip(row, frow)] for row, frow in zip(values, fails)]


def pale_cells(fails) -> np.ndarray:
    """The overlay's z: 1 where a point fails (drawn pale), NaN (not drawn) elsewhere."""
    return np.where(fails, 1.0, np.nan)


def cell_map(xs, ys, values, fails, x_label, y_label, value_label, y_edges=None) -> tuple[go.Heatmap, go.Heatmap]:
    """The two traces of a design-space map: the values, one cell per computed point (:func:`cell_edges`),
    written in the cells with a cross where the point fails, hover reading the computed point; and the pale
    overlay of the failing cells."""
    x_edges = cell_edges(xs)
    y_edges = cell_edges(ys) if y_edges is None else y_edges
    heat = go.Heatmap(
        x=x_edges,
        y=y_edges,
        z=values,
        text=cell_text(values, fails),
        # plotly reads a cell's hover position as its edges' midpoint: carry the computed point instead
        customdata=np.dstack(np.meshgrid(xs, ys)),
        texttemplate="%{text}",
        colorscale="Viridis",
        colorbar={"title": value_label},
        hovertemplate=f"{x_label}: %{{customdata[0]:.4g}}<br>{y_label}: %{{customdata[1]:.4g}}"
        f"<br>{value_label}: %{{z:.4g}}<extra></extra>",
        xgap=1,
        ygap=1,
    )
    pale = go.Heatmap(
        x=x_edges,
        y=y_edges,
        z=pale_cells(fails),
        colorscale=[[0, "rgba(255,255,255,0.65)"], [1, "rgba(255,255,255,0.65)"]],
        showscale=False,
        hoverinfo="skip",
        xgap=1,
        ygap=1,
    )
    return heat, pale


def design_space_map(
    table,
    x: str,
    y: str,
    value: str,
    limits=(),
    labels: dict | None = None,
    title: str | None = None,
    log_y: bool = False,
) -> go.Figure:
    """Heatmap of an outcome over two process parameters: one cell per computed point, failing cells paled.

    Each cell reaches midway to its neighbours (:func:`cell_edges`), so an uneven grid is drawn as
    computed; each cell shows its value, with a cross where a limit fails or the point has no value;
    hovering reads the computed point's own coordinates. The limit contours are drawn over it
    (interpolated between the points).

    Parameters
    ----------
    table : pandas.DataFrame
        One row per grid point, with columns ``x``, ``y``, ``value`` and each limit's column.
    x, y, value : str
        Column names of the two process parameters and of the coloured outcome.
    limits : iterable of dict
        Each ``{"column", "level", "label"}`` (optional ``"color"``; ``"passes": "below"`` (default) or
        ``"above"``): the contour where ``column == level`` is drawn as a line, e.g. the critical product
        temperature, and a cell on the wrong side of any level fails.
    labels : dict, optional
        Axis / colour-bar titles by column name, with units (e.g. ``"shelf temperature [degC]"``).
    title : str, optional
    log_y : bool
        Logarithmic y axis (cells then span the logarithmic midpoints).

    Returns
    -------
    plotly.graph_objects.Figure
    """
    labels, limits = dict(labels or {}), list(limits)
    xs = np.unique(table[x].to_numpy(dtype=float))
    ys = np.unique(table[y].to_numpy(dtype=float))
    grid = table.pivot_table(index=y, columns=x, values=value, dropna=False).reindex(index=ys, columns=xs)
    values = grid.to_numpy(dtype=float)
    fails = ~np.isfinite(values)  # a point without a value (a failed solve) does not pass
    grids = []  # each limit's column on the grid, for its pass/fail and its contour
    for limit in limits:
        z = table.pivot_table(index=y, columns=x, values=limit["column"], dropna=False)
        z = z.reindex(index=ys, columns=xs).to_numpy(dtype=float)
        grids.append(z)
        above = limit.get("passes", "below") == "above"
        with np.errstate(invalid="ignore"):
            fails |= ~np.isfinite(z) | ((z < float(limit["level"])) if above else (z > float(limit["level"])))
    y_edges = np.exp(cell_edges(np.log(ys))) if log_y else cell_edges(ys)
    heat, pale = cell_map(
        xs, ys, values, fails, labels.get(x, x), labels.get(y, y), labels.get(value, value), y_edges=y_edges
    )
    fig = go.Figure(heat)
    if fails.any():
        fig.add_trace(pale)
        fig.add_scatter(
            x=[None],
            y=[None],
            mode="markers",
            marker={"symbol": "square", "color": "#dddddd", "size": 12},
            name="\u2717 a limit fails (paled)",
        )
    palette = ["#d62728", "#ff7f0e", "#ffffff", "#17becf"]
    for k, (limit, z) in enumerate(zip(limits, grids)):
        color = limit.get("color", palette[k % len(palette)])
        level = float(limit["level"])
        fig.add_trace(
            go.Contour(
                x=xs,
                y=ys,
                z=z,
                showscale=False,
                contours={"coloring": "none", "start": level, "end": level, "size": 1.0, "showlabels": False},
                line={"color": color, "width": 3, "dash": "dash" if k else "solid"},
                name=limit.get("label", f"{limit['column']} = {level}"),
                showlegend=True,
                hoverinfo="skip",
            )
        )
    fig.update_xaxes(title_text=labels.get(x, x), tickvals=xs, range=[cell_edges(xs)[0], cell_edges(xs)[-1]])
    fig.update_yaxes(
        title_text=labels.get(y, y),
        type="log" if log_y else "linear",
        tickvals=ys,
        range=list(np.log10(y_edges[[0, -1]])) if log_y else [y_edges[0], y_edges[-1]],
    )
    fig.update_layout(
        title=title,
        template="plotly_white",
        height=480,
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.02, "x": 0},
    )
    return fig
