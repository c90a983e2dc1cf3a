"""Run a twin over a stream and keep its record on disk: estimates, forecasts, alarms and a summary.

``DIR/estimates.csv``  one row per update: ``update_time``, every state ``<s>`` and ``<s>_sd``, every
                       estimated parameter ``<p>`` and ``<p>_sd``, ``nis``, ``n_measured``, ``update_s``;
``DIR/forecasts.csv``  ``update_time, update, time, variable, value, lo95, hi95, unit`` of each forecast
                       (``update``: the update's number, counting from 0: the row of estimates.csv);
``DIR/alarms.json``    ``[{update_time, kind, variables, statistic, threshold, message, update}]``;
``DIR/refused.json``   rows refused, each with its reason, ``update_time`` and ``update``;
``DIR/summary.json``   ``n_updates``, ``median_update_s``, ``max_update_s``, ``first_alarm_time``, the
                       parameters at the last update, ``refused_rows``, ``residual_model``, the ``autocorrelation_given``
                       (``all`` for every variable) and each measured variable's
                       ``innovation_autocorrelation_lag1`` (null before 10 consecutive pairs);
``DIR/stream.jsonl``   (a live source: ``archive=True``, ``biotwin twin serve``) every chunk of rows as it
                       arrived, what ``--resume`` re-feeds.

Each update writes its forecast, alarms and refused rows first and its ``estimates.csv`` line last, each
flushed to disk: the estimates line marks the update as recorded, and updates are counted, not timed (an
update whose rows were all refused keeps the time of the one before). ``resume=True`` drops whatever a killed
process wrote after its last recorded update (half a line, a forecast or an alarm of an update whose
estimates line is missing), re-runs the filter silently over the rows already recorded (the filter is
deterministic) and appends after them: a killed twin loses nothing and writes nothing twice.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import pandas as pd

from biotwin.core.errors import BiotwinError
from biotwin.twin.streams import replay
from biotwin.twin.twin import Twin

#: time points of each forecast written to forecasts.csv (to the end of the recipe)
FORECAST_POINTS = 40

FILES = ("estimates.csv", "forecasts.csv", "alarms.json", "refused.json", "summary.json", "stream.jsonl")


def _append(path: Path, frame: pd.DataFrame) -> None:
    header = not path.exists() or path.stat().st_size == 0
    _append_text(path, frame.to_csv(index=False, header=header))


def _append_text(path: Path, text: str) -> None:
    """Append ``text`` to ``path`` and flush it to disk before returning."""
    with open(path, "a", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())


def _drop_partial_line(path: Path) -> None:
    """A process killed while appending may leave half a line: cut the file back to its last whole line."""
    if not path.exists():
        return
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        path.write_bytes(data[: data.rfind(b"\n") + 1])


def _recorded(out: Path, twin: Twin):
    """What a record holds of its updates, for a resume: ``(update times, alarms, refused, updates with a
    forecast)``.

    An update is recorded when its estimates line is (the line is written last). Whatever a killed process
    wrote for a later update -- its forecast rows, alarms, refused rows, half a line -- is dropped, and a
    forecast cut short is dropped whole; they are written again when the update is."""
    _drop_partial_line(out / "estimates.csv")
    _drop_partial_line(out / "forecasts.csv")
    times = recorded_times(out)
    try:
        return (times, *_recorded_updates(out, twin, len(times)))
    except KeyError as exc:  # no "update" numbers: a record of an older biotwin
        raise BiotwinError(
            f"--resume: {out} was written by an older biotwin (its forecasts, alarms or refused rows carry no "
            f"update number: {exc}); start a new record with another --out"
        ) from None


def _recorded_updates(out: Path, twin: Twin, done: int):
    forecasts_of = set()
    if (out / "forecasts.csv").exists() and (out / "forecasts.csv").stat().st_size:
        forecasts = pd.read_csv(out / "forecasts.csv")
        expected = len(twin.state_names) * np.where(forecasts["update_time"] >= twin.t_end, 1, FORECAST_POINTS)
        size = forecasts.groupby("update")["update"].transform("size")
        kept = forecasts[(forecasts["update"] < done) & (size == expected)]
        if len(kept) < len(forecasts):
            _write_csv(out / "forecasts.csv", kept)
        forecasts_of = set(kept["update"])
    alarms = json.loads((out / "alarms.json").read_text()) if (out / "alarms.json").exists() else []
    refused = json.loads((out / "refused.json").read_text()) if (out / "refused.json").exists() else []
    return [a for a in alarms if a["update"] < done], [r for r in refused if r["update"] < done], forecasts_of


def recorded_times(out) -> list:
    """The update times a twin record holds (its estimates.csv lines, in order); empty if none (no file, or
    one killed while writing its header)."""
    path = Path(out) / "estimates.csv"
    if not path.is_file() or not path.stat().st_size:
        return []
    return pd.read_csv(path)["update_time"].tolist()


def _archived(path: Path, chunks, resume: bool, say, done: int = 0):
    """``chunks`` kept in ``path`` as they arrive; on resume, the archive's chunks first."""
    last_time = -math.inf
    if resume and path.exists():
        _drop_partial_line(path)
        with open(path, encoding="utf-8") as f:
            stored = [json.loads(line) for line in f if line.strip()]
        if len(stored) < done:
            raise BiotwinError(
                f"--resume: {path} holds {len(stored)} chunk(s) for {done} recorded updates: the archive is not "
                "this record's; start a new record"
            )
        say(f"re-feeding {len(stored)} archived chunk(s) of the live stream")
        for rows in stored:
            frame = pd.DataFrame(rows)
            if "time" in frame and frame["time"].notna().any():
                last_time = max(last_time, float(frame["time"].max()))
            yield frame
    for frame in chunks:
        if "time" in frame:
            frame = frame[~(pd.to_numeric(frame["time"], errors="coerce") <= last_time)]  # re-sent after reconnect
            if frame.empty:
                continue
        _append_text(path, json.dumps(frame.to_dict(orient="records"), default=float) + "\n")
        yield frame


