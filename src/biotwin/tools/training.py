"""Exercises of the training notebooks (``notebooks/training``), checked by a function call.

Each exercise's correct answer is computed from the models when checked (not stored), so the
checks stay right when a model changes. ``check(exercise, answer)`` prints feedback and returns
True or False; ``solution(exercise)`` returns an answer that passes (used by CI to run the
notebooks end to end).
"""

from __future__ import annotations

import weakref
from functools import cache

EXERCISES = {
    "tier": "Which decision tier does the HEK293 VLP model card state? (an int from 1 to 6)",
    "feed_factor": "With the fed-batch explorer's 'feed bolus volume, x nominal' slider: the factor among 0.5, 0.75, ..., 2.5 giving "
    "the highest final titer while peak lactate stays at or below 100 mM.",
    "widest_ci": "In the fed-batch calibration: the parameter with the widest 95 % interval relative to its estimate.",
    "lyo_cycle": "A constant shelf set point [degC] and chamber pressure [mTorr] that dry the case-1 product in under "
    "9 h with the vial bottom never above -15 degC (a tuple (shelf_C, pressure_mTorr)).",
    "lyo_tier2": "What does the lyophilization model card say must be measured for the product and vial before the "
    "model supports tier 2? (a list of the two symbols, e.g. ['X', 'Y'])",
    "proposed": "Name one parameter of the mAb fed-batch model whose source in parameters.yaml says 'proposed'.",
    "chi2": "Is the fit's chi-square inside its expected 95 % range? (True or False)",
    "correlation": "Are the estimates of mu_max and beta_P positively or negatively correlated? ('positive' or "
    "'negative')",
    "map_passing": "On the lyophilization design-space map: how many cells pass the -15 degC limit? (an int)",
    "map_warmest": "On that map, at 150 mTorr: the warmest shelf set point [degC] that keeps the product at or below "
    "-15 degC (a number from the map's shelf set points).",
    "titer_factor": "In the fed-batch explorer, double beta_P from its starting value: by what factor does the final "
    "titer change? (a number, to two decimals)",
    "unchanged_readout": "Which of the fed-batch explorer's readouts does not change at all when beta_P doubles? "
    "(its label, as the explorer shows it)",
    "alarm_count": "How many alarms did the twin raise over the replayed days? (an int)",
    "beta_P_direction": "At the twin's last update, is its estimate of beta_P above or below parameters.yaml's value? "
    "('above' or 'below')",
    "upset": "The fed-batch replayed through the twin had one upset. When did it happen [h, within 12 h] and which "
    "measured variable showed it first? (a tuple (time_h, variable))",
}

FEED_LACTATE_LIMIT_MM = 100.0  # [mM] limit of the feed_factor exercise (at 110 mM the answer was the slider's start)

# The hidden upset of the "upset" exercise: the feed bolus of this day [d] was never given.
UPSET_BOLUS_DAY = 5.0
# The batch's true parameters, as factors of parameters.yaml's values (the twin does not know them).
UPSET_TRUTH = {"mu_max": 1.1, "beta_P": 0.9}
UPSET_SCHEDULE = {"Glc": (1, 0.7, 0), "Lac": (1, 0.7, 0), "Xv": (24, 0, 0.05), "titer": (24, 0.005, 0.05)}


def upset_stream(until_h: float = 192.0, seed: int = 5):
    """The process data of the "upset" exercise (SYNTHETIC: a simulated batch with one feed bolus missed)."""
    from biotwin.core.model import load_model
    from biotwin.twin.streams import synthetic_stream

    model = load_model("mab_fedbatch")
    raw = model.load_scenario("nominal_14d").raw
    actual = dict(raw, boluses=[b for b in raw["boluses"] if float(b["time"]) != UPSET_BOLUS_DAY])
    p = model.parameter_set
    truth = {name: factor * p[name].value for name, factor in UPSET_TRUTH.items()}
    stream, _ = synthetic_stream(model, actual, truth, UPSET_SCHEDULE, seed=seed)
    return stream[stream["time"] <= until_h].reset_index(drop=True)


def _hek_card_tiers() -> list[int]:
    """The decision tiers the HEK293 VLP model card states ("tier 1", or a range "tier 1-2")."""
    import re

    from biotwin.core.model import load_model

    card = (load_model("hek293_vlp").folder / "README.md").read_text().lower()
    found = re.search(r"tier (\d)(?:-(\d))?", card)
    return list(range(int(found.group(1)), int(found.group(2) or found.group(1)) + 1)) if found else []


def _say(ok: bool, text: str) -> bool:
    print(("correct: " if ok else "not yet: ") + text)
    return ok


