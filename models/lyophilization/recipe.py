"""The lyophilization recipe: its keys, their units, the old spellings and the reader.

Every quantity is a value with its unit (:mod:`biotwin.core.schema`): ``Vfill: 2 mL``; the shelf and
pressure programs are ``{unit: degC, points: [[time_h, value], ...]}``. The keys of the ``vial``,
``product`` and ``heat_transfer`` blocks are the parameters they set (``parameters.yaml``)::

    vial: {Av: 3.80 cm^2, Ap: 3.14 cm^2, Vfill: 2.0 mL}
    product: {c_solid: 0.05 g/mL, R0: 1.4 cm^2*h*torr/g, A1: 16.0 cm*h*torr/g, A2: 0.0 1/cm, T_critical: -5 degC}
    heat_transfer: {KC: 2.75e-4 cal/s/K/cm^2, KP: 8.93e-4 cal/s/K/cm^2/torr, KD: 0.46 1/torr}
    shelf_temperature: {unit: degC, points: [[0, -35], [0.9166667, 20], [12, 20]]}
    chamber_pressure: {unit: mtorr, points: [[0, 150], [12, 150]]}
    equipment: {a: -0.182 kg/h, b: 11.7 kg/h/torr, n_vials: 398}      # optional
    t_end: 30 h                                                       # optional
    desorption: during_primary                                        # or after_primary
    optimize: {...}                                                   # cycle_optimization.py
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from biotwin.core.model import helper_module
from biotwin.processes import freeze_drying as rel

ZERO_CELSIUS = 273.15
#: the forms of desorption a recipe may choose, and what each means
DESORPTION = {
    "during_primary": "bound water leaves the dried layer as it forms, the default",
    "after_primary": "only once the ice is gone",
}
DESORPTION_FORMS = tuple(DESORPTION)
# Every quantity is a value with its unit (biotwin.core.schema): ``Vfill: 2 mL``, programs as
# ``{unit: degC, points: [[time_h, value], ...]}``. Block keys are the parameters they set.
VIAL = {"Av": ("cm^2", "outer cross-section area of the vial"), "Ap": ("cm^2", "inner cross-section area"),
        "Vfill": ("mL", "fill volume")}  # fmt: skip
PRODUCT = {
    "c_solid": ("g/mL", "solid concentration of the solution"),
    "R0": ("cm^2*h*torr/g", "dried-cake resistance at zero cake length"),
    "A1": ("cm*h*torr/g", "cake-resistance growth with cake length"),
    "A2": ("1/cm", "cake-resistance saturation with cake length"),
}
HEAT = {
    "KC": ("cal/s/K/cm^2", "vial heat transfer, contact and radiation term"),
    "KP": ("cal/s/K/cm^2/torr", "vial heat transfer, gas conduction term"),
    "KD": ("1/torr", "vial heat transfer, pressure saturation"),
}
# the dryer's capability line a + b P [kg/h, P in Torr] and the vials loaded (LyoPRONTO's spelling)
EQUIPMENT = {"a": ("equipment_a", "kg/h"), "b": ("equipment_b", "kg/h/torr"), "n_vials": ("n_vials", "")}
POSITIVE = {"Av", "Ap", "Vfill", "R0"}

#: Old spellings (unit in the key), read with a RecipeSpellingWarning giving the new one.
RECIPE_SPELLINGS = {
    "vial.Av_cm2": ("Av", "cm^2"),
    "vial.Ap_cm2": ("Ap", "cm^2"),
    "vial.fill_mL": ("Vfill", "mL"),
    "product.c_solid_g_per_mL": ("c_solid", "g/mL"),
    "product.R0_cm2_h_Torr_per_g": ("R0", "cm^2*h*torr/g"),
    "product.A1_cm_h_Torr_per_g": ("A1", "cm*h*torr/g"),
    "product.A2_per_cm": ("A2", "1/cm"),
    "product.T_critical_C": ("T_critical", "degC"),
    "heat_transfer.KC_cal_per_s_K_cm2": ("KC", "cal/s/K/cm^2"),
    "heat_transfer.KP_cal_per_s_K_cm2_Torr": ("KP", "cal/s/K/cm^2/torr"),
    "heat_transfer.KD_per_Torr": ("KD", "1/torr"),
    "equipment.a_kg_per_h": ("a", "kg/h"),
    "equipment.b_kg_per_h_per_Torr": ("b", "kg/h/torr"),
    "shelf_temperature_C": ("shelf_temperature", "degC"),
    "chamber_pressure_mTorr": ("chamber_pressure", "mtorr"),
    "t_end_h": ("t_end", "h"),
    "optimize.shelf_temperature_C": ("shelf_temperature", ""),
    "optimize.chamber_pressure_mTorr": ("chamber_pressure", ""),
    "optimize.shelf_temperature.min": ("min", "degC"),
    "optimize.shelf_temperature.max": ("max", "degC"),
    "optimize.shelf_temperature.ramp_C_per_min": ("ramp", "degC/min"),
    "optimize.shelf_temperature.initial_C": ("initial", "degC"),
    "optimize.chamber_pressure.min": ("min", "mtorr"),
    "optimize.chamber_pressure.max": ("max", "mtorr"),
    "optimize.constraints.T_bottom_max_C": ("T_bottom_max", "degC"),
    "optimize.constraints.margin_C": ("margin", "K"),
    "optimize.constraints.equipment.a_kg_per_h": ("a", "kg/h"),
    "optimize.constraints.equipment.b_kg_per_h_per_Torr": ("b", "kg/h/torr"),
}


def equipment_config(description="the dryer's capability line a + b P and the vials loaded"):
    """The ``equipment`` block: ``{a: -0.182 kg/h, b: 11.7 kg/h/torr, n_vials: 398}``."""
    from pyomo.common.config import ConfigDict, ConfigValue

    from biotwin.core.schema import Quantity

    c = ConfigDict(description=description)
    c.declare("a", ConfigValue(domain=Quantity("kg/h"), default=None, description="a of a + b P [kg/h]"))
    c.declare("b", ConfigValue(domain=Quantity("kg/h/torr"), default=None, description="b of a + b P [kg/h/torr]"))
    c.declare("n_vials", ConfigValue(domain=Quantity("", positive=True, bare=True), default=None))
    return c


def recipe_config():
    """The lyophilization recipe: every key, its unit and what it is (``pyomo.common.config``)."""
    from pyomo.common.config import ConfigDict, ConfigValue

    from biotwin.core.schema import Choice, Points, Quantity

    c = ConfigDict(description="a freeze-drying recipe")
    c.declare("description", ConfigValue(domain=str, default=""))
    for block, keys in (("vial", VIAL), ("product", PRODUCT), ("heat_transfer", HEAT)):
        b = c.declare(block, ConfigDict())
        for name, (unit, what) in keys.items():
            # physical magnitudes: never negative (A2 and the Kv terms may be zero), fill and areas positive
            domain = Quantity(unit, positive=name in POSITIVE, non_negative=True)
            b.declare(name, ConfigValue(domain=domain, default=None, description=f"{what} [{unit}]"))
    c["product"].declare(
        "T_critical", ConfigValue(domain=Quantity("degC"), default=None, description="collapse temperature [degC]")
    )
    c.declare("equipment", equipment_config())
    c.declare("shelf_temperature", ConfigValue(domain=Points("degC"), description="shelf program, times [h]"))
    c.declare("chamber_pressure", ConfigValue(domain=Points("mtorr", positive=True), description="times [h]"))
    c.declare("t_end", ConfigValue(domain=Quantity("h", positive=True), default=None, description="end [h]"))
    c.declare("desorption", ConfigValue(domain=Choice(DESORPTION), default="during_primary", description="form"))
    c.declare("optimize", ConfigValue(domain=dict, default=None, description="see cycle_optimization.py"))
    return c


def recipe_programs(raw) -> tuple[list, list]:
    """The shelf [degC] and chamber-pressure [mTorr] programs of a recipe, ``[[time_h, value], ...]`` each."""
    from biotwin.core.schema import points_in

    return points_in(raw["shelf_temperature"], "degC"), points_in(raw["chamber_pressure"], "mtorr")


def with_programs(raw, shelf_C, pressure_mTorr) -> dict:
    """The recipe ``raw`` with new shelf [degC] and pressure [mTorr] programs (``[[time_h, value], ...]``)."""
    out = {k: v for k, v in raw.items() if k not in ("shelf_temperature", "chamber_pressure")}
    out["shelf_temperature"] = {"unit": "degC", "points": [[float(t), float(v)] for t, v in shelf_C]}
    out["chamber_pressure"] = {"unit": "mtorr", "points": [[float(t), float(v)] for t, v in pressure_mTorr]}
    return out


def read_scenario(raw, where):
    """Translate the lyophilization recipe schema (:func:`recipe_config`) into the generic scenario form."""
    from biotwin.core import checks
    from biotwin.core.errors import ScenarioError
    from biotwin.core.programs import Program
    from biotwin.core.schema import validate

    for key in ("shelf_temperature", "chamber_pressure"):
        if key not in raw:
            raise ScenarioError(
                f"{where}: '{key}' is required ({{unit: {'degC' if key[0] == 's' else 'mtorr'}, "
                "points: [[time_h, value], ...]}})"
            )
    cfg = validate(recipe_config(), raw, where)
    params = {}
    for block, keys in (("vial", VIAL), ("product", PRODUCT), ("heat_transfer", HEAT)):
        params.update({name: float(cfg[block][name]) for name in keys if cfg[block][name] is not None})
    params.update(
        {name: float(cfg.equipment[key]) for key, (name, _) in EQUIPMENT.items() if cfg.equipment[key] is not None}
    )
    shelf = Program.from_points("shelf_temperature", cfg.shelf_temperature, where)
    pressure = Program.from_points("chamber_pressure", cfg.chamber_pressure, where)
    checks.in_range(shelf.values, "shelf_temperature", f"{where}: shelf_temperature", unit_given="degC")
    checks.in_range(pressure.values, "chamber_pressure", f"{where}: chamber_pressure", unit_given="mTorr")
    if cfg.t_end is not None:
        checks.in_range(cfg.t_end, "lyophilization_duration", f"{where}: t_end", unit_given="h")
    if cfg.optimize is not None:
        helper_module(__file__, "cycle_optimization").read_optimize_block(raw, where)
    t_end = float(cfg.t_end if cfg.t_end is not None else min(shelf.times[-1], pressure.times[-1]))
    # nothing sublimes if the chamber pressure is above the ice vapour pressure at the shelf temperature
    # at every moment (the product cannot be warmer than the shelf)
    grid = np.unique(np.concatenate([shelf.times, pressure.times, np.linspace(0.0, t_end, 200)]))
    grid = grid[grid <= t_end]
    from biotwin.core.parameters import default_values

    ice = default_values(Path(__file__).with_name("parameters.yaml"))  # psub_A [torr], psub_B [K]
    psub_mtorr = rel.vapour_pressure_ice(shelf(grid) + ZERO_CELSIUS, ice["psub_A"], ice["psub_B"]) * 1000.0
    if np.all(pressure(grid) >= psub_mtorr):
        warmest = float(np.max(shelf(grid)))
        raise ScenarioError(
            f"{where}: the chamber pressure is above the ice vapour pressure at the shelf "
            f"temperature throughout the recipe (warmest shelf {warmest:.1f} degC gives "
            f"{float(np.max(psub_mtorr)):.1f} mTorr): nothing would sublime"
        )
    return {
        "description": cfg.description,
        "t_end": t_end,
        "settings": {"desorption": cfg.desorption},
        "parameters": params,
        "inputs": {
            "T_shelf": {
                "unit": "K",
                "points": [[float(t), float(v) + ZERO_CELSIUS] for t, v in zip(shelf.times, shelf.values)],
            },
            "P_chamber": {
                "unit": "mtorr",
                "points": [[float(t), float(v)] for t, v in zip(pressure.times, pressure.values)],
            },
        },
    }
