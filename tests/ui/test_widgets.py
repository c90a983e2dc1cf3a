"""Explorers driven from Python: move a slider, check the figure and readout follow the model."""

import numpy as np
import pandas as pd
import pytest

import biotwin
from biotwin.ui.widgets import CalibrationView, DesignSpaceView, Explorer


@pytest.fixture(scope="module")
def lyo():
    return biotwin.explore("lyophilization")


def test_lyophilization_explorer_follows_the_model(lyo):
    model = lyo.model
    assert lyo.error is None
    first = lyo.last_readouts["primary drying time [h]"]
    # the same recipe simulated directly (the shelf knob holds its set point to 40 h)
    recipe = model.module._explorer_shelf(model.load_scenario("case1_standard").raw, 20.0)
    assert first == pytest.approx(
        model.summary(model.simulate(scenario=recipe, nfe=60))["primary_drying_time_h"], rel=1e-9
    )
    assert first == pytest.approx(6.654, rel=5e-4)  # LyoPRONTO case 1
    y_before = np.array(lyo.figure.data[0].y)
    lyo.sliders["shelf_C"].value = 0.0  # a colder shelf: slower drying, colder product
    print(
        f"\nlyophilization explorer: shelf 20 -> 0 degC: drying {first:.3f} -> "
        f"{lyo.last_readouts['primary drying time [h]']:.3f} h in {lyo.last_update_s:.2f} s"
    )
    assert lyo.error is None
    assert lyo.last_readouts["primary drying time [h]"] > first
    assert lyo.last_readouts["max product temperature [degC]"] < -14.77
    y_after = np.array(lyo.figure.data[0].y)
    assert y_after.shape != y_before.shape or not np.allclose(y_after, y_before)
    # the figure shows what the model computes for that recipe
    assert np.max(y_after) == pytest.approx(lyo.last_readouts["max product temperature [degC]"], abs=1e-9)
    lyo.set(shelf_C=20.0)
    assert lyo.last_readouts["primary drying time [h]"] == pytest.approx(first, rel=1e-6)


def test_every_corner_of_the_slider_box_gives_an_answer(lyo):
    """Issue #19: the shelf slider's own minimum failed ('extend the shelf and pressure programs')."""
    for shelf in (lyo.sliders["shelf_C"].min, lyo.sliders["shelf_C"].max):
        for pressure in (lyo.sliders["pressure_mTorr"].min, lyo.sliders["pressure_mTorr"].max):
            lyo.set(shelf_C=shelf, pressure_mTorr=pressure)
            print(f"\nshelf {shelf} degC, {pressure} mTorr: {lyo.last_readouts}")
            assert lyo.error is None, (shelf, pressure, lyo.error)
            assert lyo.last_readouts["primary drying time [h]"] > 0
    # the slowest corner against a direct simulation with a 300-h hold and 120 elements: 161.27 h
    lyo.set(shelf_C=-25.0, pressure_mTorr=400.0)
    assert lyo.last_readouts["primary drying time [h]"] == pytest.approx(161.27, rel=0.02)
    lyo.set(shelf_C=20.0, pressure_mTorr=150.0)


def test_failed_solve_shows_the_error_not_a_stale_plot(lyo, monkeypatch):
    def fail(*args, **kwargs):
        raise biotwin.SolverError("simulation failed: restoration failed", "restoration failed")

    monkeypatch.setattr(lyo.model, "simulate", fail)
    lyo.set(shelf_C=-20.0, pressure_mTorr=400.0)
    monkeypatch.undo()
    assert lyo.error is not None
    assert "solve failed" in lyo.status.value
    assert len(lyo.figure.data[0].y) == 0 and lyo.last_readouts == {}
    lyo.set(shelf_C=20.0, pressure_mTorr=150.0)
    assert lyo.error is None and len(lyo.figure.data[0].y) > 0


