"""Figures that need no solve: the design-space heatmap drawn as computed (issue #19 item 6)."""

import numpy as np
import pandas as pd

from biotwin.ui.figures import cell_edges, design_space_map


def test_design_space_cells_reach_midway_to_their_neighbours_and_failing_cells_are_marked():
    shelf, pressure = [-10.0, 0.0, 10.0, 20.0], [60.0, 100.0, 150.0, 200.0]  # an uneven pressure grid
    rows = [
        {"shelf": s, "P": p, "time": 20.0 - 0.5 * s + 0.01 * p, "Tmax": -30.0 + s + 0.05 * p}
        for s in shelf
        for p in pressure
    ]
    table = pd.DataFrame(rows)
    fig = design_space_map(
        table, "shelf", "P", "time", [{"column": "Tmax", "level": -15.0, "label": "critical"}], {"P": "P [mTorr]"}
    )
    heat, pale = fig.data[0], fig.data[1]
    assert list(heat.x) == [-15.0, -5.0, 5.0, 15.0, 25.0]  # midway between points, outer cells as wide
    assert list(heat.y) == [40.0, 80.0, 125.0, 175.0, 225.0]
    assert list(fig.layout.yaxis.tickvals) == pressure and fig.layout.yaxis.type == "linear"
    assert list(fig.layout.xaxis.range) == [-15.0, 25.0]  # no cell past the computed range's own cells
    fails = np.array([[(-30.0 + s + 0.05 * p) > -15.0 for s in shelf] for p in pressure])
    assert fails.any() and not fails.all()
    assert (np.isfinite(np.array(pale.z, dtype=float)) == fails).all()  # failing cells paled, passing ones not
    text = np.array(heat.text)
    assert all(t.endswith("\u2717") for t in text[fails]) and not any("\u2717" in t for t in text[~fails])
    assert text[0][0] == f"{20.0 - 0.5 * -10 + 0.01 * 60:.3g}"  # each cell shows its own value
    # hovering reads the computed point, not the cell's midpoint (125-175 mTorr would read 150, 100 mTorr 102.5)
    assert list(np.array(heat.customdata)[1][2]) == [10.0, 100.0]  # row 100 mTorr, column 10 degC
    assert "customdata[0]" in heat.hovertemplate


def test_a_point_without_a_value_is_marked_failing():
    table = pd.DataFrame(
        {"a": [1.0, 2.0, 1.0, 2.0], "b": [10.0, 10.0, 20.0, 20.0], "v": [1.0, np.nan, 3.0, 4.0], "T": [0, 0, 0, 5]}
    )
    fig = design_space_map(table, "a", "b", "v", [{"column": "T", "level": 1.0}])
    assert (np.isfinite(np.array(fig.data[1].z, dtype=float)) == [[False, True], [False, True]]).all()


def test_cell_edges_of_one_value_and_of_a_log_grid():
    assert len(cell_edges([5.0])) == 2 and cell_edges([5.0])[0] < 5.0 < cell_edges([5.0])[1]
    edges = np.exp(cell_edges(np.log([10.0, 100.0, 1000.0])))
    assert np.allclose(edges, [10**0.5, 10**1.5, 10**2.5, 10**3.5])
