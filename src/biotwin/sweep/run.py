"""Run a sweep serially or on a Dask cluster, streaming results to Parquet chunks that a resume re-uses.

The point table is cut into chunks of ``spec.chunk`` points; each chunk is one task. A worker keeps
its loaded models (and so their discretized models and kept NLPs) between tasks, so every point after
a worker's first is a warm re-solve. Only the driver writes files: ``OUT/chunks/chunk-000012.parquet``
is written (to a temporary name, then renamed) when its task's result arrives, so a chunk file is
either complete or absent. A resumed sweep skips the chunks on disk and runs the others; a worker that
dies has its tasks re-run by Dask (``retries``), and a chunk's points are written once, whichever
attempt delivered them. A point whose solve fails is recorded with its error (``error`` column).

Layout of ``OUT``::

    plan.json            the spec, the plan's hash (a resume must match it) and the point count
    points.parquet       the point table: point, cell, sample, grid knobs, sampled parameters
    chunks/chunk-*.parquet   results: point, error, solve_s, worker, worker_peak_rss_mb,
                             <output>@<class> for every class
"""

from __future__ import annotations

import json
import os
import resource
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from biotwin.sweep.spec import SweepError, SweepSpec

_MODELS: dict = {}  # per worker process: folder -> (model, explorer spec); kept between tasks


def _worker_model(folder: str):
    from biotwin.core.model import load_model
    from biotwin.engine.knobs import explorer_spec

    if folder not in _MODELS:
        model = load_model(folder)
        _MODELS[folder] = (model, explorer_spec(model))
    return _MODELS[folder]


def _evaluate_class(
    model, knobs, base_raw, nfe, mesh_tol, name, scale, outputs, values, params, recipe_values, levels
) -> dict:
    """One point in one class (its parameter factors applied to the point's values, else to the recipe's)."""
    from biotwin.engine.knobs import ExplorerSpec, evaluate

    summary_hook = model.hook("summary")

    def key_numbers(result):  # inside evaluate's lengthening: a recipe too short for them is lengthened
        out = dict(summary_hook(result)) if summary_hook else {}
        if knobs.readouts:
            out.update({k: v for k, v in knobs.readouts(result).items() if k not in out})
        return out

    # only the recipe knobs the grid names edit the recipe: the others (and the explorer's parameter sliders,
    # whose starting values are parameters.yaml's) would silently replace the base recipe's own programs and
    # parameters with the explorer's defaults
    used = [k for k in knobs.knobs if k.apply is not None and k.name in values]
    spec = ExplorerSpec(
        knobs=used, panels=[], lengthen=knobs.lengthen, nfe=nfe, readouts=key_numbers, mesh_tol=mesh_tol
    )
    p = dict(params)
    for q, factor in scale.items():
        p[q] = p.get(q, recipe_values[q]) * factor
    key = tuple(sorted(values.items()))
    # a sample outside a parameter's bounds or an implausible recipe is refused like any run: recorded as
    # the point's error (run the sweep inside biotwin.core.checks.allow_unusual() to lift the checks)
    _, numbers, result = evaluate(model, spec, values, base_raw, params=p, lengthen_first=levels.get(key, 0))
    # the next sample of this cell starts with the recipe length this one needed (a too-short recipe costs a
    # wasted solve and a new NLP each time)
    levels[key] = result.stats.get("lengthened", 0)
    return {f"{o}@{name}": _output(model, o, numbers, result) for o in outputs}


STATS = {"final": lambda v: v[-1], "max": np.max, "min": np.min, "initial": lambda v: v[0]}


