"""The twin's record on disk (biotwin twin replay): complete, resumable, never written twice."""

import hashlib
import json

import pandas as pd
import pytest

import biotwin
from biotwin.tools import cli
from biotwin.twin.runner import run_replay
from biotwin.twin.streams import synthetic_stream
from support import TEST_MODELS

MONOD = TEST_MODELS / "monod_switch"
SCHEDULE = {"S": (0.5, 0.05, 0.02), "X": (2.0, 0.0, 0.05)}


@pytest.fixture(scope="module")
def stream(tmp_path_factory):
    model = biotwin.load_model(MONOD)
    frame, _ = synthetic_stream(model, "default", {"mu_max": 0.55}, SCHEDULE, seed=3)
    path = tmp_path_factory.mktemp("stream") / "stream.csv"
    frame.to_csv(path, index=False)
    return path


def test_cli_replay_writes_the_record_and_refuses_to_overwrite_it(stream, tmp_path, capsys):
    out = tmp_path / "rec"
    before = stream.read_bytes()
    args = [
        "twin",
        "replay",
        str(MONOD),
        "--recipe",
        "default",
        "--stream",
        str(stream),
        "--estimate",
        "mu_max",
        "--forecast-every",
        "5",
        "--out",
        str(out),
    ]
    assert cli.main(args) == 0, capsys.readouterr().err
    summary = json.loads((out / "summary.json").read_text())
    estimates = pd.read_csv(out / "estimates.csv")
    forecasts = pd.read_csv(out / "forecasts.csv")
    assert summary["n_updates"] == len(estimates) == len(pd.read_csv(stream))
    assert {"X", "X_sd", "S", "S_sd", "mu_max", "mu_max_sd", "nis", "update_s"} <= set(estimates.columns)
    assert set(forecasts["update_time"]) >= {0.0, 5.0, 10.0, 15.0, estimates["update_time"].iloc[-1]}
    assert summary["parameters"]["mu_max"]["value"] == pytest.approx(0.55, rel=0.05)
    assert stream.read_bytes() == before  # the stream is only read
    assert cli.main(args) == 2 and "--resume" in capsys.readouterr().err
    assert summary["residual_model"] == "independent" and summary["autocorrelation_given"] == {}
    assert set(summary["innovation_autocorrelation_lag1"]) == {"X", "S"}
    # AR(1) errors with a given autocorrelation: every value's variance widened by (1 + 0.5)/(1 - 0.5) = 3
    ar1 = ["--residual-model", "ar1", "--autocorrelation", "0.5", "--out", str(tmp_path / "ar1")]
    assert cli.main(args[:-2] + ar1) == 0, capsys.readouterr().err
    widened = json.loads((tmp_path / "ar1" / "summary.json").read_text())
    assert widened["residual_model"] == "ar1" and widened["autocorrelation_given"] == {"all": 0.5}
    assert widened["parameters"]["mu_max"]["sd"] > 1.3 * summary["parameters"]["mu_max"]["sd"]


def test_resume_after_a_crash_loses_and_repeats_nothing(stream, tmp_path):
    model = biotwin.load_model(MONOD)
    frame = pd.read_csv(stream)
    whole = tmp_path / "whole"
    run_replay(biotwin.Twin(model, "default", estimate=["mu_max"]), frame, whole, forecast_every=5)
    # a process killed after 17 updates, in the middle of appending the 18th line
    crashed = tmp_path / "crashed"
    run_replay(biotwin.Twin(model, "default", estimate=["mu_max"]), frame.iloc[:17], crashed, forecast_every=5)
    with open(crashed / "estimates.csv", "a") as f:
        f.write("9.5,0.31,0.0")  # half a line
    with pytest.raises(biotwin.BiotwinError, match="--resume"):
        run_replay(biotwin.Twin(model, "default", estimate=["mu_max"]), frame, crashed)
    run_replay(biotwin.Twin(model, "default", estimate=["mu_max"]), frame, crashed, resume=True, forecast_every=5)
    a, b = pd.read_csv(whole / "estimates.csv"), pd.read_csv(crashed / "estimates.csv")
    assert list(b["update_time"]) == list(a["update_time"])  # every update once, in order
    pd.testing.assert_frame_equal(a.drop(columns="update_s"), b.drop(columns="update_s"), rtol=1e-10)


