"""Plotly figures of simulation results, with units on every axis."""

from __future__ import annotations

import math

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
    """Heatmap of an outcome over two process parameters, with pass/fail contours.

    Parameters
    ----------
    table : pandas.DataFrame
        One row per grid point, with columns ``x``, ``y``, ``value`` and each limit's column.
    x, y, value : str
        Column names of the two process parameters and of the coloured outcome.
    limits : iterable of dict
        Each ``{"column", "level", "label"}`` (optional ``"color"``): the contour where
        ``column == level`` is drawn as a line, e.g. the critical product temperature.
    labels : dict, optional
        Axis / colour-bar titles by column name, with units (e.g. ``"shelf temperature [degC]"``).
    title : str, optional
    log_y : bool
        Logarithmic y axis (pressures).

    Returns
    -------
    plotly.graph_objects.Figure
    """
    labels = dict(labels or {})
    grid = table.pivot_table(index=y, columns=x, values=value)
    fig = go.Figure(
        go.Heatmap(
            x=grid.columns.to_numpy(),
            y=grid.index.to_numpy(),
            z=grid.to_numpy(),
            colorscale="Viridis",
            colorbar={"title": labels.get(value, value)},
            hovertemplate=f"{labels.get(x, x)}: %{{x}}<br>{labels.get(y, y)}: %{{y}}<br>"
            f"{labels.get(value, value)}: %{{z:.3g}}<extra></extra>",
        )
    )
    palette = ["#d62728", "#ff7f0e", "#ffffff", "#17becf"]
    for k, limit in enumerate(limits):
        z = table.pivot_table(index=y, columns=x, values=limit["column"])
        color = limit.get("color", palette[k % len(palette)])
        level = float(limit["level"])
        fig.add_trace(
            go.Contour(
                x=z.columns.to_numpy(),
                y=z.index.to_numpy(),
                z=z.to_numpy(),
                showscale=False,
                contours={"coloring": "none", "start": level, "end": level, "size": 1.0, "showlabels": False},
                line={"color": color, "width": 3, "dash": "dash" if k else "solid"},
                name=limit.get("label", f"{limit['column']} = {level}"),
                showlegend=True,
                hoverinfo="skip",
            )
        )
    fig.update_xaxes(title_text=labels.get(x, x))
    fig.update_yaxes(title_text=labels.get(y, y), type="log" if log_y else "linear")
    fig.update_layout(
        title=title,
        template="plotly_white",
        height=480,
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.02, "x": 0},
    )
    return fig
