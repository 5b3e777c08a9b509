"""Offline mixing-law tools over sweeps of runs (or CSV tables of mixtures and losses).

    python mixing_law_fitting.py linreg --run_dir output/sweep            # static law + optimum
    python mixing_law_fitting.py linreg --csv mix.csv loss.csv --join index \\
        --mixture_columns 'train_*' --loss_columns 'metric/*' --eval_csv test_mix.csv test_loss.csv
    python mixing_law_fitting.py regression ...                           # LightGBM (RegMix), same inputs
    python mixing_law_fitting.py best --run_dir output/sweep              # grid-search winner
    python mixing_law_fitting.py skills_graph --run_dir output/onehot --npy graph.npy
    python mixing_law_fitting.py dynamic --run_dir output/children output/parents
    python mixing_law_fitting.py cover --k 7 --n 10 --seed 0              # sweep mixtures
    python mixing_law_fitting.py fidelity --run_dir output/method_breaks output/children
    python mixing_law_fitting.py report RUN_DIRS... --output report.md --plots plots/

Every command writes a JSON file (`--output`, default in the current directory) and prints a summary.
The logic lives in analysis/ (see its modules); this file only parses arguments.
"""
from __future__ import annotations

import sys

from errors import OneLineArgumentParser, exit_on_usage_error


def _add_inputs(p, default_output):
    src = p.add_argument_group("inputs")
    src.add_argument("--run_dir", nargs="+", default=None,
                     help="run directories, or directories holding them (static runs of a sweep)")
    src.add_argument("--csv", nargs="+", default=None, metavar="FILE",
                     help="one CSV with mixture and loss columns, or MIXTURES.csv LOSSES.csv with --join")
    src.add_argument("--join", default=None, help="key column pairing the rows of two CSV files (RegMix: index)")
    src.add_argument("--mixture_columns", nargs="+", default=None, metavar="GLOB",
                     help="mixture columns (glob patterns; default: all but the key / every group)")
    src.add_argument("--loss_columns", nargs="+", default=None, metavar="GLOB",
                     help="loss columns (glob patterns; default: all but the key / every group)")
    src.add_argument("--split", choices=["val", "test"], default="val",
                     help="which results.json losses to read from run directories (default val)")
    src.add_argument("--target", default=None, metavar="COLUMN",
                     help="optimize this loss column alone (default: the mean over loss columns)")
    p.add_argument("--output", default=default_output, help=f"JSON result (default: ./{default_output})")


def _add_eval(p):
    p.add_argument("--eval_csv", nargs="+", default=None, metavar="FILE",
                   help="held-out rows (same layout as --csv, joined with the same --join): Spearman and MAE")
    p.add_argument("--seed", type=int, default=0, help="seed of restarts / folds / sampling")


