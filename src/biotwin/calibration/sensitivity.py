"""Parametric sensitivities of the collocation solution by the implicit-function theorem.

At a solution, the equality constraints ``c(x, phi) = 0`` of the estimation problem are
square in the non-parameter variables ``x``, so ``dx/dphi = -c_x^-1 c_phi`` (one sparse LU
factorization, one solve per parameter). This is exact for the discretized model -- no
finite differences -- and gives the Gauss-Newton matrix and confidence bands.
"""

from __future__ import annotations

import numpy as np
import pyomo.environ as pyo
from pyomo.core.expr.calculus.derivatives import Modes, differentiate
from pyomo.core.expr.visitor import identify_variables
from scipy.sparse.linalg import splu


class Sensitivities:
    """``d(variable)/d(phi)`` for every variable of a solved estimation problem.

    Parameters
    ----------
    parent : pyomo.environ.ConcreteModel
        The estimation problem (with ``parent.phi``), at a solution.
    nlp : PyomoNLP, optional
        PyNumero's NLP of ``parent`` at that solution (from the solve); built if not given.
    """

    def __init__(self, parent, nlp=None):
        from pyomo.contrib.pynumero.interfaces.pyomo_nlp import PyomoNLP

        if nlp is None:
            nlp = PyomoNLP(parent)
        variables = nlp.get_pyomo_variables()
        self.index = {id(v): i for i, v in enumerate(variables)}
        phi_vars = [parent.phi[k] for k in parent.phi.index_set()]
        phi_idx = nlp.get_primal_indices(phi_vars)
        jac = nlp.evaluate_jacobian_eq().tocsc()
        n = len(variables)
        is_phi = np.zeros(n, dtype=bool)
        is_phi[phi_idx] = True
        other = np.flatnonzero(~is_phi)
        jx = jac[:, other]
        if jx.shape[0] != jx.shape[1]:
            raise RuntimeError(
                f"sensitivities need a square system in the state variables: "
                f"{jx.shape[0]} equations, {jx.shape[1]} variables"
            )
        lu = splu(jx.tocsc())
        dx = -lu.solve(jac[:, phi_idx].toarray())
        self.rows = np.zeros((n, len(phi_idx)))
        self.rows[other] = dx
        for j, i in enumerate(phi_idx):
            self.rows[i, j] = 1.0
        self.n_phi = len(phi_idx)

    def of(self, component) -> np.ndarray:
        """``d component / d phi`` for a variable or expression (zero for fixed variables)."""
        if component.is_expression_type() or getattr(component, "ctype", None) is pyo.Expression:
            expr = component.expr if hasattr(component, "expr") else component
            wrt = [v for v in identify_variables(expr, include_fixed=False)]
            if not wrt:
                return np.zeros(self.n_phi)
            grads = differentiate(expr, wrt_list=wrt, mode=Modes.reverse_numeric)
            out = np.zeros(self.n_phi)
            for v, g in zip(wrt, grads):
                i = self.index.get(id(v))
                if i is not None:
                    out += float(g) * self.rows[i]
            return out
        if component.fixed:
            return np.zeros(self.n_phi)
        i = self.index.get(id(component))
        return np.zeros(self.n_phi) if i is None else self.rows[i].copy()


def local_sensitivities(model, scenario, parameters, outputs, times, params=None, rel_step=1e-3, nfe=60):
    """Scaled local sensitivities ``d ln y / d ln p`` of outputs at given times, by central differences.

    A quick identifiability check before (or instead of) a fit: parameters whose sensitivity
    columns are nearly parallel cannot be separated by measurements of these outputs at these
    times, whatever the data quality.

    Parameters
    ----------
    model : biotwin.Model
    scenario : scenario name, path or dict
    parameters : list of str
    outputs : list of str
        Variables (columns of the simulation result).
    times : list of float
        Measurement times [model time unit].
    params : dict, optional
        The parameter values to expand around (default: the model's).
    rel_step : float
        Relative step of the central difference.
    nfe : int

    Returns
    -------
    (pandas.DataFrame, pandas.DataFrame)
        The sensitivity matrix (rows ``output@time``, columns parameters) and the cosine of the
        angle between each pair of columns (1: indistinguishable).
    """
    import numpy as np
    import pandas as pd

    base = model.parameter_values(params or {})
    columns = {}
    reference = model.simulate(scenario=scenario, params=base, times=times, nfe=nfe).wide
    for name in parameters:
        up = model.simulate(
            scenario=scenario, params={**base, name: base[name] * (1 + rel_step)}, times=times, nfe=nfe
        ).wide
        down = model.simulate(
            scenario=scenario, params={**base, name: base[name] * (1 - rel_step)}, times=times, nfe=nfe
        ).wide
        col = []
        for out in outputs:
            y = reference[out].to_numpy()
            col.append((up[out].to_numpy() - down[out].to_numpy()) / (2 * rel_step) / np.where(y == 0, 1.0, np.abs(y)))
        columns[name] = np.concatenate(col)
    index = [f"{out}@{t:g}" for out in outputs for t in reference["time"]]
    matrix = pd.DataFrame(columns, index=index)
    unit = matrix / np.linalg.norm(matrix.to_numpy(), axis=0)
    cosine = pd.DataFrame(unit.to_numpy().T @ unit.to_numpy(), index=parameters, columns=parameters)
    return matrix, cosine