def _output(model, name, numbers, result) -> float:
    """An output: a key of the model's summary or readouts, or ``<variable>:final|max|min|initial``."""
    if name in numbers:
        return float(numbers[name])
    var, _, stat = name.partition(":")
    wide = result.wide
    if stat in STATS and var in wide:
        return float(STATS[stat](wide[var].to_numpy(dtype=float)))
    raise SweepError(
        f"output '{name}' is not a key of model {model.name}'s summary or readouts ({', '.join(numbers) or 'none'}), "
        "nor <variable>:final|max|min|initial of its variables "
        f"({', '.join(c for c in wide.columns if c != 'time')})"
    )


def _nearest_neighbour_order(rows: list) -> list:
    """A visiting order of the points: greedy nearest neighbour in the varied columns, each scaled by its sd."""
    if len(rows) < 3:
        return list(range(len(rows)))
    names = [k for k in rows[0] if k not in ("point", "cell", "sample")]
    x = np.array([[float(r[k]) for k in names] for r in rows]) if names else np.zeros((len(rows), 0))
    sd = x.std(axis=0) if x.size else np.zeros(0)
    x = x[:, sd > 0] / sd[sd > 0] if x.size else x
    if x.shape[1] == 0:
        return list(range(len(rows)))
    order, left = [0], np.ones(len(rows), dtype=bool)
    left[0] = False
    for _ in range(len(rows) - 1):
        d = np.sum((x - x[order[-1]]) ** 2, axis=1)
        d[~left] = np.inf
        nxt = int(np.argmin(d))
        order.append(nxt)
        left[nxt] = False
    return order


def run_chunk(
    folder: str, base_raw: dict, nfe: int, mesh_tol, classes: dict, outputs: list, grid_names: list, rows: list
):
    """Evaluate a chunk of points in this process (a Dask task); one result row per point, failures kept."""
    model, knobs = _worker_model(folder)
    knob_names = {k.name for k in knobs.knobs if k.apply is not None}
    worker = f"{os.uname().nodename}:{os.getpid()}"
    levels = {}
    # a class scales the recipe's own value of a parameter it does not sample (parameters.yaml's would be
    # another product's: LyoPRONTO case 2 sets its own KC)
    recipe_values = model.parameter_values(model.load_scenario(base_raw).parameters)
    entries = [{"point": int(row["point"]), "error": None, "worker": worker, "solve_s": 0.0} for row in rows]
    # class by class over the chunk, and the chunk's points in nearest-neighbour order: consecutive solves
    # differ by the smallest change of the sampled values, so each starts warm from a near solution (an edge
    # vial's solution is a poor start for a centre vial's; a random neighbour doubles the Ipopt iterations)
    order = _nearest_neighbour_order(rows)
    for name, scale in classes.items():
        for row, entry in ((rows[i], entries[i]) for i in order):
            if entry["error"] is not None:
                continue
            values = {k: row[k] for k in grid_names if k in knob_names}
            params = {k: v for k, v in row.items() if k not in ("point", "cell", "sample") and k not in values}
            t0 = time.perf_counter()
            try:
                entry.update(
                    _evaluate_class(
                        model,
                        knobs,
                        base_raw,
                        nfe,
                        mesh_tol,
                        name,
                        scale,
                        outputs,
                        values,
                        params,
                        recipe_values,
                        levels,
                    )
                )
            except SweepError:
                raise  # a spec that does not match the model: stop the sweep, not record it per point
            except Exception as exc:  # noqa: BLE001 - any failed solve is recorded with its message
                entry["error"] = f"{name}: {type(exc).__name__}: {' '.join(str(exc).split())[:500]}"
            entry["solve_s"] += time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # [MiB] (Linux reports KiB)
    for entry in entries:
        entry["worker_peak_rss_mb"] = peak
    return entries


@dataclass
class SweepResult:
    """A finished (or resumed) sweep: the points with their results, and how it ran."""

    out: Path
    points: pd.DataFrame = field(repr=False)
    results: pd.DataFrame = field(repr=False)
    stats: dict = field(default_factory=dict)

    @property
    def frame(self) -> pd.DataFrame:
        """Points joined with their results, one row per point, in point order."""
        return self.points.merge(self.results, on="point", how="left").sort_values("point").reset_index(drop=True)

    @property
    def failed(self) -> pd.DataFrame:
        return self.frame[self.frame["error"].notna()]