def build_parser():
    parser = OneLineArgumentParser(prog="mixing_law_fitting.py", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=OneLineArgumentParser)
    sub.required = True

    p = sub.add_parser("linreg", help="fit the static law L_i(p) = c_i + k_i exp(sum_j t_ij p_j); its optimum")
    _add_inputs(p, "linreg_fit.json")
    _add_eval(p)
    p.add_argument("--restarts", type=int, default=6, help="starts per column (default 6)")
    p.add_argument("--no_loo", action="store_true", help="skip the leave-one-out error")
    p.add_argument("--within_observed", action="store_true",
                   help="bound each weight of the optimum by its largest observed value (no extrapolation)")
    p.add_argument("--plot", default=None, help="PNG of predicted against observed losses")

    p = sub.add_parser("regression", help="LightGBM predictor per loss column (RegMix); sampled optimum")
    _add_inputs(p, "regression_fit.json")
    _add_eval(p)
    p.add_argument("--folds", type=int, default=5, help="cross-validation folds (0: none; default 5)")
    p.add_argument("--num_iterations", type=int, default=1000, help="boosting rounds (default 1000)")
    p.add_argument("--samples", type=int, default=50000, help="candidate mixtures scored (default 50000)")
    p.add_argument("--top_k", type=int, default=100, help="candidates averaged into the optimum (default 100)")
    p.add_argument("--threads", type=int, default=1, help="LightGBM threads (default 1)")

    p = sub.add_parser("best", help="grid-search winner of a sweep, as a --proportions_file")
    _add_inputs(p, "best_mixture.json")

    p = sub.add_parser("skills_graph", help="Skill-it graph from k one-hot runs")
    p.add_argument("--run_dir", nargs="+", required=True, help="the one-hot runs (or folders holding them)")
    p.add_argument("--start", type=int, default=0, help="step of the reference loss (default 0: untrained)")
    p.add_argument("--end", type=int, default=None, help="step of the final loss (default: the last evaluation)")
    p.add_argument("--seed", type=int, default=None, help="use only runs with this selection_seed")
    p.add_argument("--npy", default=None, help="also write the graph as .npy")
    p.add_argument("--output", default="skills_graph.json", help="JSON graph (default: ./skills_graph.json)")

    p = sub.add_parser("dynamic", help="linear dynamic law from parent/child runs")
    p.add_argument("--run_dir", nargs="+", required=True, help="child runs (parents are found from their config)")
    p.add_argument("--intercept", action="store_true", help="fit an intercept b_i too")
    p.add_argument("--per_parent", action="store_true", help="also fit A separately for each parent")
    p.add_argument("--output", default="dynamic_fit.json", help="JSON result (default: ./dynamic_fit.json)")

    p = sub.add_parser("cover", help="well-spread mixtures for a sweep (seeded Dirichlet cover or a grid)")
    p.add_argument("--k", type=int, required=True, help="number of groups")
    p.add_argument("--n", type=int, default=None, help="number of mixtures")
    p.add_argument("--alpha", type=float, default=1.5, help="Dirichlet concentration (default 1.5)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--oversample", type=int, default=16, help="draws per kept mixture (default 16)")
    p.add_argument("--grid", type=float, default=None, metavar="STEP", help="a regular grid instead (k=2: 0.1)")
    p.add_argument("--output", default=None, help="JSON list (default: ./cover_k<k>_n<n>_seed<seed>.json); "
                   "the .txt beside it has one comma-separated mixture per line")

    p = sub.add_parser("fidelity", help="similarity of each method's A^t to the A* of its children")
    p.add_argument("--run_dir", nargs="+", required=True, help="method runs stopped at --break_steps and their children")
    p.add_argument("--intercept", action="store_true", help="fit A* with an intercept")
    p.add_argument("--output", default="fidelity.json", help="JSON result (default: ./fidelity.json)")

    sub.add_parser("report", help="Table-2 style report and plots (python -m analysis.report --help)", add_help=False)
    return parser


@exit_on_usage_error
def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["report"]:  # its own parser, shared with `python -m analysis.report`
        from analysis.report import main as report_main

        return report_main(argv[1:], prog="mixing_law_fitting.py report")
    args = build_parser().parse_args(argv)
    if args.command == "cover" and args.output is None:
        args.output = f"cover_k{args.k}_n{args.n if args.grid is None else 'grid'}_seed{args.seed}.json"
    from analysis import commands, run_commands
    from analysis.common import write_json

    run = {"linreg": commands.run_linreg, "regression": commands.run_regression, "best": commands.run_best,
           "skills_graph": run_commands.run_skills_graph, "dynamic": run_commands.run_dynamic,
           "cover": run_commands.run_cover, "fidelity": run_commands.run_fidelity}[args.command]
    result, lines = run(args)
    write_json(args.output, result)
    if isinstance(result, dict) and result.get("skipped_runs"):
        lines.append("skipped runs: " + ", ".join(f"{n} ({why})" for why, n in result["skipped_runs"].items()))
    print("\n".join(lines))
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
