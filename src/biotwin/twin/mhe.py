"""Moving-horizon estimation on the model's own right-hand side: the twin's re-linearizing estimator.

The extended Kalman filter (:mod:`biotwin.twin.twin`) linearizes once per row, at its prediction, and
never revisits a row. Moving-horizon estimation keeps the last ``window`` rows and, at every update,
solves the weighted least-squares problem over them again (Rao, Rawlings & Mayne 2003, IEEE TAC
48(2):246; Rawlings, Mayne & Diehl, *Model Predictive Control*, 2nd ed. 2017, ch. 4)::

    min  |C^-1 (a_s - a_bar)|^2  +  sum_k |w_k|^2 / (q dt_k)  +  sum_k |(y_k - x_k) / sigma_k|^2
    over a_s = [x(t_s); log theta] and the disturbances w_k, where
         x_k = Phi(x_{k-1}, theta; t_{k-1}, t_k) + w_k      (the model's flow, LSODA)

``t_s`` is the time of the last row that left the window; the arrival cost ``(a_bar, P_bar = C C')``
carries everything earlier rows said: an EKF fed with each row as it leaves the window (the
"filtering" arrival cost of Rao et al.). ``w_k`` is the process noise of the twin (``Q dt``; a state
with zero noise gets none). The problem is solved by Gauss-Newton (:meth:`MovingHorizon.solve`) with the
chain of the per-interval sensitivities ``dPhi/d(x, log theta)`` (forward differences of the
integration, as the EKF), warm started from the previous window's solution. The estimate at the latest row and its covariance
``T (J'J)^-1 T'`` (``T`` the sensitivity of ``[x_N; log theta]`` to the unknowns) replace the EKF's.
"""

from __future__ import annotations

import numpy as np
from scipy.linalg import qr, solve_triangular
from scipy.optimize import lsq_linear