def test_baseline_reset_and_fixed_axes(lyo):
    """Issue #19 item 4: the starting run stays as a grey dotted line on every panel, the y axes do not
    rescale away a change (they only grow), and reset puts every knob and curve back."""
    n = len(lyo.spec.panels)
    baseline = [np.array(t.y) for t in lyo.figure.data if t.name.startswith("start ")]
    assert len(baseline) == n
    assert np.allclose(baseline[0], np.array(lyo.figure.data[0].y))  # at the start: the same curve
    y_range = tuple(lyo.figure.layout.yaxis.range)
    lyo.set(shelf_C=0.0)
    after = np.array(lyo.figure.data[0].y)
    assert not np.allclose(after[: len(baseline[0])], baseline[0][: len(after)]) or len(after) != len(baseline[0])
    assert np.allclose(next(t.y for t in lyo.figure.data if t.name.startswith("start ")), baseline[0])  # kept
    grown = tuple(lyo.figure.layout.yaxis.range)
    assert grown[0] <= y_range[0] and grown[1] >= y_range[1]  # only grows
    assert grown[0] <= min(after.min(), baseline[0].min()) and grown[1] >= max(after.max(), baseline[0].max())
    lyo.reset()
    assert lyo.values() == lyo.start_values
    assert np.allclose(np.array(lyo.figure.data[0].y), baseline[0])
    lo, hi = baseline[0].min(), baseline[0].max()  # fitted to the start again, 5 % padding
    assert tuple(lyo.figure.layout.yaxis.range) == pytest.approx((lo - 0.05 * (hi - lo), hi + 0.05 * (hi - lo)))


def test_mab_and_hek_explorers(tmp_path):
    mab = biotwin.explore("mab_fedbatch")
    titer = mab.last_readouts["final titer [g/L]"]
    mab.sliders["beta_P"].value = 2 * mab.sliders["beta_P"].value  # productivity doubles: titer nearly doubles
    print(
        f"\nmab explorer: beta_P x2: titer {titer:.4f} -> {mab.last_readouts['final titer [g/L]']:.4f} g/L "
        f"({mab.last_update_s:.2f} s)"
    )
    assert mab.last_readouts["final titer [g/L]"] == pytest.approx(2 * titer, rel=0.02)
    # issue #19 item 8: a 14-day culture is read in days, as in the quickstart -- measured data too
    assert mab.figure.layout.xaxis.title.text == "culture time [d]"
    assert max(mab.figure.data[0].x) == pytest.approx(14.0)
    run1 = pd.read_csv(biotwin.load_model("mab_fedbatch").folder / "data" / "run1.csv")
    with_data = biotwin.explore("mab_fedbatch", data=run1)
    markers = next(t for t in with_data.figure.data if t.name == "data Xv")
    assert max(markers.x) == pytest.approx(run1["time"].max() / 24.0) and max(markers.x) <= 14.0
    hek = biotwin.explore("hek293_vlp")
    before = hek.last_readouts["final VLP titer [1e9 vp/mL]"]
    hek.sliders["k_expr"].value = 0.5 * hek.sliders["k_expr"].value
    assert hek.last_readouts["final VLP titer [1e9 vp/mL]"] == pytest.approx(0.5 * before, rel=0.01)
    assert np.array(hek.figure.data[5].y)[-1] == pytest.approx(hek.last_readouts["final VLP titer [1e9 vp/mL]"])
    # issue #12 item 10: every value of the feed-factor slider can run (0 always failed), and a value
    # past a slider's range is refused by name instead of being clamped silently
    assert mab.sliders["feed_factor"].min > 0
    mab.set(feed_factor=mab.sliders["feed_factor"].min)
    assert mab.error is None and mab.last_readouts["final titer [g/L]"] > 0
    with pytest.raises(biotwin.core.errors.BiotwinError, match="outside its range"):
        mab.set(feed_factor=mab.sliders["feed_factor"].max + 1.0)


