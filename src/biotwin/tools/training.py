"""Exercises of the training notebooks (``notebooks/training``), checked by a function call.

Each exercise's correct answer is computed from the models when checked (not stored), so the
checks stay right when a model changes. ``check(exercise, answer)`` prints feedback and returns
True or False; ``solution(exercise)`` returns an answer that passes (used by CI to run the
notebooks end to end).
"""

from __future__ import annotations

from functools import cache

EXERCISES = {
    "tier": "Which decision tier does the HEK293 VLP model card state? (an int: 0, 1, 2 or 3)",
    "feed_factor": "With the fed-batch explorer: the bolus-volume factor (0.5-2.5, steps of 0.25) giving the highest "
    "final titer while peak lactate stays at or below 110 mM.",
    "widest_ci": "In the fed-batch calibration: the parameter with the widest 95 % interval relative to its estimate.",
    "lyo_cycle": "A constant shelf set point [degC] and chamber pressure [mTorr] that dry the case-1 product in under "
    "9 h with the vial bottom never above -15 degC (a tuple (shelf_C, pressure_mTorr)).",
}


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
        import re

        from biotwin.core.model import load_model

        card = (load_model("hek293_vlp").folder / "README.md").read_text().lower()
        found = re.search(r"tier (\d)(?:-(\d))?", card)
        stated = list(range(int(found.group(1)), int(found.group(2) or found.group(1)) + 1)) if found else []
        ok = answer in stated
        return _say(
            ok,
            f"the model card says tier {'-'.join(map(str, stated))}: exploratory, not for decisions "
            "before calibration to your process",
        )
    if exercise == "feed_factor":
        sweep = _feed_sweep()
        feasible = {f: t for f, (t, lac) in sweep.items() if lac <= 110.0}
        best = max(feasible, key=feasible.get)
        ok = answer is not None and abs(float(answer) - best) < 1e-9
        return _say(
            ok,
            f"factor {best}: titer {feasible[best]:.3f} g/L with peak lactate {sweep[best][1]:.1f} mM"
            + ("" if ok else f" (yours: {answer})"),
        )
    if exercise == "widest_ci":
        if context is None:
            raise ValueError("pass the calibration result as context")
        table = context.table()
        width = (table["ci95_high"] - table["ci95_low"]) / table["value"].abs()
        best = str(width.idxmax())
        return _say(answer == best, f"{best}: its interval spans {width.max():.0%} of the estimate")
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
    raise AssertionError("unreachable")


def solution(exercise: str, context=None):
    """An answer that passes (computed, not stored)."""
    if exercise == "tier":
        return 0
    if exercise == "feed_factor":
        sweep = _feed_sweep()
        feasible = {f: t for f, (t, lac) in sweep.items() if lac <= 110.0}
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
    raise KeyError(exercise)
