"""Run a list of independent commands (the runs of a sweep, Skill-it's one-hot runs): here, N at a time,
or as a Slurm job array through submitit. The pipelines hand their lists to it when RUNNER is set
(scripts/README.md); it is also a tool of its own for any list of main.py command lines.

    python scripts/run_many.py COMMANDS.txt [--executor local] [--slots N] [--gpus]
    python scripts/run_many.py COMMANDS.txt --executor slurm [--partition P] [--timeout_min M]
        [--gpus_per_job G] [--cpus_per_job C] [--parallelism A]
    python scripts/run_many.py COMMANDS.txt --executor submitit-local     # submitit's local executor

COMMANDS.txt holds one shell-quoted command per line (blank lines and # comments are skipped); it is the
written record of what ran. Each command's output goes to <logs>/NN.log (default: COMMANDS.logs/ beside
the file). `local` runs --slots commands at once (with --gpus, slot i sees only GPU i through
CUDA_VISIBLE_DEVICES); `slurm` submits one array job (one task per command) and waits for it. Exit code
0 when every command succeeded; otherwise 1, with one line naming each failed command and its log.
"""
import os
import shlex
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from errors import OneLineArgumentParser, UsageError, exit_on_usage_error  # noqa: E402


def read_commands(path: str) -> list:
    """The commands of COMMANDS.txt as argument lists."""
    try:
        with open(path) as fh:
            lines = [line.strip() for line in fh]
    except OSError as err:
        raise UsageError(f"{path}: cannot read it ({err.strerror})") from None
    commands = []
    for number, line in enumerate(lines, 1):
        if line and not line.startswith("#"):
            try:
                commands.append(shlex.split(line))
            except ValueError as err:
                raise UsageError(f"{path} line {number}: not a shell command ({err})") from None
    if not commands:
        raise UsageError(f"{path}: no commands in it")
    return commands


def run_one(argv: list, log_path: str, env=None) -> int:
    """Run one command with its output in `log_path`; its exit code. (Also what each Slurm task runs.)"""
    with open(log_path, "w") as log:
        log.write(shlex.join(argv) + "\n")
        log.flush()
        return subprocess.run(argv, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=ROOT).returncode


def run_local(commands: list, logs: list, slots: int, gpus: bool) -> list:
    """Exit codes, running `slots` commands at a time; with `gpus`, slot i gets GPU i."""
    free = list(range(slots))

    def task(i):
        slot = free.pop()
        try:
            env = dict(os.environ, CUDA_VISIBLE_DEVICES=str(slot)) if gpus else None
            print(f"[run_many] slot {slot}: {shlex.join(commands[i])}", flush=True)
            return run_one(commands[i], logs[i], env)
        finally:
            free.append(slot)

    with ThreadPoolExecutor(slots) as pool:
        return list(pool.map(task, range(len(commands))))


def run_submitit(commands: list, logs: list, folder: str, cluster: str, opts) -> list:
    """Exit codes, as one submitit job array (cluster "slurm", or "local" for submitit's local executor)."""
    try:
        import submitit
    except ImportError:
        raise UsageError("--executor slurm needs submitit: pip install submitit") from None
    executor = submitit.AutoExecutor(folder=folder, cluster=cluster)
    params = {"timeout_min": opts.timeout_min}
    if cluster == "slurm":
        params.update(slurm_partition=opts.partition, gpus_per_node=opts.gpus_per_job,
                      cpus_per_task=opts.cpus_per_job, slurm_array_parallelism=opts.parallelism)
    executor.update_parameters(**{k: v for k, v in params.items() if v is not None})
    for argv in commands:
        print(f"[run_many] {cluster}: {shlex.join(argv)}", flush=True)
    jobs = executor.map_array(run_one, commands, logs)
    codes = []
    for job in jobs:
        try:
            codes.append(job.result())
        except Exception as err:  # the task itself failed (killed, timed out): submitit says how
            print(f"[run_many] job {job.job_id} failed: {str(err).splitlines()[0] if str(err) else err!r}",
                  file=sys.stderr)
            codes.append(-1)
    return codes


def build_parser():
    p = OneLineArgumentParser(prog="python scripts/run_many.py", description=__doc__.split("\n\n")[0])
    p.add_argument("commands", help="file of shell-quoted commands, one per line")
    p.add_argument("--executor", default="local", choices=("local", "slurm", "submitit-local"))
    p.add_argument("--slots", type=int, default=1, help="local: commands at once")
    p.add_argument("--gpus", action="store_true", help="local: slot i sees only GPU i")
    p.add_argument("--logs", default=None, help="folder of the per-command logs (default: COMMANDS.logs)")
    p.add_argument("--partition", default=None, help="slurm partition")
    p.add_argument("--timeout_min", type=int, default=24 * 60, help="slurm / submitit: minutes per command")
    p.add_argument("--gpus_per_job", type=int, default=None, help="slurm: GPUs per command")
    p.add_argument("--cpus_per_job", type=int, default=None, help="slurm: CPUs per command")
    p.add_argument("--parallelism", type=int, default=None, help="slurm: array tasks at once")
    return p


@exit_on_usage_error
def main(argv=None):
    opts = build_parser().parse_args(argv)
    if opts.slots < 1:
        raise UsageError(f"--slots must be a positive number of commands at once, got {opts.slots}")
    commands = read_commands(opts.commands)
    folder = opts.logs or os.path.splitext(opts.commands)[0] + ".logs"
    os.makedirs(folder, exist_ok=True)
    logs = [os.path.join(folder, f"{i:02d}.log") for i in range(len(commands))]
    if opts.executor == "local":
        codes = run_local(commands, logs, opts.slots, opts.gpus)
    else:
        codes = run_submitit(commands, logs, folder, "slurm" if opts.executor == "slurm" else "local", opts)
    failed = [i for i, code in enumerate(codes) if code != 0]
    for i in failed:
        print(f"error: command {i} failed (exit {codes[i]}; log {logs[i]}): {shlex.join(commands[i])}",
              file=sys.stderr)
    if failed:
        raise SystemExit(1)
    print(f"[run_many] {len(commands)} command(s) done; logs in {folder}")


if __name__ == "__main__":
    main()