def test_design_space_view_maps_and_loads_a_point(lyo):
    view = DesignSpaceView(
        lyo,
        "shelf_C",
        "pressure_mTorr",
        "max product temperature [degC]",
        limit=-15.0,
        passes="below",
        x_values=[0.0, 20.0],
        y_values=[100.0, 150.0],
        workers=1,
    )
    z = view.compute()
    assert z.shape == (2, 2) and np.isfinite(z).all()
    assert z[1, 1] == pytest.approx(-14.772, abs=0.01)  # 20 degC, 150 mTorr: case 1
    assert z[0, 0] < z[0, 1] and z[0, 1] < z[1, 1]  # warmer shelf and higher pressure: warmer product
    assert not view.passing()[1, 1] and view.passing()[0, 0]
    # issue #19 item 6: the map the course uses draws its cells as computed, values written, failing cells paled
    heat, pale = view.figure.data[0], view.figure.data[2]
    assert list(heat.x) == [-10.0, 10.0, 30.0] and list(heat.y) == [75.0, 125.0, 175.0]
    assert np.array(heat.text)[1][1].endswith("\u2717") and not np.array(heat.text)[0][0].endswith("\u2717")
    assert (np.isfinite(np.array(pale.z, dtype=float)) == ~view.passing()).all()
    view._on_click(view.figure.data[0], type("P", (), {"xs": [2.5], "ys": [97.0]})(), None)  # near a point: it
    assert lyo.values()["shelf_C"] == 0.0 and lyo.values()["pressure_mTorr"] == 100.0
    assert lyo.last_readouts["max product temperature [degC]"] == pytest.approx(z[0, 0], abs=1e-6)
    lyo.set(shelf_C=20.0, pressure_mTorr=150.0)
    # issue #18 item 5: probability contours (a sweep's probability_map) over the map, replaced when redrawn
    cells = [(x, y) for x in (0.0, 10.0, 20.0) for y in (100.0, 125.0, 150.0)]
    table = pd.DataFrame(cells, columns=["shelf_C", "pressure_mTorr"])
    table["probability"] = 1.0 - (table["shelf_C"] / 20.0) * (table["pressure_mTorr"] / 150.0)
    for _ in range(2):
        grid = view.show_probability(table, levels=(0.5, 0.9))
    contours = [t for t in view.figure.data if (t.name or "").startswith("P(all limits hold)")]
    assert [t.name for t in contours] == ["P(all limits hold) = 0.5", "P(all limits hold) = 0.9"]
    assert grid.shape == (3, 3) and np.array(contours[0].z)[2][2] == pytest.approx(0.0)
    with pytest.raises(biotwin.core.errors.BiotwinError, match="no column \\['probability'\\]"):
        view.show_probability(table.drop(columns="probability"))
    with pytest.raises(biotwin.core.errors.BiotwinError, match="levels must be probabilities"):
        view.show_probability(table, levels=(0.5, 99))


def test_calibration_view_fits_the_ticked_parameters():
    model = biotwin.load_model("mab_fedbatch")
    files = sorted((model.folder / "data").glob("run*.csv"))[:2]
    view = CalibrationView(model, files, ["beta_P", "mu_max", "Y_X_Glc"], selected=["beta_P"], nfe=40)
    result = view.run()
    assert list(result.parameters) == ["beta_P"]
    assert "beta_P" in view.table.value and "done" in view.progress.value
    fit, residuals = view.figures.children  # FigureWidgets: fit with bands per run, residuals per variable
    measured = set(result.residual_frame()["variable"])
    assert {t.name for t in fit.data} >= {"fit", "data"} and len(residuals.data) > 0
    assert fit.layout.width >= 170 * len(measured)  # one column per measured variable, each with room
    view.boxes["beta_P"].value = False
    assert view.run() is None and "at least one" in view.progress.value


def test_training_checks_compute_their_answers():
    from biotwin.tools import training

    assert training.check("tier", training.solution("tier"))
    assert not training.check("tier", 3)
    assert not training.check("lyo_cycle", (40, 150))  # dries fast but the product gets too warm
    with pytest.raises(KeyError):
        training.check("no_such_exercise", 1)


