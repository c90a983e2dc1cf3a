"""The ``biotwin`` command line.

``biotwin doctor``                       check the solver path end to end
``biotwin setup-solver [--force]``       (re)build PyNumero's ASL library
``biotwin models``                       list the shipped models
``biotwin simulate MODEL --scenario FILE --out CSV [--summary JSON]``
``biotwin calibrate MODEL --data CSV [--data CSV ...] --estimate p1,p2 --out result.json``
``biotwin notebooks run [--dir notebooks] [--out out]``
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
from pathlib import Path

import biotwin
from biotwin.errors import BiotwinError


def _stderr(text: str):
    print(text, file=sys.stderr, flush=True)


def cmd_doctor(args) -> int:
    from importlib.metadata import PackageNotFoundError, version

    from biotwin._config import pyomo_config_dir
    from biotwin.solver import pynumero_library_status, tiny_nlp_check

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
    from biotwin.solver import pynumero_library_status
    from biotwin.solver_build import build_pynumero

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


def cmd_simulate(args) -> int:
    model = biotwin.load_model(args.model)
    result = model.simulate(scenario=args.scenario, params=_parse_params(args.param), t_end=args.t_end,
                            nfe=args.nfe, ncp=args.ncp, progress=lambda s: _stderr(f"[biotwin] {s}"))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    # a model may define its own output table and key numbers (model.py: output_table, summary)
    table_hook = getattr(model.module, "output_table", None)
    if table_hook is not None:
        table = table_hook(result)
        table.to_csv(out, index=False)
        rows = len(table)
    else:
        result.to_csv(out)
        rows = len(result.wide)
    _stderr(f"[biotwin] wrote {rows} rows to {out}")
    if args.summary:
        summary_hook = getattr(model.module, "summary", None)
        summary = {**summary_hook(result), "stats": result.stats} if summary_hook else result.summary()
        Path(args.summary).parent.mkdir(parents=True, exist_ok=True)
        Path(args.summary).write_text(json.dumps(summary, indent=2))
        _stderr(f"[biotwin] wrote summary to {args.summary}")
    return 0


def cmd_optimize(args) -> int:
    model = biotwin.load_model(args.model)
    hook = getattr(model.module, "optimize", None)
    if hook is None:
        raise BiotwinError(f"model '{model.name}' defines no optimize() in model.py; in Python use "
                           "biotwin.optimization (e.g. optimize_feed for fed-batch recipes)")
    if not args.scenario:
        raise BiotwinError("give --scenario: a scenario with an 'optimize' block")
    result = hook(model, args.scenario, nfe=args.nfe, progress=lambda s: _stderr(f"[biotwin] {s}"))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    result.table.to_csv(out, index=False)
    _stderr(f"[biotwin] wrote {len(result.table)} rows to {out}")
    summary = result.summary()
    if args.summary:
        Path(args.summary).parent.mkdir(parents=True, exist_ok=True)
        Path(args.summary).write_text(json.dumps(summary, indent=2))
        _stderr(f"[biotwin] wrote summary to {args.summary}")
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
    import datetime

    from biotwin.data import read_experiment

    out = Path(args.out)
    if out.exists() and not args.overwrite:
        raise BiotwinError(f"{out} exists; not overwriting a calibration result (use --overwrite or another --out)")
    model = biotwin.load_model(args.model)
    experiments = [read_experiment(path, scenario=args.scenario) for path in args.data]
    result = biotwin.calibrate(model, experiments, _names(args.estimate), local=_names(args.local),
                               sigma=_parse_sigma(args.sigma), nfe=args.nfe, ncp=args.ncp,
                               multistart=args.multistart, seed=args.seed, profile=_names(args.profile),
                               progress=lambda s: _stderr(f"[biotwin] {s}"))
    try:
        path = result.save(out, overwrite=args.overwrite)
    except BiotwinError:
        # the file appeared while we were fitting: keep the result under another name rather than lose it
        stamp = datetime.datetime.now().strftime("%Y%m%dT%H%M%S")
        path = result.save(out.with_name(f"{out.stem}.{stamp}{out.suffix}"))
        _stderr(f"[biotwin] {out} appeared during the fit; saved to {path} instead")
    print(result.summary())
    _stderr(f"[biotwin] wrote {path}")
    return 0


def cmd_notebooks_run(args) -> int:
    from biotwin.notebooks import find_notebooks, run_notebook

    folder = Path(args.dir)
    notebooks = [Path(p) for p in args.only] if args.only else find_notebooks(folder)
    failed = 0
    for i, nb in enumerate(notebooks, 1):
        _stderr(f"[biotwin] notebook {i}/{len(notebooks)}: {nb}")
        try:
            data = run_notebook(nb, out_dir=args.out, root=folder)
            _stderr(f"[biotwin]   done in {data['_wall_time_s']:.1f} s -> {data['_executed_notebook']}")
            if args.table:
                print(format_table(nb, data))
        except Exception as exc:  # report every notebook, then fail
            failed += 1
            _stderr(f"[biotwin]   FAILED: {type(exc).__name__}: {exc}")
    return 1 if failed else 0


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


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="biotwin", description="Bioprocess digital twins: simulate, calibrate, explore.")
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
    p.add_argument("--param", action="append", metavar="NAME=VALUE",
                   help="parameter override in its parameters.yaml unit (repeatable)")
    p.set_defaults(func=cmd_simulate)

    p = sub.add_parser("optimize", help="optimize a recipe (the scenario's 'optimize' block) and write it as CSV")
    p.add_argument("model", help="shipped model name or path of a model folder")
    p.add_argument("--scenario", required=True, help="scenario YAML file or name, with an 'optimize' block")
    p.add_argument("--out", required=True, help="CSV file for the optimal trajectory")
    p.add_argument("--summary", help="JSON file for the key numbers and the optimized recipe")
    p.add_argument("--nfe", type=int, default=40, help="finite elements of the optimization (default 40)")
    p.set_defaults(func=cmd_optimize)

    p = sub.add_parser("calibrate", help="estimate parameters from experiment CSV files")
    p.add_argument("model", help="shipped model name or path of a model folder")
    p.add_argument("--data", action="append", required=True, metavar="CSV",
                   help="experiment file (repeatable); its recipe is <stem>.yaml next to it, else --scenario")
    p.add_argument("--scenario", help="recipe for experiments without a <stem>.yaml (default: the model's default)")
    p.add_argument("--estimate", required=True, help="comma-separated parameters shared by all experiments")
    p.add_argument("--local", help="comma-separated parameters estimated per experiment (e.g. X0)")
    p.add_argument("--sigma", action="append", metavar="NAME=VALUE",
                   help="default measurement standard deviation of a variable (repeatable)")
    p.add_argument("--nfe", type=int, default=50, help="about this many finite elements per experiment")
    p.add_argument("--ncp", type=int, default=3, help="Radau collocation points per element")
    p.add_argument("--multistart", type=int, default=0, help="Latin-hypercube starts solved in parallel first")
    p.add_argument("--seed", type=int, default=0, help="seed of the multi-start design")
    p.add_argument("--profile", help="comma-separated parameters to profile (likelihood intervals)")
    p.add_argument("--out", required=True, help="JSON file for the result")
    p.add_argument("--overwrite", action="store_true", help="replace an existing result file")
    p.set_defaults(func=cmd_calibrate)

    p = sub.add_parser("notebooks", help="notebook tasks")
    nsub = p.add_subparsers(dest="notebooks_command", required=True)
    q = nsub.add_parser("run", help="execute notebooks with papermill (CI parameters) into out/")
    q.add_argument("--dir", default="notebooks", help="notebooks folder (default notebooks)")
    q.add_argument("--out", default="out", help="output folder (default out)")
    q.add_argument("--only", nargs="*", help="run only these notebooks")
    q.add_argument("--table", action="store_true", help="print each notebook's key numbers as a table")
    q.set_defaults(func=cmd_notebooks_run)
    return parser


def main(argv=None) -> int:
    parser = make_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except BiotwinError as exc:
        _stderr(f"error: {exc}")
        return 2


if __name__ == "__main__":
    sys.exit(main())
