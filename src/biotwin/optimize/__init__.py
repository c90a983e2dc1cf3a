"""Optimization of recipes: bolus volumes by one collocation NLP (:mod:`.feed`), one set-point (a glucose
target) by a search over refined simulations (:mod:`.setpoint`). Imports the layers below."""