@cache
def _feed_sweep():
    from biotwin.core.model import load_model

    model = load_model("mab_fedbatch")
    spec = model.module.EXPLORER
    scale = next(k for k in spec["knobs"] if k["name"] == "feed_factor")["apply"]
    raw = model.load_scenario("nominal_14d").raw
    out = {}
    for k in range(2, 11):
        factor = 0.25 * k
        w = model.simulate(scenario=scale(raw, factor), nfe=56).wide
        out[factor] = (float(w["titer"].iloc[-1]), float(w["Lac"].max()))
    return out


def _lyo_cycle(shelf_C, pressure_mTorr):
    from biotwin.core.model import load_model

    model = load_model("lyophilization")
    base = model.load_scenario("case1_standard").raw
    recipe = model.module.shelf_isotherm_recipe(
        base, float(shelf_C), float(pressure_mTorr) / 1000.0, initial_shelf_C=-35.0, hold_h=30.0
    )
    return model.summary(model.simulate(scenario=recipe, nfe=120))


def check(exercise: str, answer, context=None) -> bool:
    """Check an answer; ``context`` is what the exercise needs (e.g. the calibration result)."""
    if exercise not in EXERCISES:
        raise KeyError(f"unknown exercise {exercise!r}; exercises: {', '.join(EXERCISES)}")
    if exercise == "tier":
        stated = _hek_card_tiers()
        ok = answer in stated
        if not ok:  # a hint, not the answer (Run All must not give the exercise away)
            return _say(False, "open models/hek293_vlp/README.md and read the 'Decision tier' row of the model card")
        return _say(
            True,
            f"the model card says tier {'-'.join(map(str, stated))}: exploratory, not for decisions "
            "before calibration to your process",
        )
    if exercise == "feed_factor":
        sweep = _feed_sweep()
        feasible = {f: t for f, (t, lac) in sweep.items() if lac <= FEED_LACTATE_LIMIT_MM}
        best = max(feasible, key=feasible.get)
        try:
            factor = float(answer)
        except (TypeError, ValueError):
            return _say(False, "give the factor as a number, e.g. check('feed_factor', 1.5)")
        mine = next((f for f in sweep if abs(f - factor) < 1e-9), None)
        if mine is None:
            return _say(False, "choose one of 0.5, 0.75, 1.0, ..., 2.5 (steps of 0.25 on the slider)")
        titer, lactate = sweep[mine]
        if mine == best:
            return _say(True, f"factor {best}: titer {titer:.3f} g/L with peak lactate {lactate:.1f} mM")
        if lactate > FEED_LACTATE_LIMIT_MM:  # about the trainee's own answer only
            return _say(False, f"factor {mine}: peak lactate {lactate:.1f} mM is above {FEED_LACTATE_LIMIT_MM:g} mM")
        return _say(
            False, f"factor {mine} keeps lactate at {lactate:.1f} mM, but another allowed factor gives more titer"
        )
    if exercise == "widest_ci":
        if context is None:
            raise ValueError("pass the calibration result as context")
        table = context.table()
        width = (table["ci95_high"] - table["ci95_low"]) / table["value"].abs()
        best = str(width.idxmax())
        if answer != best:  # a hint, not the answer
            hint = "compare (ci95_high - ci95_low) / value across the rows of view.result.table()"
            if answer in width.index:
                hint = f"{answer}'s interval spans {width[answer]:.0%} of its estimate; one is wider. " + hint
            return _say(False, hint)
        return _say(True, f"{best}: its interval spans {width.max():.0%} of the estimate")
    if exercise == "lyo_cycle":
        try:
            shelf_C, pressure = answer
            s = _lyo_cycle(shelf_C, pressure)
        except Exception as exc:  # a recipe that does not dry, or a malformed answer  # noqa: BLE001
            return _say(False, f"that cycle cannot be evaluated ({exc})")
        ok = s["primary_drying_time_h"] < 9.0 and s["max_T_bottom_C"] <= -15.0
        return _say(
            ok, f"dries in {s['primary_drying_time_h']:.2f} h with the product at most {s['max_T_bottom_C']:.2f} degC"
        )
    if exercise == "lyo_tier2":
        given = {str(a).strip().lower() for a in answer} if isinstance(answer, (list, tuple, set)) else set()
        if given != {"kv", "rp"}:
            return _say(False, "open models/lyophilization/README.md: the 'Decision tier' row names two symbols")
        return _say(True, "Kv (vial heat transfer) and Rp (dried-cake resistance), for the product and vial in use")
    if exercise == "proposed":
        from biotwin.core.model import load_model

        proposed = _proposed(load_model("mab_fedbatch"))
        if answer not in proposed:  # never lists them
            return _say(False, "open models/mab_fedbatch/parameters.yaml and read the source of each parameter")
        return _say(True, f"{answer}: '{load_model('mab_fedbatch').parameter_set[answer].source[:60]}...'")
    if exercise == "chi2":
        d = _fit(context).diagnostics
        if not isinstance(answer, bool) or answer != solution("chi2", context):
            return _say(False, "compare view.result.diagnostics['chi2'] with its 'chi2_expected_95' range")
        return _say(
            True, f"chi-square {d['chi2']:.1f}, expected {d['chi2_expected_95'][0]:.1f}-{d['chi2_expected_95'][1]:.1f}"
        )
    if exercise == "correlation":
        r = float(_fit(context).correlation_frame().loc["mu_max", "beta_P"])
        if answer != solution("correlation", context):
            return _say(False, "read view.result.correlation_frame(): the mu_max row, the beta_P column")
        return _say(
            True,
            f"correlation {r:+.2f}: the data trade one against the other"
            if r < 0
            else f"correlation {r:+.2f}: they move together in what the data allow",
        )
    if exercise in ("titer_factor", "unchanged_readout"):
        before, after = _beta_p_doubled(context)
        if exercise == "titer_factor":
            factor = after["final titer [g/L]"] / before["final titer [g/L]"]
            try:
                ok = abs(float(answer) - factor) <= 0.01
            except (TypeError, ValueError):
                return _say(False, "give the factor as a number, e.g. check('titer_factor', 1.5, explorer)")
            if not ok:
                return _say(False, "set beta_P to twice its starting value and divide the two final titers")
            return _say(True, f"x{factor:.3f}: the product does not act back on growth in this model")
        if answer not in _unchanged(before, after):  # never lists them
            return _say(False, "compare explorer.last_readouts before and after doubling beta_P")
        return _say(True, f"{answer} stays at {before[answer]:.4g}: only the titer depends on beta_P")
    if exercise == "alarm_count":
        n = solution("alarm_count", context)
        if not isinstance(answer, int) or isinstance(answer, bool) or answer != n:
            return _say(False, "count the lines the alarm cell printed (or the alarms in twin.history)")
        start = UPSET_BOLUS_DAY * 24.0
        before = sum(len(h.alarms) for h in context.history if h.time < start)
        text = f"{n} alarm(s) in {len(context.history)} updates, {before} of them before the missed feed ({start:g} h)"
        if before == 0:
            text += ": noise alone raised none here; the twin kept alarming while its states caught up with the upset"
        return _say(True, text)
    if exercise == "beta_P_direction":
        twin = _twin(context)
        estimate, sd = twin.history[-1].parameters["beta_P"]
        yaml_value = twin.model.parameter_set["beta_P"].value
        if answer != solution("beta_P_direction", context):
            return _say(False, "read twin.history[-1].parameters['beta_P'] (value, sd) and parameters.yaml's beta_P")
        return _say(
            True,
            f"{estimate:.2f} +- {sd:.2f} pg/cell/d against {yaml_value:g}: the synthetic batch's true beta_P is "
            f"{UPSET_TRUTH['beta_P'] * yaml_value:g}, and the twin learned that from the titer measurements",
        )
    if exercise in ("map_passing", "map_warmest"):
        if context is None or getattr(context, "values", None) is None:
            raise ValueError("pass the computed DesignSpaceView as context")
        return _check_map(exercise, answer, context)
    if exercise == "upset":
        start = UPSET_BOLUS_DAY * 24.0
        try:
            t, variable = answer
            ok = start <= float(t) <= start + 12.0 and variable == "Glc"
        except (TypeError, ValueError):
            ok = False
        if not ok:  # a hint, not the answer (Run All must not give the exercise away)
            return _say(False, "look for the first alarm the twin raised: its time and the variable it names first")
        return _say(
            True,
            f"the feed bolus of day {UPSET_BOLUS_DAY:g} ({start:g} h) was never given: glucose stayed about 10 mM "
            "below what the recipe should have given, and the twin's chi-square test fired on glucose",
        )
    raise AssertionError("unreachable")


