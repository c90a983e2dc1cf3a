"""Rate laws shared by the cell-culture models (mAb CHO fed-batch, HEK293 VLP).

The functions are plain arithmetic, so they build Pyomo expressions when given
Pyomo components and numbers when given numbers. Units are the caller's: the
docstrings give the units the shipped models use.

References
----------
Xing Z, Bishop N, Leister K, Li ZJ (2010) Modeling kinetics of a large-scale
fed-batch CHO cell culture by Markov chain Monte Carlo method. Biotechnol Prog
26:208-219. The forms below follow that model as implemented in the open-source
code kkiviat/of-compartments (``growthModel_xing_simplified``), which is the
independent reference of the tests.
"""

from __future__ import annotations


def monod(c, k):
    """Monod saturation ``c / (k + c)`` [dimensionless]."""
    return c / (k + c)


def inhibition(c, k):
    """Non-competitive inhibition ``k / (k + c)`` [dimensionless]."""
    return k / (k + c)


def smooth_switch(c, centre, width):
    """Smooth on/off switch ``0.5 (1 + x / sqrt(1 + x^2))``, ``x = (c - centre) / width`` [dimensionless].

    Equals 1 to within ``1 / (4 x^2)`` above the centre and falls to 0 below it; used
    to stop zero-order uptake terms when a nutrient is exhausted, so that
    concentrations do not go negative (the reference code clips the rate to zero
    instead, which is not differentiable). An algebraic sigmoid rather than tanh:
    the AMPL library cannot evaluate tanh's derivative far from the centre.
    """
    x = (c - centre) / width
    return 0.5 * (1 + x / (1 + x**2) ** 0.5)


def positive_part(c, eps):
    """Smooth ``max(c, 0)``: ``0.5 (c + sqrt(c^2 + eps^2))`` [unit of c].

    Rate laws hold for non-negative concentrations, but a collocation polynomial
    may dip slightly below zero where a nutrient runs out; there a Monod term
    ``c/(K + c)`` would meet its pole at ``c = -K``. Off by ``eps^2 / (4 c)`` for
    ``c >> eps``.
    """
    return 0.5 * (c + (c**2 + eps**2) ** 0.5)


def xing_growth_rate(Glc, Gln, Lac, Amm, mu_max, K_Glc, K_Gln, KI_Lac, KI_Amm):
    """Specific growth rate [1/h] (Xing et al. 2010, eq. 1).

    ``mu = mu_max * Glc/(K_Glc+Glc) * Gln/(K_Gln+Gln) * KI_Lac/(KI_Lac+Lac) * KI_Amm/(KI_Amm+Amm)``
    """
    return mu_max * monod(Glc, K_Glc) * monod(Gln, K_Gln) * inhibition(Lac, KI_Lac) * inhibition(Amm, KI_Amm)


def xing_death_rate(Lac, Amm, mu_d_max, KD_Lac, KD_Amm):
    """Specific death rate [1/h] (Xing et al. 2010, eq. 2, as in the reference code).

    ``mu_d = mu_d_max * Lac/(KD_Lac+Lac) * Amm/(KD_Amm+Amm)``
    """
    return mu_d_max * monod(Lac, KD_Lac) * monod(Amm, KD_Amm)


def xing_glutamine_maintenance(Gln, a1, a2):
    """Saturating glutamine maintenance uptake ``a1 Gln / (a2 + Gln)`` [mmol/cell/h]."""
    return a1 * Gln / (a2 + Gln)
