"""The set-point search on functions whose answers are known in closed form (no model is solved)."""

import math
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from biotwin.core.checks import UnusualValueError
from biotwin.core.errors import ScenarioError, SolverError
from biotwin.optimize.setpoint import optimize_setpoint


class Curve:
    """A stand-in model: titer(x) = 2 - (x - peak)^2 / 50 and peak lactate 2 x, as final/extreme values."""

    name = "curve"

    def __init__(self, peak=19.4, fail_at=()):
        self.peak, self.fail_at, self.calls = peak, fail_at, []

    def parameter_units(self):
        return {"Glc_target": "mM", "mu_max": "1/h"}

    def parameter_values(self, overrides, where="params"):  # parameters.yaml's bounds of Glc_target: [0.1, 200]
        x = overrides.get("Glc_target", 20.0)
        if not 0.1 <= x <= 200.0:
            raise UnusualValueError(f"{where}: Glc_target = {x} mM is outside its range [0.1, 200] mM")
        return {"Glc_target": x}

    def simulate(self, scenario, params):
        x = params["Glc_target"]
        self.calls.append(x)
        if any(abs(x - f) < 1e-9 for f in self.fail_at):
            raise SolverError("Ipopt: maximum iterations")
        titer = 2.0 - (x - self.peak) ** 2 / 50.0
        return SimpleNamespace(wide=pd.DataFrame({"time": [0.0, 1.0], "titer": [0.0, titer], "Lac": [0.0, 2.0 * x]}))


def test_an_interior_maximum_is_found_to_the_tolerance():
    model = Curve()
    r = optimize_setpoint(model, "s", "Glc_target", (14, 26), limits={}, xtol=0.05, progress=lambda s: None)
    assert abs(r.optimum - 19.4) < 0.05 and r.binding == []
    assert len(r.evaluations) == len(model.calls) == len(set(model.calls))  # every run kept, none repeated
    print(f"\ninterior: {r.optimum:.4f} mM (exact 19.4) in {len(r.evaluations)} evaluations")


def test_a_binding_limit_moves_the_answer_onto_it_and_a_looser_limit_moves_it_back():
    tight = optimize_setpoint(Curve(), "s", "Glc_target", (14, 26), limits={"Lac": 35}, xtol=0.05, progress=None)
    assert tight.binding == ["Lac <= 35"]
    assert 17.5 - 0.05 <= tight.optimum <= 17.5  # on the feasible side of Lac = 2 x = 35, within xtol
    assert tight.summary()["limits"]["Lac"]["max"] <= 35
    loose = optimize_setpoint(Curve(), "s", "Glc_target", (14, 26), limits={"Lac": (None, 45)}, xtol=0.05)
    assert loose.binding == [] and abs(loose.optimum - 19.4) < 0.05
    print(f"\nLac <= 35: {tight.optimum:.4f} mM ({len(tight.evaluations)} runs); <= 45: {loose.optimum:.4f} mM")


def test_a_failed_simulation_is_recorded_and_the_search_goes_on():
    model = Curve(fail_at=(20.0,))
    r = optimize_setpoint(model, "s", "Glc_target", (14, 26), xtol=0.05)
    failed = r.evaluations[r.evaluations["setpoint"] == 20.0]
    assert len(failed) == 1 and "maximum iterations" in failed["error"].iloc[0] and not failed["feasible"].iloc[0]
    assert abs(r.optimum - 19.4) < 0.1
    assert not any("separate maxima" in n for n in r.notes)  # a failed scan value is no dip between two maxima


def test_an_answer_pinned_by_failed_runs_or_by_a_bound_says_so():
    class FailsAbove21(Curve):
        def simulate(self, scenario, params):
            if params["Glc_target"] > 21.0:
                raise SolverError("Ipopt: restoration failed")
            return super().simulate(scenario, params)

    r = optimize_setpoint(FailsAbove21(peak=24.0), "s", "Glc_target", (14, 26), xtol=0.05)
    assert 20.9 < r.optimum <= 21.0 and r.binding == []
    assert any("simulations failed next to the answer" in n for n in r.notes), r.notes
    rising = optimize_setpoint(Curve(peak=40.0), "s", "Glc_target", (14, 26), xtol=0.05)
    assert rising.optimum == pytest.approx(26.0, abs=0.05)
    assert any("at the highest bound searched (26 mM): widen the bounds" in n for n in rising.notes)
    interior = optimize_setpoint(Curve(), "s", "Glc_target", (14, 26), xtol=0.05)
    assert interior.notes == []


def test_two_separate_maxima_in_the_scan_are_reported():
    class TwoPeaks(Curve):
        def simulate(self, scenario, params):
            x = params["Glc_target"]
            titer = math.cos((x - 14) * 2 * math.pi / 6)  # maxima at 14, 20, 26
            return SimpleNamespace(wide=pd.DataFrame({"time": [0, 1], "titer": [0, titer], "Lac": [0, x]}))

    r = optimize_setpoint(TwoPeaks(), "s", "Glc_target", (14, 26), n_scan=7)
    assert r.notes and "separate maxima" in r.notes[0]


def test_mistakes_are_refused_with_the_reason():
    model = Curve()
    with pytest.raises(ScenarioError, match="'Glc_set' is not a parameter.*Glc_target"):
        optimize_setpoint(model, "s", "Glc_set", (14, 26))
    with pytest.raises(ScenarioError, match="lowest < highest"):
        optimize_setpoint(model, "s", "Glc_target", (26, 14))
    with pytest.raises(ScenarioError, match="finite"):
        optimize_setpoint(model, "s", "Glc_target", (14, np.nan))
    with pytest.raises(ScenarioError, match="leave it out of params"):
        optimize_setpoint(model, "s", "Glc_target", (14, 26), params={"Glc_target": 20})
    with pytest.raises(ScenarioError, match="'Amm' is not a variable"):
        optimize_setpoint(model, "s", "Glc_target", (14, 26), limits={"Amm": 6})
    with pytest.raises(ScenarioError, match=r"Lac <= 10 is broken by 18 at best; relax that limit"):
        optimize_setpoint(model, "s", "Glc_target", (14, 26), limits={"Lac": 10})
    fresh = Curve()
    with pytest.raises(UnusualValueError, match="bounds of Glc_target: Glc_target = 250"):  # before any run
        optimize_setpoint(fresh, "s", "Glc_target", (150, 250))
    with pytest.raises(ScenarioError, match="expected \\(lowest, highest\\)"):
        optimize_setpoint(fresh, "s", "Glc_target", "14")
    with pytest.raises(ScenarioError, match="xtol: expected a number"):
        optimize_setpoint(fresh, "s", "Glc_target", (14, 26), xtol="fine")
    with pytest.raises(ScenarioError, match="lower limit 40 is above the upper 35"):
        optimize_setpoint(fresh, "s", "Glc_target", (14, 26), limits={"Lac": (40, 35)})
    assert fresh.calls == []  # each of these refused before a simulation