def _proposed(model) -> list[str]:
    """Parameters whose stated source begins with 'proposed'."""
    return [p.name for p in model.parameter_set if p.source.lower().startswith("proposed")]


def _fit(context):
    if context is None or not hasattr(context, "diagnostics"):
        raise ValueError("pass the calibration result (view.result) as context")
    return context


def _beta_p_doubled(explorer):
    """The explorer's readouts at its starting values and with beta_P doubled (two warm solves, kept on the explorer;
    the sliders are not moved)."""
    if explorer is None or not hasattr(explorer, "start_values"):
        raise ValueError("pass the fed-batch explorer as context")
    cached = _BETA_P_RUNS.get(explorer)
    if cached is None:
        from biotwin.engine.knobs import evaluate

        start = dict(explorer.start_values)
        doubled = {**start, "beta_P": 2.0 * start["beta_P"]}
        cached = tuple(evaluate(explorer.model, explorer.spec, v, explorer.base_raw)[1] for v in (start, doubled))
        _BETA_P_RUNS[explorer] = cached
    return cached


#: the two runs of :func:`_beta_p_doubled` per explorer (kept here, not written onto the explorer)
_BETA_P_RUNS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _unchanged(before, after) -> list[str]:
    """Readouts equal (to 1e-6 relative) in the two runs."""
    return [k for k in before if abs(after[k] - before[k]) <= 1e-6 * max(abs(before[k]), 1e-12)]


