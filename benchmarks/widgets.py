"""Explorer responsiveness: median time from a slider change to the updated figure data, per model.

Each explorer is built once (cold), then one slider is moved back and forth ``--moves`` times; the
time from setting the slider value to the figure's new data (the explorer's ``last_update_s``,
measured around the re-solve and the ``batch_update``) is reported next to a plain
``model.simulate`` of the same recipe in the same run. The baseline, in the same process, is the
same slider moves with ``biotwin.engine.simulation.REUSE_NLP = False`` (the model written to an NL file for
every solve, as before PersistentNLP).

    python benchmarks/widgets.py [--moves 6]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

import biotwin
import biotwin.engine.simulation

CASES = [  # model, knob moved (a parameter: no grid change), two values
    ("mab_fedbatch", "beta_P", (25.0, 30.0)),
    ("lyophilization", "R0", (1.4, 1.6)),
    ("hek293_vlp", "k_expr", (100.0, 120.0)),
]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--moves", type=int, default=6)
    args = parser.parse_args(argv)
    print(
        f"{'model':16s} {'build [s]':>10s} {'median slider->figure [s]':>26s} {'min':>6s} {'plain simulate [s]':>19s}"
        f" {'baseline: NL rewritten [s]':>27s} {'ratio':>6s}  target < 0.2 s (fed-batch, lyophilization)"
    )
    for name, knob, (a, b) in CASES:
        t0 = time.perf_counter()
        ex = biotwin.explore(name)
        build = time.perf_counter() - t0
        times, baseline = [], []
        for reuse, out in ((True, times), (False, baseline)):
            biotwin.engine.simulation.REUSE_NLP = reuse
            for k in range(args.moves):
                ex.sliders[knob].value = b if k % 2 == 0 else a
                if ex.error:
                    raise SystemExit(f"{name}: {ex.error}")
                out.append(ex.last_update_s)
        biotwin.engine.simulation.REUSE_NLP = True
        values = ex.values()
        params = {kn.name: values[kn.name] for kn in ex.spec.knobs if kn.apply is None}
        t1 = time.perf_counter()
        ex.model.simulate(scenario=ex.base_raw, params=params, nfe=ex.spec.nfe)
        plain = time.perf_counter() - t1
        median, base = statistics.median(times), statistics.median(baseline)
        print(
            f"{name:16s} {build:10.2f} {median:26.3f} {min(times):6.3f} {plain:19.3f} {base:27.3f} {base / median:6.1f}"
        )


if __name__ == "__main__":
    main()
