"""The ``biotwin`` command line.

``biotwin doctor``                       check the solver path end to end
``biotwin setup-solver [--force]``       (re)build PyNumero's ASL library
``biotwin models``                       list the shipped models
``biotwin simulate MODEL --scenario FILE --out CSV [--summary JSON]``
``biotwin optimize MODEL --scenario FILE --out CSV [--summary JSON]``
``biotwin calibrate MODEL --data CSV [--data CSV ...] --estimate p1,p2 --out result.json``
``biotwin notebooks run [--dir notebooks] [--out out]``
``biotwin validate MODEL --protocol P.yaml --out report.html [--json record.json] [--registry R]``
``biotwin audit verify|log [--model M] [--registry R]``   the hash-chained audit trail
``biotwin approve MODEL --tier N --reason TEXT [--user U] [--registry R]``
``biotwin status MODEL [--registry R]``               approved, or requalification required
``biotwin drift MODEL --record R.json --batch B.csv [--registry R]``   a new batch against the validation
``biotwin retire MODEL --reason TEXT [--registry R]``  withdraw a model from decision use
``biotwin sweep [MODEL] --spec S.yaml --out DIR [--scheduler tcp://..] [--workers N] [--resume]``

No command loses or damages a file: outputs are checked before the solve (not an input, not an
existing file unless ``--overwrite``, in an existing writable folder) and written atomically.
"""

from __future__ import annotations

import argparse
import datetime
import inspect
import json
import os
import platform
import sys
import tempfile
from pathlib import Path

import biotwin
from biotwin.core import checks
from biotwin.core.errors import BiotwinError


def _stderr(text: str):
    print(text, file=sys.stderr, flush=True)


def cmd_doctor(args) -> int:
    from importlib.metadata import PackageNotFoundError, version

    from biotwin.core._config import pyomo_config_dir
    from biotwin.engine.solver import pynumero_library_status, tiny_nlp_check

    ok = True
    print(f"Python          {platform.python_version()} ({sys.executable})")
    print(f"biotwin         {biotwin.__version__}")
    import pyomo.version

    print(f"Pyomo           {pyomo.version.version}")
    try:
        import cyipopt

        cy_version = None
        for dist in ("cyipopt-wheels", "cyipopt"):
            try:
                cy_version = f"{version(dist)} ({dist})"
                break
            except PackageNotFoundError:
                continue
        print(f"cyipopt         {cy_version or cyipopt.__version__}")
        print(f"Ipopt           {'.'.join(str(v) for v in cyipopt.IPOPT_VERSION)}")
    except ImportError as exc:
        print(f"cyipopt         MISSING ({exc}); pip install cyipopt-wheels")
        ok = False
    print(f"PYOMO_CONFIG_DIR {pyomo_config_dir()}")
    loads, where = pynumero_library_status()
    print(f"PyNumero ASL    {'loads: ' + str(where) if loads else 'NOT USABLE: ' + where}")
    ok = ok and loads
    if ok:
        try:
            stats = tiny_nlp_check()
            print(f"tiny NLP        solved (Rosenbrock, {stats.iterations} iterations, {stats.wall_time_s:.3f} s)")
        except BiotwinError as exc:
            print(f"tiny NLP        FAILED: {exc}")
            ok = False
    print("doctor: all checks passed" if ok else "doctor: problems found (see above)")
    return 0 if ok else 1


def cmd_setup_solver(args) -> int:
    from biotwin.engine.solver import pynumero_library_status
    from biotwin.tools.solver_build import build_pynumero

    build_pynumero(force=args.force, log=print)
    loads, where = pynumero_library_status()
    if not loads:
        _stderr(f"error: the library was built but does not load: {where}")
        return 1
    print(f"PyNumero ASL library loads: {where}")
    return 0


def cmd_models(args) -> int:
    for name in biotwin.available_models():
        model = biotwin.load_model(name)
        print(f"{name:20s} scenarios: {', '.join(model.scenario_names()) or '-'}")
    return 0


def _parse_params(items) -> dict:
    params = {}
    for item in items or []:
        if "=" not in item:
            raise BiotwinError(f"--param {item!r}: expected NAME=VALUE")
        name, value = item.split("=", 1)
        try:
            params[name.strip()] = float(value)
        except ValueError:
            raise BiotwinError(f"--param {item!r}: {value!r} is not a number") from None
    return params


def _option_value(text: str):
    """An Ipopt option value: an int (``30``), else a float (``30.0``, ``1e-6``), else the text (``yes``)."""
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def _parse_solver_options(items) -> dict:
    """The ``--solver-option KEY=VALUE`` items as an Ipopt options dict.

    Parameters
    ----------
    items : list of str or None

    Returns
    -------
    dict
        Option name -> int, float or str (see :func:`_option_value`).
    """
    options = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise BiotwinError(f"--solver-option {item!r}: expected KEY=VALUE, e.g. max_iter=500 or tol=1e-8")
        options[key.strip()] = _option_value(value.strip())
    return options


# -- output files: checked before the solve, written atomically -----------------------------------
def _reason(exc: OSError) -> str:
    return exc.strerror or str(exc)