def _twin(context):
    if context is None or not getattr(context, "history", None):
        raise ValueError("pass the Twin after the replay as context")
    return context


def _map_warmest(space, pressure=150.0):
    """The warmest passing shelf set point of the map's row at ``pressure`` [mTorr] (None if none passes)."""
    row = space.y_values.index(pressure)
    passing = [x for x, ok in zip(space.x_values, space.passing()[row]) if ok]
    return max(passing) if passing else None


def _check_map(exercise, answer, space) -> bool:
    if exercise == "map_passing":
        right = solution("map_passing", space)
        if not isinstance(answer, (int, float)) or isinstance(answer, bool) or answer != right:
            return _say(False, "count the cells without a cross on the map (or sum space.passing())")
        return _say(True, f"{right} of {space.passing().size} cells keep the product at or below -15 degC")
    right = _map_warmest(space)
    try:
        shelf = float(answer)
    except (TypeError, ValueError):
        return _say(False, "give a shelf set point as a number, e.g. check('map_warmest', 0.0, space)")
    if shelf not in [float(x) for x in space.x_values]:
        return _say(False, f"choose one of the map's shelf set points: {', '.join(f'{x:g}' for x in space.x_values)}")
    row, col = space.y_values.index(150.0), [float(x) for x in space.x_values].index(shelf)
    value = float(space.values[row, col])
    if shelf == right:
        return _say(True, f"{shelf:g} degC at 150 mTorr: the product reaches {value:.1f} degC")
    if value > -15.0:  # about the trainee's own cell only
        return _say(False, f"at {shelf:g} degC and 150 mTorr the product reaches {value:.1f} degC, above -15 degC")
    return _say(False, f"{shelf:g} degC passes at 150 mTorr, but a warmer set point on the map does too")


def solution(exercise: str, context=None):
    """An answer that passes (computed, not stored)."""
    if exercise == "tier":
        return _hek_card_tiers()[0]
    if exercise == "feed_factor":
        sweep = _feed_sweep()
        feasible = {f: t for f, (t, lac) in sweep.items() if lac <= FEED_LACTATE_LIMIT_MM}
        return max(feasible, key=feasible.get)
    if exercise == "widest_ci":
        table = context.table()
        return str(((table["ci95_high"] - table["ci95_low"]) / table["value"].abs()).idxmax())
    if exercise == "lyo_cycle":
        for pressure in (100, 150, 200):
            for shelf in range(40, -20, -5):
                s = _lyo_cycle(shelf, pressure)
                if s["primary_drying_time_h"] < 9.0 and s["max_T_bottom_C"] <= -15.0:
                    return (shelf, pressure)
        return None
    if exercise == "lyo_tier2":
        return ["Kv", "Rp"]
    if exercise == "proposed":
        from biotwin.core.model import load_model

        return _proposed(load_model("mab_fedbatch"))[0]
    if exercise == "chi2":
        d = _fit(context).diagnostics
        return bool(d["chi2_expected_95"][0] <= d["chi2"] <= d["chi2_expected_95"][1])
    if exercise == "correlation":
        return "positive" if float(_fit(context).correlation_frame().loc["mu_max", "beta_P"]) > 0 else "negative"
    if exercise == "titer_factor":
        before, after = _beta_p_doubled(context)
        return round(after["final titer [g/L]"] / before["final titer [g/L]"], 2)
    if exercise == "unchanged_readout":
        return _unchanged(*_beta_p_doubled(context))[0]
    if exercise == "alarm_count":
        return sum(len(h.alarms) for h in _twin(context).history)
    if exercise == "beta_P_direction":
        twin = _twin(context)
        return (
            "above" if twin.history[-1].parameters["beta_P"][0] > twin.model.parameter_set["beta_P"].value else "below"
        )
    if exercise == "map_passing":
        return int(context.passing().sum())
    if exercise == "map_warmest":
        return _map_warmest(context)
    if exercise == "upset":
        # what a trainee does: read the twin's first alarm (context: the Twin after the replay)
        alarms = [a for h in context.history for a in h.alarms]
        return (alarms[0]["update_time"], alarms[0]["variables"][0]) if alarms else None
    raise KeyError(exercise)