def test_twin_view_draws_estimates_forecast_measurements_and_alarms():
    from biotwin.twin.streams import synthetic_stream
    from biotwin.ui.twin_view import watch
    from support import TEST_MODELS

    model = biotwin.load_model(TEST_MODELS / "monod_switch")
    stream, _truth = synthetic_stream(model, "default", {"mu_max": 0.55}, {"S": (0.5, 0.05, 0.02), "X": (2.0, 0, 0.05)})
    stream.loc[stream["time"] == 12.0, "S"] += 3.0  # an upset the model cannot explain
    twin = biotwin.Twin(model, "default", estimate=["mu_max"])
    view = watch(twin, stream, every=5.0, variables=["X", "S"], widget=False)
    x_traces = [view.figure.data[k] for k in view._traces["X"]]
    s_traces = [view.figure.data[k] for k in view._traces["S"]]
    assert len(x_traces[2].x) == len(twin.history)  # the estimate at every update
    assert max(x_traces[5].x) == pytest.approx(twin.t_end)  # the forecast reaches the end of the recipe
    assert np.all(np.array(x_traces[1].y) >= np.array(x_traces[2].y))  # band above the estimate
    assert len(s_traces[6].x) == stream["S"].notna().sum()  # every measurement drawn
    assert 12.0 in view.alarm_times  # the upset is alarmed at its time ...
    assert 12.0 in list(s_traces[7].x)  # ... and marked on the plot


def test_quick_slider_moves_solve_only_the_newest_values(lyo):
    """Issue #19 item 5: in a kernel a slider move is solved in the background and the newest values win.
    Five moves made at once cost at most two solves (one that may start before the last move, then the
    newest value), exactly one result is drawn, and the figure and readout are those of a direct solve at
    the last value."""
    live = Explorer(lyo.model, live=True)
    start_solves = live.solves
    for shelf in (-5.0, 0.0, 5.0, 10.0, 15.0):
        live.sliders["shelf_C"].value = shelf
    assert live.wait(timeout=120)
    solved = live.solves - start_solves
    print(f"\nfive quick moves: {solved} solves, {live.stale} stale results not drawn")
    assert live.error is None and 1 <= solved <= 2 and solved - live.stale == 1
    assert live.values()["shelf_C"] == 15.0
    lyo.set(shelf_C=15.0)  # the synchronous path, on another explorer of the same model
    assert live.last_readouts == pytest.approx(lyo.last_readouts, rel=1e-9)
    np.testing.assert_allclose(np.array(live.figure.data[0].y), np.array(lyo.figure.data[0].y), rtol=1e-9)
    lyo.set(shelf_C=20.0)


def test_the_header_shows_the_validation_status_from_a_registry(tmp_path, monkeypatch):
    """Issue #17: the explorer header names the model's standing in a registry; none looked up says so."""
    from biotwin.governance import Registry
    from biotwin.ui.widgets import validation_badge

    monkeypatch.delenv("BIOTWIN_REGISTRY", raising=False)
    model = biotwin.load_model("mab_fedbatch")
    registry = Registry(tmp_path / "reg")
    assert "not approved: no review decision recorded" in validation_badge(model.name, registry.status(model))
    registry.retire(model, "superseded by a recalibrated version")
    badge = validation_badge(model.name, registry.status(model))
    assert "retired" in badge and "superseded by a recalibrated version" in badge
    assert "not looked up" in validation_badge(model.name, None)
    approved = {"state": "approved", "tier": 2, "reason": ""}
    assert "approved for tier 2" in validation_badge(model.name, approved)
    # biotwin.explore looks the status up in the registry given (or $BIOTWIN_REGISTRY) and hands it on
    seen = {}
    monkeypatch.setattr("biotwin.ui.widgets.explore", lambda model, *a, **kw: seen.update(kw))
    biotwin.explore(model, registry=tmp_path / "reg")
    assert seen["validation"]["state"] == "retired"
    monkeypatch.setenv("BIOTWIN_REGISTRY", str(tmp_path / "reg"))
    seen.clear()
    biotwin.explore("mab_fedbatch")
    assert seen["validation"]["state"] == "retired"


def test_an_explorer_without_a_registry_says_its_status_was_not_looked_up(lyo):
    assert "lyophilization" in lyo.header.value and "not looked up" in lyo.header.value
    assert lyo.widget.children[0] is lyo.header