class MovingHorizon:
    """The window, the arrival cost and the warm start of one twin's moving-horizon estimator.

    Parameters
    ----------
    twin : biotwin.twin.Twin
        The twin whose flow, process noise and initial estimate are used.
    window : int
        Rows in the window (a row is every value measured at one time) [-].
    iterations : int
        Largest number of least-squares iterations per update [-] (warm started, usually 1-3 needed).
    """

    def __init__(self, twin, window: int, iterations: int):
        self.twin = twin
        self.window = window
        self.iterations = iterations
        self.rows: list[tuple[float, dict]] = []
        # the arrival cost: an EKF of the rows that left the window, at the time of the last of them
        self.a_bar, self.P_bar, self.t_bar = twin.a.copy(), twin.P.copy(), twin.t
        self._guess: dict = {}  # warm start: {"a_s": {time: [x; log theta]}, "w": {interval end: w}}
        self.last = {}  # the last solve: steps taken, cost at the start and the end, rows

    def add(self, t_k: float, measured: dict):
        """Put a row in the window; the row that leaves it goes into the arrival cost."""
        self.rows.append((t_k, measured))
        if len(self.rows) > self.window:
            t_o, m_o = self.rows.pop(0)
            tw = self.twin
            if t_o > self.t_bar:
                self.a_bar, self.P_bar = tw._predicted(self.a_bar, self.P_bar, self.t_bar, t_o)
            self.a_bar, self.P_bar, *_ = tw._corrected(self.a_bar, self.P_bar, m_o, t_o)
            self.t_bar = t_o

    # -- the least-squares problem -----------------------------------------------------------------
    def _layout(self):
        tw = self.twin
        n, q = len(tw.state_names), len(tw.estimate)
        noisy = np.flatnonzero(np.diag(tw.Q) > 0)
        times = [self.t_bar] + [t for t, _ in self.rows]
        intervals = [(k, times[k], times[k + 1]) for k in range(len(self.rows)) if times[k + 1] > times[k]]
        slots = {k: n + q + j * len(noisy) for j, (k, _, _) in enumerate(intervals)}
        return n, q, noisy, intervals, slots, n + q + len(intervals) * len(noisy)

    def _forward(self, z, layout, jacobian: bool):
        """States at the window's rows and, with ``jacobian``, their derivatives to ``z``."""
        tw = self.twin
        n, q, noisy, intervals, slots, size = layout
        x, log_theta = z[:n].copy(), z[n : n + q]
        D = np.zeros((n, size))
        D[:, :n] = np.eye(n)
        dtheta = np.zeros((q, size))
        dtheta[:, n : n + q] = np.eye(q)
        states, sens = [], []
        by_k = {k: (t0, t1) for k, t0, t1 in intervals}
        for k in range(len(self.rows)):
            if k in by_k:
                t0, t1 = by_k[k]
                a = np.concatenate([x, log_theta])
                if jacobian:
                    base, J = tw._jacobian(a, t0, t1)
                    G = J[-1]  # d x(t1) / d [x(t0); log theta]
                    D = G[:, :n] @ D + G[:, n:] @ dtheta
                    x = base[-1].copy()
                else:
                    x = tw._flow(a, t0, t1)[-1].copy()
                x[noisy] += z[slots[k] : slots[k] + len(noisy)]
                if jacobian:
                    D[noisy, slots[k] : slots[k] + len(noisy)] += np.eye(len(noisy))
            states.append(x.copy())
            sens.append(D.copy() if jacobian else None)
        return states, sens, dtheta

    def _residuals(self, z, layout, chol, jacobian: bool):
        """Whitened residuals (arrival, disturbances, measurements) and the states at the rows; with
        ``jacobian`` also the residuals' Jacobian, the states' sensitivities and ``d log theta / dz``."""
        tw = self.twin
        n, q, noisy, intervals, slots, size = layout
        states, sens, dtheta = self._forward(z, layout, jacobian)
        r = [np.linalg.solve(chol, z[: n + q] - self.a_bar)]
        J = [np.linalg.solve(chol, np.eye(n + q, size))] if jacobian else []
        q_diag = np.diag(tw.Q)[noisy]
        for k, t0, t1 in intervals:
            scale = np.sqrt(q_diag * (t1 - t0))
            r.append(z[slots[k] : slots[k] + len(noisy)] / scale)
            if jacobian:
                block = np.zeros((len(noisy), size))
                block[:, slots[k] : slots[k] + len(noisy)] = np.diag(1.0 / scale)
                J.append(block)
        for (t, measured), x, D in zip(self.rows, states, sens, strict=True):
            y_hat, H = tw._measure(np.concatenate([x, z[n : n + q]]), list(measured), t, jacobian=jacobian)
            y = np.array([v for v, _ in measured.values()])
            sd = np.array([s for _, s in measured.values()])
            r.append((y - y_hat) / sd)
            if jacobian:
                J.append(-(H[:, :n] @ D + H[:, n:] @ dtheta) / sd[:, None])
        if not jacobian:
            return np.concatenate(r), states
        return np.concatenate(r), np.vstack(J), states, sens, dtheta

    def _start(self, layout):
        n, q, noisy, intervals, slots, size = layout
        z = np.zeros(size)
        guess = self._guess
        z[: n + q] = guess["a_s"].get(self.t_bar, self.a_bar) if guess else self.a_bar
        for k, _, t1 in intervals:
            w = guess.get("w", {}).get(t1) if guess else None
            if w is not None and len(w) == len(noisy):
                z[slots[k] : slots[k] + len(noisy)] = w
        return z

    def solve(self):
        """Solve the window; return ``(a, P)`` at its last row ([states; log theta] and covariance).

        Gauss-Newton from the warm start: each iteration linearizes the whole window once (the chained
        sensitivities), takes the bounded linear least-squares step (``scipy.optimize.lsq_linear``; the
        window's starting states stay non-negative) and halves it until the cost falls (at most four
        times). With ``iterations=1`` this is the real-time iteration of Diehl et al. (one linearization
        per update, started from the previous window's solution).
        """
        tw = self.twin
        layout = self._layout()
        n, q, noisy, intervals, slots, size = layout
        P_bar = 0.5 * (self.P_bar + self.P_bar.T)
        # a relative jitter per variable: one large variance (a temperature in K) must not swamp a small one
        chol = np.linalg.cholesky(P_bar + np.diag(1e-12 * np.maximum(np.diag(P_bar), 1e-300)))
        lower = np.full(size, -np.inf)
        lower[:n][tw.nonnegative] = 0.0
        z = np.maximum(self._start(layout), lower)
        r, J, states, sens, dtheta = self._residuals(z, layout, chol, jacobian=True)
        cost0 = cost = float(r @ r)
        steps = 0
        for it in range(self.iterations):
            if it:
                r, J, states, sens, dtheta = self._residuals(z, layout, chol, jacobian=True)
            step = np.linalg.lstsq(J, -r, rcond=None)[0]
            if np.any(z + step < lower):
                step = lsq_linear(J, -r, bounds=(lower - z, np.full(size, np.inf))).x
            for _ in range(5):
                z_try = z + step
                try:
                    r_try, states_try = self._residuals(z_try, layout, chol, jacobian=False)
                except FloatingPointError:  # the trial states could not be integrated: a shorter step
                    r_try = None
                if r_try is not None and np.all(np.isfinite(r_try)) and r_try @ r_try < cost:
                    break
                step = 0.5 * step
            else:
                break
            z, r, states, cost = z_try, r_try, states_try, float(r_try @ r_try)
            steps += 1
        # the covariance from the last linearization (made before the last accepted step: with one iteration
        # it lags the mean by that step), (J'J)^-1 = R^-1 R^-T from J = QR (J has full column
        # rank: the arrival and disturbance blocks are), without forming J'J: with small process noise the
        # disturbance columns weigh 1e6 times the parameters' and J'J would lose the parameters' digits
        R = qr(J, mode="economic")[1]
        T = np.vstack([sens[-1], dtheta])
        TR = solve_triangular(R, T.T, trans="T").T  # T R^-1
        P = TR @ TR.T
        a = tw.clip(np.concatenate([states[-1], z[n : n + q]]))
        # warm start of the next window: the smoothed states at each row, the disturbances by time
        a_at = {t: np.concatenate([x, z[n : n + q]]) for (t, _), x in zip(self.rows, states, strict=True)}
        a_at[self.t_bar] = z[: n + q]
        self._guess = {"a_s": a_at, "w": {t1: z[slots[k] : slots[k] + len(noisy)] for k, _, t1 in intervals}}
        self.last = {"steps": steps, "cost_start": cost0, "cost": cost, "rows": len(self.rows)}
        return a, 0.5 * (P + P.T)
