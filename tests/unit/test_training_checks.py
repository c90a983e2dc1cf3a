"""Training checks never reveal an exercise's answer to a wrong or empty answer (issue #19, item 2).

The checks' computations are replaced by small fixed inputs here (the real ones run in
tests/notebooks: each notebook with the computed solutions)."""

import pandas as pd
import pytest

from biotwin.tools import training

SWEEP = {  # factor: (final titer g/L, peak lactate mM)
    0.5: (0.89, 119.2),
    0.75: (0.83, 113.6),
    1.0: (0.77, 105.1),
    1.25: (0.71, 97.7),
    1.5: (0.67, 91.3),
}


class FakeFit:
    def table(self):
        return pd.DataFrame(
            {"value": [1.0, 2.0, 3.0], "ci95_low": [0.9, 1.0, 2.9], "ci95_high": [1.1, 3.0, 3.1]},
            index=["mu_max", "beta_P", "Y_X_Glc"],
        )


@pytest.fixture(autouse=True)
def fixed_sweep(monkeypatch):
    monkeypatch.setattr(training, "_feed_sweep", lambda: SWEEP)


@pytest.mark.parametrize("answer", [None, "x", 0.3, 0.5, 1.0, 1.5])
def test_feed_factor_wrong_answers_do_not_reveal_it(capsys, answer):
    assert training.check("feed_factor", answer) is False
    out = capsys.readouterr().out
    assert out.startswith("not yet:") and "1.25" not in out and "0.71" not in out, out


def test_feed_factor_right_answer_and_its_limit():
    assert training.solution("feed_factor") == 1.25  # highest titer with peak lactate <= 100 mM
    assert training.check("feed_factor", 1.25) is True
    assert training.FEED_LACTATE_LIMIT_MM == 100.0


@pytest.mark.parametrize("answer", [None, "mu_max", "Y_X_Glc", "nonsense"])
def test_widest_interval_wrong_answers_do_not_reveal_it(capsys, answer):
    assert training.check("widest_ci", answer, FakeFit()) is False
    out = capsys.readouterr().out
    assert out.startswith("not yet:") and "beta_P" not in out, out
    assert training.check("widest_ci", "beta_P", FakeFit()) is True


@pytest.mark.parametrize("answer", [None, 3, "one"])
def test_tier_wrong_answers_do_not_reveal_it(capsys, answer):
    assert training.check("tier", answer) is False
    out = capsys.readouterr().out
    assert out.startswith("not yet:") and "tier 0" not in out and "tier 1" not in out, out


class FakeMap:
    """A computed design-space map: rows 60/100/150/200 mTorr, columns -10..30 degC, limit -15 degC."""

    def __init__(self):
        import numpy as np

        self.x_values, self.y_values = [-10, 0, 10, 20, 30], [60, 100, 150, 200]
        self.values = np.array(
            [
                [-30.0, -26, -22, -18, -14],
                [-28, -24, -20, -16, -12],
                [-27, -23, -19, -15.5, -11],
                [-25, -21, -17, -13, -9],
            ]
        )

    def passing(self):
        return self.values <= -15.0


@pytest.mark.parametrize("answer", [None, 0, 10, 13, "eleven", True])
def test_map_count_wrong_answers_do_not_reveal_it(capsys, answer):
    assert training.check("map_passing", answer, FakeMap()) is False
    out = capsys.readouterr().out
    assert out.startswith("not yet:") and "15" not in out, out
    assert training.solution("map_passing", FakeMap()) == 15 and training.check("map_passing", 15, FakeMap())


@pytest.mark.parametrize("answer", [None, "warm", 5, -10, 0, 10, 30])
def test_map_warmest_wrong_answers_do_not_reveal_it(capsys, answer):
    assert training.check("map_warmest", answer, FakeMap()) is False
    out = capsys.readouterr().out
    assert out.startswith("not yet:") and "20 degC" not in out, out
    assert training.solution("map_warmest", FakeMap()) == 20 and training.check("map_warmest", 20.0, FakeMap())


class FakeDiagnosedFit(FakeFit):
    def __init__(self):
        self.diagnostics = {"chi2": 31.0, "chi2_expected_95": [20.0, 40.0]}

    def correlation_frame(self):
        return pd.DataFrame([[1.0, -0.8], [-0.8, 1.0]], index=["mu_max", "beta_P"], columns=["mu_max", "beta_P"])


class FakeTwin:
    """A replayed twin: three updates, two alarms (both after the missed feed at 120 h), beta_P estimated 22.8."""

    def __init__(self):
        from types import SimpleNamespace

        import biotwin

        self.model = biotwin.load_model("mab_fedbatch")
        alarm = {"update_time": 121.0, "variables": ["Glc"]}
        self.history = [
            SimpleNamespace(time=100.0, alarms=[], parameters={"beta_P": (24.0, 2.0)}),
            SimpleNamespace(time=121.0, alarms=[alarm, alarm], parameters={"beta_P": (23.0, 1.8)}),
            SimpleNamespace(time=130.0, alarms=[], parameters={"beta_P": (22.8, 1.5)}),
        ]


class FakeExplorer:
    """An explorer whose two runs (start, beta_P doubled) are already known: only the titer moves, x2."""

    def __init__(self):
        self.start_values = {"beta_P": 25.0}
        start = {"final titer [g/L]": 0.768, "peak VCD [1e6 cells/mL]": 3.534, "peak lactate [mM]": 105.1}
        training._BETA_P_RUNS[self] = (start, {**start, "final titer [g/L]": 1.536})  # the two runs, known


@pytest.mark.parametrize(
    "exercise, context, wrong, right, secret",
    [
        ("lyo_tier2", FakeDiagnosedFit, [None, ["Kv"], "Kv Rp", ["Rp", "KD"]], ["rp", "KV"], ["Kv", "Rp"]),
        ("proposed", FakeDiagnosedFit, [None, "mu_max", "beta_P", "nonsense"], "K_ov", ["q_ov_max", "K_ov", "k_starv"]),
        ("chi2", FakeDiagnosedFit, [None, "True", False, 1], True, ["31.0", "20.0"]),
        ("correlation", FakeDiagnosedFit, [None, "positive", "-0.8", "neg"], "negative", ["-0.80", "negative"]),
        ("alarm_count", FakeTwin, [None, 0, 3, "2", True], 2, ["2 alarm"]),
        ("beta_P_direction", FakeTwin, [None, "above", "lower", 22.8], "below", ["22.8", "below"]),
        ("titer_factor", FakeExplorer, [None, "two", 1.5, 2.02, 1.0], 2.0, ["2.000", "x2"]),
        (
            "unchanged_readout",
            FakeExplorer,
            [None, "final titer [g/L]", "VCD"],
            "peak lactate [mM]",
            ["peak VCD [", "3.534"],
        ),
    ],
)
def test_the_exercises_never_reveal_their_answers(capsys, exercise, context, wrong, right, secret):
    """Each wrong answer gets "not yet" and a hint without the answer; the right one and the computed solution pass."""
    context = context()
    for answer in wrong:
        assert training.check(exercise, answer, context) is False
        out = capsys.readouterr().out
        assert out.startswith("not yet:") and not any(s in out for s in secret), (answer, out)
    assert training.check(exercise, right, context) is True
    assert training.check(exercise, training.solution(exercise, context), context) is True
