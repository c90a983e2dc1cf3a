"""Plotly figures of a calibration: fit with bands, parity, residuals, correlations.

All functions take a :class:`CalibrationResult` (fresh or loaded from JSON).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf"]


def _label(result, var):
    return f"{var} [{result.units.get(var, '?')}]"


def plot_fit(result, variables=None) -> go.Figure:
    """Data (with ±sigma bars) against the fitted trajectories and their 95 % bands.

    One row per experiment, one column per measured variable.
    """
    res = result.residual_frame()
    experiments = list(result.trajectories) or sorted(res["experiment"].unique())
    variables = variables or sorted(res["variable"].unique())
    fig = make_subplots(
        rows=len(experiments),
        cols=len(variables),
        shared_xaxes=True,
        subplot_titles=[f"{e}: {v}" for e in experiments for v in variables],
        vertical_spacing=0.25 / max(len(experiments), 1),
        horizontal_spacing=0.08,
    )
    for i, exp in enumerate(experiments, 1):
        traj = result.trajectories.get(exp)
        for j, var in enumerate(variables, 1):
            first = i == 1 and j == 1
            if traj and var in traj:
                t = traj["time"]
                fig.add_trace(
                    go.Scatter(
                        x=t + t[::-1],
                        y=traj[f"{var}_high"] + traj[f"{var}_low"][::-1],
                        fill="toself",
                        fillcolor="rgba(31,119,180,0.2)",
                        line={"width": 0},
                        name="95% band",
                        legendgroup="band",
                        showlegend=first,
                        hoverinfo="skip",
                    ),
                    row=i,
                    col=j,
                )
                fig.add_trace(
                    go.Scatter(
                        x=t,
                        y=traj[var],
                        mode="lines",
                        line={"color": PALETTE[0]},
                        name="fit",
                        legendgroup="fit",
                        showlegend=first,
                    ),
                    row=i,
                    col=j,
                )
            d = res[(res.experiment == exp) & (res.variable == var)]
            err = {"type": "data", "array": d["sigma"].tolist(), "visible": True} if d["sigma"].notna().all() else None
            fig.add_trace(
                go.Scatter(
                    x=d["time"],
                    y=d["value"],
                    mode="markers",
                    error_y=err,
                    marker={"color": "black", "size": 6},
                    name="data",
                    legendgroup="data",
                    showlegend=first,
                ),
                row=i,
                col=j,
            )
            fig.update_yaxes(title_text=_label(result, var), row=i, col=j)
            if i == len(experiments):
                fig.update_xaxes(title_text=_label(result, "time"), row=i, col=j)
    fig.update_layout(
        height=260 * len(experiments) + 80,
        template="plotly_white",
        title=f"Calibration of {result.model}: data and fit with 95% confidence bands",
    )
    return fig


def _markers_by_variable(res, x, y):
    """One panel per measured variable, one marker trace per experiment of columns ``x`` and ``y``."""
    variables = sorted(res["variable"].unique())
    fig = make_subplots(rows=1, cols=len(variables), subplot_titles=variables, horizontal_spacing=0.1)
    for j, var in enumerate(variables, 1):
        d = res[res.variable == var]
        for k, exp in enumerate(sorted(d["experiment"].unique())):
            e = d[d.experiment == exp]
            fig.add_trace(
                go.Scatter(
                    x=e[x],
                    y=e[y],
                    mode="markers",
                    name=exp,
                    legendgroup=exp,
                    showlegend=j == 1,
                    marker={"color": PALETTE[k % len(PALETTE)]},
                ),
                row=1,
                col=j,
            )
    return fig, variables


def plot_parity(result) -> go.Figure:
    """Fitted against measured values, one panel per variable, with the identity line."""
    res = result.residual_frame()
    fig, variables = _markers_by_variable(res, "value", "fitted")
    for j, var in enumerate(variables, 1):
        d = res[res.variable == var]
        lo, hi = float(min(d["value"].min(), d["fitted"].min())), float(max(d["value"].max(), d["fitted"].max()))
        fig.add_trace(
            go.Scatter(
                x=[lo, hi],
                y=[lo, hi],
                mode="lines",
                line={"color": "grey", "dash": "dash"},
                showlegend=False,
                hoverinfo="skip",
            ),
            row=1,
            col=j,
        )
        fig.update_xaxes(title_text=f"measured {_label(result, var)}", row=1, col=j)
        fig.update_yaxes(title_text=f"fitted {_label(result, var)}", row=1, col=j)
    fig.update_layout(height=380, template="plotly_white", title="Parity: fitted vs measured")
    return fig


def plot_residuals(result) -> go.Figure:
    """Residuals against time (standardized by sigma when sigmas are known)."""
    res = result.residual_frame()
    standardized = res["sigma"].notna().all()
    res = res.assign(r=(res["value"] - res["fitted"]) / (res["sigma"] if standardized else 1.0))
    fig, variables = _markers_by_variable(res, "time", "r")
    for j, var in enumerate(variables, 1):
        for level in [-2, 0, 2] if standardized else [0]:
            fig.add_hline(y=level, line={"color": "grey", "dash": "dot" if level else "solid"}, row=1, col=j)
        fig.update_xaxes(title_text=_label(result, "time"), row=1, col=j)
        fig.update_yaxes(
            title_text="(y - fit)/sigma [-]" if standardized else f"y - fit {_label(result, var)[len(var) :]}",
            row=1,
            col=j,
        )
    fig.update_layout(
        height=380,
        template="plotly_white",
        title="Residuals vs time" + (" (standardized; ±2 dotted)" if standardized else ""),
    )
    return fig


def plot_correlation(result) -> go.Figure:
    """Heatmap of the correlation matrix of the estimates."""
    frame = result.correlation_frame()
    z = frame.to_numpy()
    text = np.where(np.isfinite(z), np.round(z, 2).astype(str), "at bound")
    fig = go.Figure(
        go.Heatmap(
            z=np.where(np.isfinite(z), z, np.nan),
            x=list(frame.columns),
            y=list(frame.index),
            zmin=-1,
            zmax=1,
            colorscale="RdBu",
            reversescale=True,
            text=text,
            texttemplate="%{text}",
            colorbar={"title": "correlation [-]"},
        )
    )
    fig.update_layout(
        height=120 + 50 * len(frame),
        width=200 + 60 * len(frame),
        template="plotly_white",
        title="Correlation of the estimates",
        yaxis={"autorange": "reversed"},
    )
    return fig


def parameter_table(result) -> pd.DataFrame:
    """Estimates with intervals, rounded for display."""
    return result.table()