def test_a_kill_between_an_updates_writes_loses_and_repeats_nothing(stream, tmp_path, monkeypatch):
    """The process dies after an update wrote its forecast and its alarm but before its estimates line (the
    update's commit mark): --resume writes that update's forecast and alarm once, and every file equals an
    uninterrupted run's."""
    from biotwin.twin import runner

    model = biotwin.load_model(MONOD)
    frame = pd.read_csv(stream)
    k = int(frame.index[(frame["time"] >= 10) & frame["X"].notna()][0])  # a forecast is due at t >= 10
    frame.loc[k, "X"] += 20 * frame.loc[k, "X_sigma"]  # an upset: an alarm at that update
    t_k = float(frame.loc[k, "time"])

    def run(out, resume=False):
        return run_replay(biotwin.Twin(model, "default", estimate=["mu_max"]), frame, out, resume, forecast_every=5)

    whole, killed = tmp_path / "whole", tmp_path / "killed"
    run(whole)
    real = runner._append

    def dies_at_the_estimates_line(path, data):
        if path.name == "estimates.csv" and data["update_time"].iloc[0] == t_k:
            raise KeyboardInterrupt  # killed here
        real(path, data)

    monkeypatch.setattr(runner, "_append", dies_at_the_estimates_line)
    with pytest.raises(KeyboardInterrupt):
        run(killed)
    monkeypatch.undo()
    assert t_k in set(pd.read_csv(killed / "forecasts.csv")["update_time"])  # written before the kill
    assert any(a["update_time"] == t_k for a in json.loads((killed / "alarms.json").read_text()))
    assert t_k not in set(pd.read_csv(killed / "estimates.csv")["update_time"])
    run(killed, resume=True)
    a, b = pd.read_csv(whole / "estimates.csv"), pd.read_csv(killed / "estimates.csv")
    pd.testing.assert_frame_equal(a.drop(columns="update_s"), b.drop(columns="update_s"))
    pd.testing.assert_frame_equal(pd.read_csv(whole / "forecasts.csv"), pd.read_csv(killed / "forecasts.csv"))
    for name in ("alarms.json", "refused.json"):
        assert json.loads((killed / name).read_text()) == json.loads((whole / name).read_text()), name
    assert [x["update_time"] for x in json.loads((whole / "alarms.json").read_text())].count(t_k) >= 1


def test_a_live_twin_resumed_after_a_kill_continues_from_its_archive(stream, tmp_path):
    """A live source cannot send its past again: the record archives every chunk as it arrives and a resumed
    twin re-feeds the archive, so it goes on from where it was, not from its prior. The reconnected source
    first re-sends its current sample (dropped, not refused), then new ones; every file equals an
    uninterrupted run's."""
    from biotwin.twin.runner import record

    model = biotwin.load_model(MONOD)
    frame = pd.read_csv(stream)
    chunks = [frame.iloc[[k]] for k in range(len(frame))]

    def twin():
        return biotwin.Twin(model, "default", estimate=["mu_max"])

    def killed_after(n):
        yield from chunks[:n]
        raise KeyboardInterrupt  # the process is killed while waiting for the next sample

    whole, live = tmp_path / "whole", tmp_path / "live"
    record(twin(), iter(chunks), whole, forecast_every=5, archive=True)
    with pytest.raises(KeyboardInterrupt):
        record(twin(), killed_after(20), live, forecast_every=5, archive=True)
    record(twin(), iter(chunks[19:]), live, resume=True, forecast_every=5, archive=True)  # re-sends sample 20
    a, b = pd.read_csv(whole / "estimates.csv"), pd.read_csv(live / "estimates.csv")
    pd.testing.assert_frame_equal(a.drop(columns="update_s"), b.drop(columns="update_s"))
    pd.testing.assert_frame_equal(pd.read_csv(whole / "forecasts.csv"), pd.read_csv(live / "forecasts.csv"))
    assert json.loads((live / "refused.json").read_text()) == json.loads((whole / "refused.json").read_text())
    assert (live / "stream.jsonl").read_text() == (whole / "stream.jsonl").read_text()