def _same(a: Path, b: Path) -> bool:
    """True if ``a`` and ``b`` name the same file (resolved paths; hard links and case-folding too)."""
    if a.resolve() == b.resolve():
        return True
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def _scenario_file(model, scenario) -> Path:
    """The recipe file ``model.load_scenario(scenario)`` reads (it may not exist)."""
    if scenario is None:
        return model.folder / "scenarios" / "default.yaml"
    path = Path(scenario)
    return path if path.is_file() else model.folder / "scenarios" / f"{path.name}.yaml"


def _input_files(model, scenario=None, data=()) -> list[Path]:
    """The existing files a command reads: model files, the recipe, data files and their ``<stem>.yaml``."""
    paths = [model.folder / "model.py", model.folder / "parameters.yaml", _scenario_file(model, scenario)]
    for item in data:
        paths += [Path(item), Path(item).with_suffix(".yaml")]
    return [p for p in paths if p.is_file()]


def _check_folder(path: Path, flag: str) -> None:
    """Raise unless ``path``'s folder exists and a file can really be created in it."""
    folder = path.parent
    if not folder.exists():
        raise BiotwinError(f"{flag} {path}: folder {folder} does not exist; create it first or choose another {flag}")
    if not folder.is_dir():
        raise BiotwinError(f"{flag} {path}: {folder} is a file, not a folder; choose another {flag}")
    try:  # os.access says yes to root even on a read-only mount: really try
        fd, probe = tempfile.mkstemp(prefix=".biotwin-probe-", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise BiotwinError(
            f"{flag} {path}: cannot write in folder {folder} ({_reason(exc)}); choose another {flag}"
        ) from None


def check_outputs(outputs: dict, inputs: list, overwrite: bool) -> None:
    """Refuse, before any solve, outputs that would damage a file or could not be written.

    Parameters
    ----------
    outputs : dict
        Option name (``"--out"``) -> path, or None for an output not asked for.
    inputs : list of pathlib.Path
        Files the command reads; no output may be one of them.
    overwrite : bool
        Whether an existing output file may be replaced.

    Raises
    ------
    BiotwinError
        Naming the option and the path.
    """
    seen = []
    for flag, path in outputs.items():
        if path is None:
            continue
        for inp in inputs:
            if _same(path, inp):
                raise BiotwinError(
                    f"{flag} {path} is an input of this command ({inp}); not overwriting it, choose another {flag}"
                )
        for other_flag, other in seen:
            if _same(path, other):
                raise BiotwinError(f"{flag} {path} is also {other_flag}; give each output its own file")
        seen.append((flag, path))
        if path.is_dir():
            raise BiotwinError(f"{flag} {path} is a folder; give a file name")
        if path.exists() and not overwrite:
            raise BiotwinError(f"{flag} {path} exists; not overwriting it (use --overwrite or choose another {flag})")
        _check_folder(path, flag)


def _file_mode() -> int:
    """The mode a new file gets under the current umask (mkstemp's files are private, 0600)."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def _remove(paths) -> None:
    for path in paths:
        try:
            os.unlink(path)
        except OSError:
            pass


def _write_temporaries(writers: list) -> list[Path]:
    """Write each output to a temporary file in its own folder; on failure remove them all."""
    temps = []
    path = None
    try:
        for path, write in writers:
            fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f".tmp{path.suffix}", dir=path.parent)
            os.close(fd)
            temps.append(Path(tmp))
            os.chmod(tmp, _file_mode())
            write(Path(tmp))
    except BaseException as exc:
        _remove(temps)
        if isinstance(exc, OSError):
            raise BiotwinError(f"cannot write {path}: {_reason(exc)}") from None
        raise
    return temps


def _move_into_place(writers: list, temps: list, overwrite: bool) -> None:
    """Rename the temporaries onto the outputs; on failure remove what was placed and every temporary."""
    placed = []
    try:
        for path, _ in writers:
            if path.exists() and not overwrite:
                raise BiotwinError(
                    f"{path} appeared while solving; not overwriting it (use --overwrite or choose another name)"
                )
        for (path, _), tmp in zip(writers, temps):
            os.replace(tmp, path)
            placed.append(path)
    except OSError as exc:
        _remove(placed)  # never leave half a pair (an --out without its --summary)
        raise BiotwinError(f"cannot write {path}: {_reason(exc)}") from None
    finally:
        _remove(t for t in temps if t.exists())


def write_outputs(writers: list, overwrite: bool) -> None:
    """Write several outputs all or nothing.

    Parameters
    ----------
    writers : list of (pathlib.Path, callable)
        Output path and a function writing the content to the path it is given (a temporary file in the
        same folder, renamed onto the output once every output is written).
    overwrite : bool
        Whether an output that appeared since :func:`check_outputs` may be replaced.

    Raises
    ------
    BiotwinError
        ``cannot write <path>: <reason>`` for any OSError; no output nor temporary file is left.
    """
    temps = _write_temporaries(writers)
    _move_into_place(writers, temps, overwrite)


def _optional_path(text) -> Path | None:
    return Path(text) if text else None


def _json_writer(data):
    return lambda path: path.write_text(json.dumps(data, indent=2))


# -- simulate, optimize, calibrate ----------------------------------------------------------------
def _simulation_table(model, result):
    """The model's own output table (model.py: ``output_table``), else the wide table with units."""
    table_hook = model.hook("output_table")
    if table_hook is not None:
        table = table_hook(result)
        return len(table), lambda path: table.to_csv(path, index=False)
    return len(result.wide), result.to_csv


def _simulation_summary(model, result) -> dict:
    summary_hook = model.hook("summary")
    return {**summary_hook(result), "stats": result.stats} if summary_hook else result.summary()


def cmd_simulate(args) -> int:
    with checks.allow_unusual(args.allow_unusual):
        return _simulate(args)


def _simulate(args) -> int:
    params, options = _parse_params(args.param), _parse_solver_options(args.solver_option)
    model = biotwin.load_model(args.model)
    out, summary_path = Path(args.out), _optional_path(args.summary)
    check_outputs({"--out": out, "--summary": summary_path}, _input_files(model, args.scenario), args.overwrite)
    result = model.simulate(
        scenario=args.scenario,
        params=params,
        t_end=args.t_end,
        nfe=args.nfe,
        ncp=args.ncp,
        options=options or None,
        progress=lambda s: _stderr(f"[biotwin] {s}"),
    )
    rows, write_table = _simulation_table(model, result)
    writers = [(out, write_table)]
    if summary_path:
        writers.append((summary_path, _json_writer(_simulation_summary(model, result))))
    write_outputs(writers, args.overwrite)
    _stderr(f"[biotwin] wrote {rows} rows to {out}")
    if summary_path:
        _stderr(f"[biotwin] wrote summary to {summary_path}")
    return 0


def _optimize_options(model, hook, options: dict) -> dict:
    """``{"options": options}`` if the model's optimize() accepts it; nothing for no options."""
    if not options:
        return {}
    try:
        parameters = inspect.signature(hook).parameters.values()
    except (TypeError, ValueError):
        parameters = ()
    if any(p.name == "options" or p.kind is p.VAR_KEYWORD for p in parameters):
        return {"options": options}
    raise BiotwinError(
        f"model '{model.name}': its optimize() in model.py takes no solver options; run without --solver-option"
    )


def cmd_optimize(args) -> int:
    with checks.allow_unusual(args.allow_unusual):
        return _optimize(args)


def _optimize(args) -> int:
    options = _parse_solver_options(args.solver_option)
    model = biotwin.load_model(args.model)
    hook = model.hook("optimize")
    if hook is None:
        raise BiotwinError(
            f"model '{model.name}' defines no optimize() in model.py; in Python use "
            "biotwin.optimize.feed (e.g. optimize_feed for fed-batch recipes)"
        )
    if not args.scenario:
        raise BiotwinError("give --scenario: a scenario with an 'optimize' block")
    extra = _optimize_options(model, hook, options)
    out, summary_path = Path(args.out), _optional_path(args.summary)
    check_outputs({"--out": out, "--summary": summary_path}, _input_files(model, args.scenario), args.overwrite)
    result = hook(model, args.scenario, nfe=args.nfe, progress=lambda s: _stderr(f"[biotwin] {s}"), **extra)
    table = result.table
    writers = [(out, lambda path: table.to_csv(path, index=False))]
    if summary_path:
        writers.append((summary_path, _json_writer(result.summary())))
    write_outputs(writers, args.overwrite)
    _stderr(f"[biotwin] wrote {len(table)} rows to {out}")
    if summary_path:
        _stderr(f"[biotwin] wrote summary to {summary_path}")
    return 0


def _parse_sigma(items) -> dict:
    sigma = {}
    for item in items or []:
        name, _, value = item.partition("=")
        try:
            sigma[name.strip()] = float(value)
        except ValueError:
            raise BiotwinError(f"--sigma {item!r}: expected NAME=VALUE with a number") from None
        if not sigma[name.strip()] > 0:
            raise BiotwinError(f"--sigma {item!r}: sigma must be positive")
    return sigma


def _names(text) -> list[str]:
    return [n.strip() for n in (text or "").split(",") if n.strip()]


def cmd_calibrate(args) -> int:
    with checks.allow_unusual(args.allow_unusual):
        return _calibrate(args)


def _calibrate(args) -> int:
    from biotwin.core.data import read_experiment

    out, options = Path(args.out), _parse_solver_options(args.solver_option)
    model = biotwin.load_model(args.model)
    check_outputs({"--out": out}, _input_files(model, args.scenario, args.data), args.overwrite)
    experiments = [read_experiment(path, scenario=args.scenario) for path in args.data]
    result = biotwin.calibrate(
        model,
        experiments,
        _names(args.estimate),
        local=_names(args.local),
        sigma=_parse_sigma(args.sigma),
        nfe=args.nfe,
        ncp=args.ncp,
        multistart=args.multistart,
        seed=args.seed,
        profile=_names(args.profile),
        options=options or None,
        progress=lambda s: _stderr(f"[biotwin] {s}"),
        residual_model=args.residual_model,
    )
    return _save_calibration(result, out, args.overwrite)


def _save_calibration(result, out: Path, overwrite: bool) -> int:
    """Save the fit to ``out``; if that fails, keep it elsewhere (see :func:`_rescue_calibration`)."""
    try:
        try:
            path = result.save(out, overwrite=overwrite)
        except BiotwinError:
            # the file appeared while we were fitting: keep the result under another name rather than lose it
            stamp = datetime.datetime.now().strftime("%Y%m%dT%H%M%S")
            path = result.save(out.with_name(f"{out.stem}.{stamp}{out.suffix}"))
            _stderr(f"[biotwin] {out} appeared during the fit; saved to {path} instead")
    except OSError as exc:
        return _rescue_calibration(result, out, exc)
    print(result.summary())
    _stderr(f"[biotwin] wrote {path}")
    return 0


def _rescue_calibration(result, out: Path, exc: OSError) -> int:
    """Print the estimates and save the fit as ``<stem>.<UTC time>.json`` in the working folder, else in the
    temporary folder, so a failed save never loses a finished fit. Returns the exit status 1."""
    print(result.summary(), flush=True)
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%SZ")
    name = f"{out.stem}.{stamp}.json"
    for folder in (Path("."), Path(tempfile.gettempdir())):
        try:
            path = result.save(folder / name).absolute()
        except (OSError, BiotwinError):
            continue
        _stderr(
            f"error: cannot write {out}: {_reason(exc)}; the result is saved to {path} instead "
            "(estimates printed above)"
        )
        return 1
    _stderr(
        f"error: cannot write {out}: {_reason(exc)}, nor {name} in the working folder or in "
        f"{tempfile.gettempdir()}; the estimates are printed above"
    )
    return 1


# -- notebooks ------------------------------------------------------------------------------------
def _notebooks_to_run(args) -> tuple[Path, list[Path]]:
    """The notebooks folder and the notebooks to run; a missing folder or notebook is a named error."""
    from biotwin.tools.notebooks import find_notebooks

    folder = Path(args.dir or "notebooks")
    if (args.dir is not None or not args.only) and not folder.is_dir():
        raise BiotwinError(f"--dir {folder}: no notebooks folder at {folder.absolute()}")
    if not args.only:
        return folder, find_notebooks(folder)
    for item in args.only:
        if not Path(item).is_file():
            raise BiotwinError(f"--only {item}: no notebook at {Path(item).absolute()}")
    return folder, [Path(p) for p in args.only]


def _check_notebook_outputs(notebooks: list[Path], folder: Path, out: Path) -> None:
    """Refuse an --out folder where an executed notebook would replace its source (as run_notebook lays out)."""
    root = folder.resolve()
    for nb in notebooks:
        path = nb.resolve()
        rel = path.relative_to(root) if path.is_relative_to(root) else Path(path.name)
        if _same(out / rel, path):
            raise BiotwinError(f"--out {out}: the executed notebook would replace {nb}; choose another --out")


def cmd_twin_replay(args) -> int:
    from biotwin.twin.runner import run_replay

    stream = Path(args.stream)
    if not stream.is_file():
        raise BiotwinError(f"--stream {stream}: no such file")
    twin = _twin_from_args(args)
    summary = run_replay(twin, stream, args.out, **_record_options(args))
    _record_twin_run(args, twin, summary, {"stream": str(stream.resolve()), "stream_sha256": _file_sha(stream)})
    return _print_record(summary)


def cmd_twin_serve(args) -> int:
    from biotwin.twin.opcua import opcua_chunks, read_node_map
    from biotwin.twin.runner import record, recorded_times

    twin = _twin_from_args(args)
    node_map = read_node_map(Path(args.nodes), twin)
    chunks = opcua_chunks(
        args.opcua,
        node_map,
        publish_s=args.publish_s,
        idle_timeout_s=args.idle_timeout_s,
        stop_time=twin.t_end,
        resume=args.resume and bool(recorded_times(args.out)),  # values found on connecting: used before
    )
    summary = record(twin, chunks, args.out, archive=True, **_record_options(args))
    _record_twin_run(args, twin, summary, {"opcua": args.opcua, "nodes_sha256": _file_sha(Path(args.nodes))})
    return _print_record(summary)


def _file_sha(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def _record_twin_run(args, twin, summary: dict, source: dict) -> None:
    """With --registry (or $BIOTWIN_REGISTRY): the run and every alarm it raised as a ``twin_run`` event."""
    if not (args.registry or os.environ.get("BIOTWIN_REGISTRY")):
        return
    out = Path(args.out)
    alarms = json.loads((out / "alarms.json").read_text()) if (out / "alarms.json").is_file() else []
    payload = {
        **source,
        "recipe": args.recipe,
        "estimate": list(twin.estimate),
        "record": str(out.resolve()),
        "record_sha256": {
            name: _file_sha(out / name) for name in ("estimates.csv", "summary.json") if (out / name).is_file()
        },
        "n_updates": summary.get("n_updates"),
        "first_alarm_time": summary.get("first_alarm_time"),
        "parameters": summary.get("parameters", {}),
        "alarms": alarms,
    }
    event = _registry(args).record("twin_run", twin.model, payload, args.user)
    _stderr(f"[biotwin] recorded twin run with {len(alarms)} alarm(s) in the registry (record {event['seq']})")


def _registry(args):
    from biotwin.governance import Registry

    return Registry(args.registry)


def cmd_validate(args) -> int:
    from biotwin.governance import validate, write_report

    model = biotwin.load_model(args.model)
    out = Path(args.out)
    json_out = Path(args.json) if args.json else out.with_suffix(".json")
    check_outputs({"--out": out, "--json": json_out}, [Path(args.protocol)], args.overwrite)
    registry = _registry(args) if args.registry or os.environ.get("BIOTWIN_REGISTRY") else None
    record = validate(
        model, args.protocol, registry=registry, user=args.user, progress=lambda s: _stderr(f"[biotwin] {s}")
    )
    write_report(record, out, json_out)
    for c in record.criteria:
        print(f"{'pass' if c['passed'] else 'FAIL'}  {c['label']}: {c['value']:.4g}")
    print(
        f"{record.model}: {'passed' if record.passed else 'FAILED'}; evidence supports tier {record.supported_tier} (claimed {record.claimed_tier})"
    )
    if record.tier_note:
        print(f"note: {record.tier_note}")
    print(f"report {out}, record {json_out}")
    return 0 if record.passed else 1


def cmd_audit(args) -> int:
    reg = _registry(args)
    if args.audit_command == "verify":
        problems = reg.verify()
        n = len(reg.events())
        for line in problems:
            print(line)
        print(f"{reg.url}: {n} records, " + ("chain intact" if not problems else f"{len(problems)} problem(s)"))
        return 0 if not problems else 1
    for e in reg.events(model=args.model):
        what = ", ".join(f"{k}={v}" for k, v in e["payload"].items() if k not in ("criteria",))
        print(f"{e['seq']:>5}  {e['time']}  {e['user']:<12} {e['kind']:<16} {e['model'] or '-':<24} {what}")
    return 0


def cmd_approve(args) -> int:
    model = biotwin.load_model(args.model)
    event = _registry(args).approve(model, args.tier, args.reason, user=args.user)
    print(
        f"approved {model.name} for tier {args.tier} (record {event['seq']}, content hash {event['model_hash'][:12]})"
    )
    return 0


def cmd_status(args) -> int:
    model = biotwin.load_model(args.model)
    status = _registry(args).status(model)
    print(f"{model.name}: {status['state']}" + (f" - {status['reason']}" if status["reason"] else ""))
    return 0 if status["state"] == "approved" else 1


def cmd_drift(args) -> int:
    from biotwin.governance.drift import drift

    model = biotwin.load_model(args.model)
    registry = _registry(args) if args.registry or os.environ.get("BIOTWIN_REGISTRY") else None
    result = drift(
        model, args.record, args.batch, registry=registry, user=args.user, progress=lambda s: _stderr(f"[biotwin] {s}")
    )
    for v, d in result["variables"].items():
        print(f"{v:<16} {d['n']:>4} points  RMS {d['rmse_sd']:.3g} sd  bias {d['bias_sd']:+.3g} sd")
    print(f"{model.name}: {'DRIFT' if result['flagged'] else 'no drift'} - {result['reason']}")
    if result["flagged"] and registry is not None:
        print(f"{model.name}: requalification required ({registry.status(model)['state']})")
    return 1 if result["flagged"] else 0


def cmd_retire(args) -> int:
    model = biotwin.load_model(args.model)
    event = _registry(args).retire(model, args.reason, user=args.user)
    print(f"retired {model.name} (record {event['seq']}, content hash {event['model_hash'][:12]})")
    return 0


def cmd_sweep(args) -> int:
    from biotwin.sweep import probability_map, read_sweep, run_sweep

    spec = read_sweep(args.spec, args.model)
    scheduler = "serial" if args.workers == 0 else args.scheduler
    result = run_sweep(
        spec,
        args.out,
        scheduler=scheduler,
        workers=max(args.workers, 1),
        resume=args.resume,
        progress=lambda s: _stderr(f"[biotwin] {s}"),
    )
    stats = dict(result.stats)
    if spec.limits and stats["complete"]:
        cells = probability_map(result)
        cells.to_csv(Path(args.out) / "probability.csv", index=False)
        stats["probability_csv"] = str(Path(args.out) / "probability.csv")
        stats["cells_meeting_limits_p>=0.9"] = int((cells["probability"] >= 0.9).sum())
        stats["cells"] = len(cells)
    print(json.dumps(stats, indent=2, default=str))
    return 0 if stats["complete"] else 1


def cmd_notebooks_run(args) -> int:
    from biotwin.tools.notebooks import run_notebook

    folder, notebooks = _notebooks_to_run(args)
    _check_notebook_outputs(notebooks, folder, Path(args.out))
    parameters = _notebook_parameters(args.parameter)
    failed = 0
    for i, nb in enumerate(notebooks, 1):
        _stderr(f"[biotwin] notebook {i}/{len(notebooks)}: {nb}")
        try:
            data = run_notebook(nb, out_dir=args.out, root=folder, parameters=parameters)
            _stderr(f"[biotwin]   done in {data['_wall_time_s']:.1f} s -> {data['_executed_notebook']}")
            if args.table:
                print(format_table(nb, data))
        except Exception as exc:  # noqa: BLE001 - report every notebook, then fail
            failed += 1
            _stderr(f"[biotwin]   FAILED: {type(exc).__name__}: {exc}")
    return 1 if failed else 0


def _notebook_parameters(items) -> dict:
    """``NAME=VALUE`` pairs of ``-p``, each value read as YAML (true, 3, 0.5, [1, 2], text)."""
    from biotwin.core import yaml_io

    out = {}
    for item in items or []:
        name, sep, value = item.partition("=")
        if not sep or not name.strip().isidentifier():
            raise BiotwinError(f"-p {item!r}: expected NAME=VALUE, e.g. -p show_solutions=true")
        if name.strip() == "results_path":
            raise BiotwinError("-p results_path: the runner sets it (beside each executed notebook in --out)")
        out[name.strip()] = yaml_io.load(value) if value.strip() else None
    return out


def _flatten(data: dict, prefix: str = "") -> list[tuple[str, object]]:
    rows = []
    for key, value in data.items():
        if str(key).startswith("_"):
            continue
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            rows.extend(_flatten(value, name + "."))
        else:
            rows.append((name, value))
    return rows


def format_table(notebook, data: dict) -> str:
    """The key numbers a notebook wrote, as an aligned two-column table."""
    rows = _flatten(data)
    width = max((len(k) for k, _ in rows), default=10)
    lines = [f"{notebook}: key numbers", "-" * (width + 20)]
    for key, value in rows:
        text = f"{value:.6g}" if isinstance(value, float) else str(value)
        lines.append(f"{key:<{width}}  {text}")
    return "\n".join(lines)


def _add_overwrite(p, text: str) -> None:
    p.add_argument("--overwrite", action="store_true", help=text)


def _add_run_options(p) -> None:
    """The options shared by the solving commands: --solver-option and --allow-unusual."""
    p.add_argument(
        "--solver-option",
        action="append",
        metavar="KEY=VALUE",
        help="Ipopt option (repeatable): VALUE is read as an integer (max_iter=500), else a real "
        "(tol=1e-8), else text (mu_strategy=adaptive); a real option needs a decimal point or "
        "an exponent, e.g. max_wall_time=30.0",
    )
    p.add_argument(
        "--allow-unusual",
        action="store_true",
        help="run recipe values outside the plausible ranges and parameter values outside their bounds "
        "(a shelf above 150 degC, a chamber above 2000 mTorr, a culture over 60 days)",
    )


def _add_twin_options(q) -> None:
    q.add_argument("model", help="shipped model name or path to a model folder")
    q.add_argument("--recipe", help="the batch's recipe (scenario name or YAML path; default: the model's)")
    q.add_argument("--estimate", default="", help="comma-separated parameters estimated online")
    q.add_argument("--prior", help="a calibration result (JSON) as the parameters' prior")
    q.add_argument("--prior-rsd", type=float, default=0.3, help="relative sd of parameters without a prior")
    q.add_argument(
        "--method",
        choices=["ekf", "mhe"],
        default="ekf",
        help="estimator: extended Kalman filter (default) or moving-horizon estimation",
    )
    q.add_argument("--window", type=int, default=8, help="rows in the moving horizon (--method mhe)")
    q.add_argument(
        "--residual-model",
        choices=["independent", "ar1"],
        default="independent",
        help="measurement errors independent (default) or AR(1) per variable: each value's variance widened "
        "by (1+rho)/(1-rho) from its innovations' lag-1 autocorrelation (a densely sampled probe)",
    )
    q.add_argument(
        "--autocorrelation",
        type=float,
        help="the errors' lag-1 autocorrelation when known, in [0, 1) (--residual-model ar1; default: the "
        "--prior calibration's, else measured online)",
    )
    q.add_argument("--forecast-every", type=float, default=24.0, help="forecast interval [model time unit]")
    q.add_argument("--out", required=True, help="folder of the record (estimates.csv, forecasts.csv, ...)")
    q.add_argument("--resume", action="store_true", help="continue the record in --out after its last update")
    q.add_argument(
        "--registry",
        help="record the run and its alarms in this registry (SQLAlchemy URL, .sqlite file or folder; "
        "default $BIOTWIN_REGISTRY, else not recorded)",
    )
    q.add_argument("--user", help="who runs the twin (default: the operating-system user)")


def _record_options(args) -> dict:
    return {
        "resume": args.resume,
        "forecast_every": args.forecast_every,
        "progress": lambda s: _stderr(f"[biotwin] {s}"),
    }


def _print_record(summary: dict) -> int:
    print(json.dumps(summary, indent=2))
    return 0


def _twin_from_args(args):
    model = biotwin.load_model(args.model)
    return biotwin.Twin(
        model,
        args.recipe,
        estimate=_names(args.estimate),
        prior=args.prior,
        prior_rsd=args.prior_rsd,
        method=args.method,
        window=args.window,
        residual_model=args.residual_model,
        autocorrelation=args.autocorrelation,
    )


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="biotwin", description="Bioprocess digital twins: simulate, calibrate, explore."
    )
    parser.add_argument("--version", action="version", version=f"biotwin {biotwin.__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("doctor", help="check Python, Pyomo, cyipopt, Ipopt and the PyNumero library; solve a tiny NLP")
    p.set_defaults(func=cmd_doctor)

    p = sub.add_parser("setup-solver", help="(re)build PyNumero's ASL library into this environment")
    p.add_argument("--force", action="store_true", help="rebuild even if a library is present")
    p.set_defaults(func=cmd_setup_solver)

    p = sub.add_parser("models", help="list the shipped models and their scenarios")
    p.set_defaults(func=cmd_models)

    p = sub.add_parser("simulate", help="simulate a scenario and write the trajectories as CSV")
    p.add_argument("model", help="shipped model name or path of a model folder")
    p.add_argument("--scenario", help="scenario YAML file or the name of one of the model's scenarios")
    p.add_argument("--out", required=True, help="CSV file for the trajectories")
    p.add_argument("--summary", help="JSON file for the key numbers")
    p.add_argument("--t-end", type=float, help="end time [the model's time unit]")
    p.add_argument("--nfe", type=int, default=50, help="about this many finite elements (default 50)")
    p.add_argument("--ncp", type=int, default=3, help="Radau collocation points per element (default 3)")
    p.add_argument(
        "--param",
        action="append",
        metavar="NAME=VALUE",
        help="parameter override in its parameters.yaml unit (repeatable)",
    )
    _add_overwrite(p, "replace existing output files")
    _add_run_options(p)
    p.set_defaults(func=cmd_simulate)

    p = sub.add_parser("optimize", help="optimize a recipe (the scenario's 'optimize' block) and write it as CSV")
    p.add_argument("model", help="shipped model name or path of a model folder")
    p.add_argument("--scenario", required=True, help="scenario YAML file or name, with an 'optimize' block")
    p.add_argument("--out", required=True, help="CSV file for the optimal trajectory")
    p.add_argument("--summary", help="JSON file for the key numbers and the optimized recipe")
    p.add_argument("--nfe", type=int, default=40, help="finite elements of the optimization (default 40)")
    _add_overwrite(p, "replace existing output files")
    _add_run_options(p)
    p.set_defaults(func=cmd_optimize)

    p = sub.add_parser("calibrate", help="estimate parameters from experiment CSV files")
    p.add_argument("model", help="shipped model name or path of a model folder")
    p.add_argument(
        "--data",
        action="append",
        required=True,
        metavar="CSV",
        help="experiment file (repeatable); its recipe is <stem>.yaml next to it, else --scenario",
    )
    p.add_argument("--scenario", help="recipe for experiments without a <stem>.yaml (default: the model's default)")
    p.add_argument("--estimate", required=True, help="comma-separated parameters shared by all experiments")
    p.add_argument("--local", help="comma-separated parameters estimated per experiment (e.g. X0)")
    p.add_argument(
        "--sigma",
        action="append",
        metavar="NAME=VALUE",
        help="default measurement standard deviation of a variable (repeatable)",
    )
    p.add_argument("--nfe", type=int, default=50, help="about this many finite elements per experiment")
    p.add_argument("--ncp", type=int, default=3, help="Radau collocation points per element")
    p.add_argument("--multistart", type=int, default=0, help="Latin-hypercube starts solved in parallel first")
    p.add_argument("--seed", type=int, default=0, help="seed of the multi-start design")
    p.add_argument("--profile", help="comma-separated parameters to profile (likelihood intervals)")
    p.add_argument(
        "--residual-model",
        choices=["independent", "ar1"],
        default="independent",
        help="measurement errors independent (default) or AR(1) within each series: intervals widened by "
        "(1+rho)/(1-rho) for densely sampled records the model does not follow exactly",
    )
    p.add_argument("--out", required=True, help="JSON file for the result")
    _add_overwrite(p, "replace an existing result file")
    _add_run_options(p)
    p.set_defaults(func=cmd_calibrate)

    p = sub.add_parser("twin", help="the live twin: estimates, forecasts and alarms from process data")
    tsub = p.add_subparsers(dest="twin_command", required=True)
    q = tsub.add_parser("replay", help="replay a CSV of process data through the twin, recording every update")
    _add_twin_options(q)
    q.add_argument("--stream", required=True, help="CSV: time, measured states or outputs, <name>_sigma")
    q.set_defaults(func=cmd_twin_replay)

    q = tsub.add_parser("serve", help="follow a live batch over OPC UA, recording every update")
    _add_twin_options(q)
    q.add_argument("--opcua", required=True, help="server URL, e.g. opc.tcp://127.0.0.1:4840/freeopcua/server/")
    q.add_argument("--nodes", required=True, help="YAML node map: time and variables with node ids and units")
    q.add_argument(
        "--publish-s",
        "--poll-s",
        dest="publish_s",
        type=float,
        default=0.1,
        help="publishing interval of the subscription [s] (every change is queued on the server and delivered)",
    )
    q.add_argument("--idle-timeout-s", type=float, help="stop when no new sample arrives for this long")
    q.set_defaults(func=cmd_twin_serve)

    def add_registry(q):
        q.add_argument(
            "--registry",
            help="registry: a SQLAlchemy URL, a .sqlite file or a folder (default $BIOTWIN_REGISTRY, else "
            "./biotwin-registry.sqlite)",
        )
        q.add_argument("--user", help="who records the event (default: the operating-system user)")

    p = sub.add_parser("validate", help="run a validation protocol; write the HTML report and the JSON record")
    p.add_argument("model", help="shipped model name or path of a model folder")
    p.add_argument("--protocol", required=True, help="validation protocol YAML")
    p.add_argument("--out", required=True, help="HTML report (self-contained)")
    p.add_argument("--json", help="JSON record (default: the report's name with .json)")
    _add_overwrite(p, "replace existing report files")
    add_registry(p)
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("audit", help="the registry's hash-chained audit trail")
    asub = p.add_subparsers(dest="audit_command", required=True)
    q = asub.add_parser("verify", help="recompute the hash chain; name every edited, deleted or re-ordered record")
    add_registry(q)
    q.set_defaults(func=cmd_audit)
    q = asub.add_parser("log", help="list the recorded events")
    q.add_argument("--model", help="only this model's events")
    add_registry(q)
    q.set_defaults(func=cmd_audit)

    p = sub.add_parser("approve", help="record a reviewer's approval of the model's current version for a tier")
    p.add_argument("model", help="shipped model name or path of a model folder")
    p.add_argument("--tier", type=int, required=True, help="decision tier 1-6")
    p.add_argument("--reason", required=True, help="what was reviewed and why it suffices")
    add_registry(p)
    p.set_defaults(func=cmd_approve)

    p = sub.add_parser("status", help="approved, not approved, retired or requalification required")
    p.add_argument("model", help="shipped model name or path of a model folder")
    add_registry(p)
    p.set_defaults(func=cmd_status)

    p = sub.add_parser(
        "drift", help="test a new batch against the validated model (exit 1 on drift: requalification required)"
    )
    p.add_argument("model", help="shipped model name or path of a model folder")
    p.add_argument("--record", required=True, help="the validation's JSON record (written by biotwin validate)")
    p.add_argument("--batch", required=True, help="the new batch's data CSV (its recipe YAML beside it)")
    add_registry(p)
    p.set_defaults(func=cmd_drift)

    p = sub.add_parser("retire", help="withdraw the model's current version from decision use")
    p.add_argument("model", help="shipped model name or path of a model folder")
    p.add_argument("--reason", required=True, help="why it may no longer be used")
    add_registry(p)
    p.set_defaults(func=cmd_retire)

    p = sub.add_parser(
        "sweep", help="a grid over recipe knobs and samples of parameters, on Dask; results as Parquet chunks"
    )
    p.add_argument("model", nargs="?", help="shipped model name or folder (default: the spec's model)")
    p.add_argument("--spec", required=True, help="sweep YAML (grid, samples, classes, outputs, limits)")
    p.add_argument("--out", required=True, help="results folder (plan.json, points.parquet, chunks/)")
    p.add_argument(
        "--scheduler", help="address of a running Dask scheduler, tcp://host:port (default: a local cluster)"
    )
    p.add_argument("--workers", type=int, default=2, help="local cluster worker processes (0: run in this process)")
    p.add_argument("--resume", action="store_true", help="continue the sweep in --out, keeping its chunks")
    p.set_defaults(func=cmd_sweep)

    p = sub.add_parser("notebooks", help="notebook tasks")
    nsub = p.add_subparsers(dest="notebooks_command", required=True)
    q = nsub.add_parser("run", help="execute notebooks with papermill (CI parameters) into out/")
    q.add_argument("--dir", help="notebooks folder (default notebooks)")
    q.add_argument("--out", default="out", help="output folder (default out)")
    q.add_argument("--only", nargs="*", help="run only these notebooks")
    q.add_argument("--table", action="store_true", help="print each notebook's key numbers as a table")
    q.add_argument(
        "-p",
        "--parameter",
        action="append",
        metavar="NAME=VALUE",
        help="set a notebook parameter (YAML value), e.g. -p show_solutions=true: the training notebooks "
        "with their computed answers, one solutions notebook per module in --out",
    )
    q.set_defaults(func=cmd_notebooks_run)
    return parser


def _show_warning(message, category, filename, lineno, file=None, line=None):
    """Warnings on the command line as one readable line each, like the progress lines (no source line)."""
    _stderr(f"[biotwin] warning: {' '.join(str(message).split())}")


def main(argv=None) -> int:
    import warnings

    parser = make_parser()
    args = parser.parse_args(argv)
    previous = warnings.showwarning
    warnings.showwarning = _show_warning
    try:
        return args.func(args)
    except BiotwinError as exc:
        _stderr(f"error: {exc}")
        return 2
    except OSError as exc:  # a file the command reads or writes: name it rather than show a traceback
        where = f"{exc.filename}: " if exc.filename else ""
        _stderr(f"error: {where}{_reason(exc)}")
        return 2
    finally:
        warnings.showwarning = previous


if __name__ == "__main__":
    sys.exit(main())
