"""The twin's alarm thresholds are the false-alarm rates they state, checked by simulation.

The chi-square rule's rate is a quantile of chi2(m); the CUSUM's in-control average run length comes from
the Markov-chain method of Brook & Evans (1972), checked here against a direct simulation of the CUSUM on
chi-square draws (what a well-specified filter's NIS is), and the default threshold kept in the code
against the chain.
"""

import numpy as np
import pytest

from biotwin.twin.alarms import KNOWN_THRESHOLDS, AlarmRule, cusum_run_length, cusum_threshold


def simulated_run_length(k, h, m, chains, rng):
    """Mean updates to the first CUSUM alarm over ``chains`` independent in-control runs (and its sd of mean)."""
    s = np.zeros(chains)
    stopped = np.zeros(chains, dtype=bool)
    length = np.zeros(chains)
    t = 0
    while not stopped.all():
        t += 1
        z = (rng.chisquare(m, chains) - m) / np.sqrt(2 * m)
        s = np.where(stopped, s, np.maximum(0.0, s + z - k))
        now = ~stopped & (s > h)
        length[now] = t
        stopped |= now
    return length.mean(), length.std() / np.sqrt(chains)


@pytest.mark.parametrize(("h", "m"), [(4.0, 1), (6.0, 2)])
def test_the_cusum_run_length_agrees_with_a_simulation(h, m):
    chain = cusum_run_length(0.5, h, m)
    mean, se = simulated_run_length(0.5, h, m, 6000, np.random.default_rng(11))
    print(f"\nh {h}, {m} value(s) per update: Markov chain {chain:.1f}, simulation {mean:.1f} +- {se:.1f} updates")
    assert abs(chain - mean) < max(4 * se, 0.05 * mean)


def test_the_default_threshold_gives_the_stated_run_length():
    ((k, run_length), h), *_ = KNOWN_THRESHOLDS.items()
    assert cusum_threshold(k, run_length) == pytest.approx(h, abs=1e-3)  # the constant is the chain's answer
    # and the chain has converged: four times the cells, the same run length (a grid half a cell off gave
    # 50 003 at 800 cells and 47 695 at 3 200; review of 5f21bd8)
    assert cusum_run_length(k, h, 1, 3200) == pytest.approx(run_length, rel=0.005)
    rule = AlarmRule()
    assert (rule.cusum_k, rule.cusum_run_length, rule.cusum_h) == (k, run_length, h)
    assert AlarmRule(cusum_h=h).cusum_run_length == pytest.approx(run_length, rel=0.01)  # h given: its run length


def test_noise_alone_raises_alarms_at_the_stated_rates():
    """200 000 in-control updates of one value each: chi-square alarms at 2e-5 per update and CUSUM alarms
    once per 50 000 updates on average, about 4 + 4; the old rule (1e-3, h = 8: a CUSUM run length of 700)
    raised about 200 + 290."""
    rng = np.random.default_rng(5)
    nis = rng.chisquare(1, 200_000)
    counts = {}
    for label, rule in (("default", AlarmRule()), ("old", AlarmRule(false_alarm_rate=1e-3, cusum_h=8.0))):
        kinds = [a["kind"] for t, x in enumerate(nis) for a in rule.check(float(t), float(x), 1, {"y": float(x)})]
        counts[label] = (kinds.count("chi-square"), kinds.count("cusum"))
    print(f"\nalarms in 200 000 noise-only updates (chi-square, CUSUM): {counts}")
    assert counts["default"][0] <= 13 and counts["default"][1] <= 13  # Poisson(4): 13 is beyond its 0.9999 quantile
    assert counts["old"][0] > 100 and counts["old"][1] > 100


def test_bad_thresholds_are_refused():
    with pytest.raises(ValueError, match="false_alarm_rate"):
        AlarmRule(false_alarm_rate=0.0)
    with pytest.raises(ValueError, match="cusum_run_length"):
        AlarmRule(cusum_run_length=1.0)
    with pytest.raises(ValueError, match="cusum_h"):
        AlarmRule(cusum_h=-1.0)
    with pytest.raises(ValueError, match="raise cusum_k"):  # no allowance: noise accumulates without bound
        AlarmRule(cusum_k=0.0)
    with pytest.raises(ValueError, match="lower cusum_k"):  # a large allowance: even h 0.5 runs longer
        AlarmRule(cusum_k=2.0, cusum_run_length=10)
    assert AlarmRule(1e-4, 0.5, 8.0).cusum_h == 8.0  # the positional order of earlier versions still holds