def test_an_update_whose_rows_were_all_refused_is_recorded_once_across_a_resume(stream, tmp_path):
    """An update whose rows are all refused (a late row) keeps the time of the update before it: a resume
    that skipped updates by time lost its estimates line and its refused row (review of 2223c67). Updates
    are counted: killed right after the late row, the resumed record equals an uninterrupted one."""
    from biotwin.twin.runner import record

    model = biotwin.load_model(MONOD)
    frame = pd.read_csv(stream)
    chunks = [frame.iloc[[k]] for k in range(len(frame))]
    chunks.insert(7, frame.iloc[[3]])  # a late row: refused, the update keeps the time of the 7th

    def twin():
        return biotwin.Twin(model, "default", estimate=["mu_max"])

    def killed_after(n):
        yield from chunks[:n]
        raise KeyboardInterrupt

    whole, killed = tmp_path / "whole", tmp_path / "killed"
    record(twin(), iter(chunks), whole, forecast_every=5)
    with pytest.raises(KeyboardInterrupt):
        record(twin(), killed_after(7), killed, forecast_every=5)  # the late row not yet used
    record(twin(), iter(chunks), killed, resume=True, forecast_every=5)
    a, b = pd.read_csv(whole / "estimates.csv"), pd.read_csv(killed / "estimates.csv")
    assert len(a) == len(chunks) and list(a["update_time"]).count(a["update_time"].iloc[7]) == 2
    pd.testing.assert_frame_equal(a.drop(columns="update_s"), b.drop(columns="update_s"))
    refused = json.loads((killed / "refused.json").read_text())
    assert refused == json.loads((whole / "refused.json").read_text()) and [r["update"] for r in refused] == [7]
    pd.testing.assert_frame_equal(pd.read_csv(whole / "forecasts.csv"), pd.read_csv(killed / "forecasts.csv"))


def test_a_forecast_cut_short_by_a_kill_is_written_again_whole(stream, tmp_path):
    """The last update's forecast is written after its estimates line; a kill in the middle of it leaves
    whole lines of a partial forecast, which a resume drops and writes again."""
    model = biotwin.load_model(MONOD)
    frame = pd.read_csv(stream)

    def run(out, resume=False):
        return run_replay(biotwin.Twin(model, "default", estimate=["mu_max"]), frame, out, resume, forecast_every=5)

    whole, cut = tmp_path / "whole", tmp_path / "cut"
    run(whole)
    run(cut)
    lines = (cut / "forecasts.csv").read_text().splitlines(keepends=True)
    last = pd.read_csv(cut / "forecasts.csv")["update"].value_counts().sort_index().iloc[-1]  # rows of the last
    assert last >= 2
    (cut / "forecasts.csv").write_text("".join(lines[: -last + 1]) + lines[-last + 1][:10])  # killed mid-write
    run(cut, resume=True)
    pd.testing.assert_frame_equal(pd.read_csv(whole / "forecasts.csv"), pd.read_csv(cut / "forecasts.csv"))


def test_a_resume_on_another_stream_or_chunking_is_refused(stream, tmp_path):
    """Updates are counted across a resume, so the resumed stream must be cut as before: another chunk size
    (or an edited stream) is refused by name instead of skipping the wrong rows (review of 5b99c24)."""
    model = biotwin.load_model(MONOD)
    frame = pd.read_csv(stream)
    out = tmp_path / "rec"
    run_replay(biotwin.Twin(model, "default", estimate=["mu_max"]), frame.iloc[:10], out, chunk=1)
    with pytest.raises(biotwin.BiotwinError, match=r"not the stream \(or the chunking\) this record was made from"):
        run_replay(biotwin.Twin(model, "default", estimate=["mu_max"]), frame, out, resume=True, chunk=5)


def test_a_twin_run_and_its_alarms_are_recorded_in_the_registry(stream, tmp_path):
    """--registry: the run is a twin_run event holding the stream's hash and every alarm it raised (here one
    value 20 sd off at the last sample), and the audit chain stays intact."""
    from biotwin.governance import Registry

    frame = pd.read_csv(stream).iloc[:12].copy()
    last = frame["X"].last_valid_index()
    frame.loc[last, "X"] += 20 * frame.loc[last, "X_sigma"]
    bumped = tmp_path / "bumped.csv"
    frame.to_csv(bumped, index=False)
    reg = tmp_path / "registry.sqlite"
    args = ["twin", "replay", str(MONOD), "--stream", str(bumped), "--estimate", "mu_max", "--out", str(tmp_path / "r")]
    assert cli.main([*args, "--registry", str(reg), "--user", "operator"]) == 0
    alarms = json.loads((tmp_path / "r" / "alarms.json").read_text())
    (event,) = Registry(reg).events(kind="twin_run")
    assert alarms and event["payload"]["alarms"] == json.loads(json.dumps(alarms))
    assert event["user"] == "operator" and event["payload"]["n_updates"] == 12
    assert event["payload"]["stream_sha256"] == hashlib.sha256(bumped.read_bytes()).hexdigest()
    assert Registry(reg).verify() == []