def _write_csv(path: Path, frame: pd.DataFrame) -> None:
    """Replace ``path`` by ``frame`` atomically (a killed process leaves the old file or the new one)."""
    tmp = path.with_name(path.name + ".tmp")
    frame.to_csv(tmp, index=False)
    os.replace(tmp, path)


def _write_json(path: Path, data) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, default=float))
    os.replace(tmp, path)


def run_replay(twin: Twin, stream, out_dir, resume=False, forecast_every=24.0, chunk=1, progress=None) -> dict:
    """Feed ``stream`` (a CSV path or DataFrame) to ``twin`` ``chunk`` rows at a time; record everything.

    See :func:`record` (this is it over :func:`biotwin.twin.streams.replay`).
    """
    frame = stream if isinstance(stream, pd.DataFrame) else pd.read_csv(Path(stream))
    return record(twin, replay(frame, chunk), out_dir, resume=resume, forecast_every=forecast_every, progress=progress)


def record(twin: Twin, chunks, out_dir, resume=False, forecast_every=24.0, progress=None, archive=False) -> dict:
    """Feed ``chunks`` (DataFrames of rows, as they arrive: a replay, an OPC UA subscription) to ``twin``.

    Parameters
    ----------
    twin : Twin
    chunks : iterable of pandas.DataFrame
        Rows in the calibration data format.
    out_dir : path
        The record's folder: refused when it holds a record, unless ``resume``.
    resume : bool
        Continue a record: the rows up to its last update are re-filtered without writing.
    forecast_every : float
        A forecast is written at the first update at or after each multiple of this [model time unit],
        and at the last update.
    archive : bool
        Keep every chunk as it arrives in ``DIR/stream.jsonl`` (a JSON list of rows per line, written
        before the twin uses it): a live source (OPC UA) cannot send its past again, so ``resume`` re-feeds
        the archive first and then takes from ``chunks`` only rows after the archive's last time (a
        reconnected subscription first re-sends the current sample). Without it a resumed live twin would
        start again from its prior.
    """
    out = Path(out_dir)
    say = progress or (lambda text: None)
    existing = [f for f in FILES if (out / f).exists()]
    if existing and not resume:
        raise BiotwinError(
            f"{out} already holds a twin record ({', '.join(existing)}): give --resume to continue it, or another --out"
        )
    if resume and not (out / "estimates.csv").exists():
        raise BiotwinError(f"--resume: {out} holds no estimates.csv to continue")
    out.mkdir(parents=True, exist_ok=True)
    done, alarms, refused, times_done = 0, [], [], []  # done: updates recorded (one estimates line each)
    forecasts_of = set()  # updates whose whole forecast is in forecasts.csv
    if resume:
        times_done, alarms, refused, forecasts_of = _recorded(out, twin)
        done = len(times_done)
        where = f" (the last at {times_done[-1]:g} {twin.time_unit})" if times_done else ""
        say(f"resuming after {done} recorded update(s){where}")
        if archive and done and not (out / "stream.jsonl").exists():
            raise BiotwinError(
                f"--resume: {out} holds no stream.jsonl (the archive of a live stream, written by biotwin twin "
                "serve since it keeps one): the twin's past rows cannot be fed again, so it would restart from its "
                "prior; start a new record with another --out"
            )
    next_forecast = 0.0
    last = None
    if archive:
        chunks = _archived(out / "stream.jsonl", chunks, resume, say, done)

    def write_forecast(k, update):
        forecast = update.forecast(points=FORECAST_POINTS)
        forecast.insert(0, "update", k)
        forecast.insert(0, "update_time", update.time)
        _append(out / "forecasts.csv", forecast)
        forecasts_of.add(k)

    k = -1
    for k, rows in enumerate(chunks):
        update = twin.update(rows)
        last = update
        if update.time >= next_forecast:
            next_forecast = (math.floor(update.time / forecast_every) + 1) * forecast_every
            due = True
        else:
            due = update.time >= twin.t_end
        if k < done:
            if not math.isclose(update.time, times_done[k], rel_tol=1e-12, abs_tol=1e-12):
                raise BiotwinError(
                    f"--resume: update {k} of the stream is at {update.time:g} {twin.time_unit} but the record's "
                    f"update {k} is at {times_done[k]:g}: not the stream (or the chunking) this record was "
                    "made from; resume with the same stream and chunk size, or start a new record"
                )
            continue  # recorded before the resume (an update whose rows were all refused too: counted, not timed)
        row = {"update_time": update.time}
        for s, (v, sd) in update.states.items():
            row[s], row[f"{s}_sd"] = v, sd
        for p, (v, sd) in update.parameters.items():
            row[p], row[f"{p}_sd"] = v, sd
        row.update({"nis": update.nis, "n_measured": update.n_measured, "update_s": update.update_s})
        if due:
            write_forecast(k, update)
        if update.alarms:
            alarms.extend({**a, "update": k} for a in update.alarms)
            _write_json(out / "alarms.json", alarms)
        if update.refused:
            refused.extend({**r, "update_time": update.time, "update": k} for r in update.refused)
            _write_json(out / "refused.json", refused)
        _append(out / "estimates.csv", pd.DataFrame([row]))  # last: the update is recorded
        say(
            f"t = {update.time:g} {twin.time_unit}: NIS {update.nis:.2f} ({update.n_measured} values), "
            f"{update.update_s * 1e3:.0f} ms" + (f", ALARM {update.alarms[0]['kind']}" if update.alarms else "")
        )
    if last is not None and k not in forecasts_of:  # the record ends with its last update's forecast
        write_forecast(k, last)
    _write_json(out / "alarms.json", alarms)
    _write_json(out / "refused.json", refused)
    estimates = pd.read_csv(out / "estimates.csv") if (out / "estimates.csv").exists() else pd.DataFrame()
    summary = {
        "n_updates": len(estimates),
        "median_update_s": float(np.median(estimates["update_s"])) if len(estimates) else None,
        "max_update_s": float(np.max(estimates["update_s"])) if len(estimates) else None,
        "first_alarm_time": min((a["update_time"] for a in alarms), default=None),
        "parameters": (
            {
                p: {"value": float(estimates[p].iloc[-1]), "sd": float(estimates[f"{p}_sd"].iloc[-1])}
                for p in twin.estimate
            }
            if len(estimates)
            else {}
        ),
        "refused_rows": len(refused),
        "residual_model": twin.residual_model,
        "autocorrelation_given": {str(k) if k is not None else "all": v for k, v in twin.autocorrelation.items()},
        "innovation_autocorrelation_lag1": {
            name: (rho if np.isfinite(rho) else None) for name, (rho, _) in twin.innovation_autocorrelation.items()
        },
    }
    _write_json(out / "summary.json", summary)
    return summary
