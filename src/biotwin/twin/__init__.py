"""The live twin: process data in, state and parameter estimates, forecasts with bands and alarms out.

``Twin(model, recipe, estimate=[...])`` keeps a model in step with a running batch: each
``update(rows)`` takes the measurements that arrived (the calibration data format), corrects the
estimate of every state and of the estimated parameters (an extended Kalman filter on the model's
own right-hand side, :mod:`biotwin.twin.twin`, or with ``method="mhe"`` moving-horizon estimation over
the last rows, :mod:`biotwin.twin.mhe`), forecasts every state to the end of the recipe with
a 95 % band, and tests the new rows' innovations for a deviation the model cannot explain
(:mod:`biotwin.twin.alarms`). Layer: analysis (with ``calibration`` and ``optimize``).
"""

from biotwin.twin.alarms import AlarmRule
from biotwin.twin.twin import Twin, TwinUpdate

__all__ = ["AlarmRule", "Twin", "TwinUpdate"]