def _chunk_path(out: Path, k: int) -> Path:
    return out / "chunks" / f"chunk-{k:06d}.parquet"


def _write_parquet(frame: pd.DataFrame, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    frame.to_parquet(tmp, index=False)
    tmp.replace(path)


def _prepare_out(spec: SweepSpec, out: Path, resume: bool) -> None:
    plan = {
        "model": spec.model.name,
        "model_folder": str(spec.model.folder),
        "plan_sha256": spec.plan_sha256,
        "n_points": len(spec.points),
        "chunk": spec.chunk,
        "classes": spec.classes,
        "outputs": spec.outputs,
        "limits": spec.limits,
        "grid": spec.grid,
        "sampled": spec.sampled,
        "method": spec.method,
        "n_base": spec.n_base,
        "nfe": spec.nfe,
        "mesh_tol": spec.mesh_tol,
        "spec": spec.source.get("raw"),
    }
    plan_file = out / "plan.json"
    if out.exists() and any(out.iterdir()):
        if not resume:
            raise SweepError(f"--out {out} holds a sweep already; --resume continues it, or choose another --out")
        if not plan_file.is_file():
            raise SweepError(f"--out {out}: not a sweep folder (no plan.json); choose another --out")
        old = json.loads(plan_file.read_text())
        if old.get("plan_sha256") != spec.plan_sha256:
            raise SweepError(
                f"--out {out} holds a different sweep (another spec, recipe, model or point table): a resume must "
                "run the same plan; choose another --out"
            )
        return
    if not out.parent.is_dir():
        raise SweepError(f"--out {out}: folder {out.parent} does not exist")
    (out / "chunks").mkdir(parents=True, exist_ok=True)
    _write_parquet(spec.points, out / "points.parquet")
    tmp = out / ".plan.json.tmp"
    tmp.write_text(json.dumps(plan, indent=2, default=str))
    tmp.replace(plan_file)


def run_sweep(
    spec: SweepSpec,
    out,
    scheduler=None,
    workers: int = 2,
    resume: bool = False,
    progress=None,
    retries: int = 2,
    stop_after_chunks: int | None = None,
) -> SweepResult:
    """Run a sweep and return its results.

    Parameters
    ----------
    spec : SweepSpec
        From :func:`biotwin.sweep.read_sweep`.
    out : path
        Folder of the results (created; must be empty unless ``resume``).
    scheduler : None, "serial", str or distributed.Client
        ``None``: a ``LocalCluster`` of ``workers`` processes started and stopped here; ``"serial"``: in
        this process; ``"tcp://host:port"``: an existing Dask scheduler; or a ``Client``.
    workers : int
        Worker processes of the local cluster (one thread each).
    resume : bool
        Continue the sweep in ``out``: chunks already written are kept, the rest are run.
    progress : callable, optional
        Called with a line of text after each chunk.
    retries : int
        Times Dask re-runs a task whose worker died.
    stop_after_chunks : int, optional
        Stop after this many chunks were written (to test resuming; the sweep is left incomplete).
    """
    out = Path(out)
    say = progress or (lambda text: None)
    _prepare_out(spec, out, resume)
    points = spec.points
    n_chunks = max(1, -(-len(points) // spec.chunk))
    todo = [k for k in range(n_chunks) if not _chunk_path(out, k).is_file()]
    folder = str(spec.model.folder)
    records = points.to_dict(orient="records")
    args = [
        (
            folder,
            spec.base_raw,
            spec.nfe,
            spec.mesh_tol,
            spec.classes,
            spec.outputs,
            spec.knob_names,
            records[k * spec.chunk : (k + 1) * spec.chunk],
        )
        for k in todo
    ]
    done_points = len(points) - sum(len(a[-1]) for a in args)
    done_before = done_points  # chunks a resume found on disk
    t_start = time.perf_counter()
    written = 0
    if todo:
        say(f"{len(points)} points in {n_chunks} chunks; {len(todo)} to run" + (" (resumed)" if resume else ""))
        # the spec is checked on its first point here, before any task is sent: a wrong output name is
        # one clear error, not one error per point
        run_chunk(*args[0][:-1], args[0][-1][:1])

    def store(k, rows):
        nonlocal written, done_points
        frame = pd.DataFrame(rows)
        _write_parquet(frame, _chunk_path(out, k))
        written += 1
        done_points += len(rows)
        rate = (done_points - done_before) / max(time.perf_counter() - t_start, 1e-9)
        failed = int(frame["error"].notna().sum())
        say(
            f"chunk {k + 1}/{n_chunks}: {done_points}/{len(points)} points, {rate:.1f} points/s"
            + (f", {failed} failed in this chunk" if failed else "")
        )
        return stop_after_chunks is not None and written >= stop_after_chunks

    if todo and scheduler == "serial":
        for k, a in zip(todo, args):
            if store(k, run_chunk(*a)):
                break
    elif todo:
        from distributed import Client, LocalCluster, as_completed

        own_cluster = None
        if isinstance(scheduler, Client):
            client = scheduler
        elif scheduler is None:
            own_cluster = LocalCluster(
                n_workers=int(workers), threads_per_worker=1, processes=True, dashboard_address=None
            )
            client = Client(own_cluster)
        else:
            try:
                client = Client(str(scheduler), timeout=20)
            except OSError as exc:
                raise SweepError(f"--scheduler {scheduler}: no Dask scheduler answers there ({exc})") from None
        try:
            futures = {}
            for k, a in zip(todo, args):
                f = client.submit(
                    run_chunk, *a, key=f"biotwin-sweep-{spec.plan_sha256[:12]}-{k}", retries=retries, pure=False
                )
                futures[f] = k
            for f in as_completed(list(futures)):
                if store(futures[f], f.result()):
                    break
        finally:
            if own_cluster is not None or not isinstance(scheduler, Client):
                client.close()
            if own_cluster is not None:
                own_cluster.close()
    return load_sweep(out, elapsed_s=time.perf_counter() - t_start)


def load_sweep(out, elapsed_s: float | None = None) -> SweepResult:
    """Read a sweep folder: its points and every chunk written so far."""
    out = Path(out)
    if not (out / "plan.json").is_file():
        raise SweepError(f"{out}: not a sweep folder (no plan.json)")
    plan = json.loads((out / "plan.json").read_text())
    points = pd.read_parquet(out / "points.parquet")
    files = sorted((out / "chunks").glob("chunk-*.parquet"))
    results = (
        pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)
        if files
        else pd.DataFrame({"point": pd.Series(dtype=int), "error": pd.Series(dtype=object)})
    )
    if results["point"].duplicated().any():
        raise SweepError(
            f"{out}: a point is recorded twice ({results['point'][results['point'].duplicated()].tolist()[:5]})"
        )
    solve = results["solve_s"].to_numpy(dtype=float) if "solve_s" in results else np.array([])
    stats = {
        "n_points": plan["n_points"],
        "n_done": len(results),
        "n_failed": int(results["error"].notna().sum()) if len(results) else 0,
        "complete": len(results) == plan["n_points"],
        "median_point_s": float(np.median(solve)) if solve.size else None,
        "elapsed_s": elapsed_s,
        "workers": sorted(results["worker"].unique().tolist()) if "worker" in results else [],
        "worker_peak_rss_mb": (
            results.groupby("worker")["worker_peak_rss_mb"].max().round(1).to_dict()
            if "worker_peak_rss_mb" in results
            else {}
        ),
    }
    return SweepResult(out=out, points=points, results=results, stats=stats)
