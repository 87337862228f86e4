#!/usr/bin/env python
"""Run the chromestore pipeline on a SLURM cluster through dask-jobqueue.

The scheduler starts here (a login or head node) on the cluster's internal interface,
TLS only; worker jobs are submitted with ``sbatch`` from the templates in
``jobqueue.yaml`` (CPU jobs, and GPU jobs offering ``GPU=1`` for training); then each
STEP runs as ``chromestore --scheduler tls://… STEP`` against that cluster, and the jobs
are cancelled at the end::

    python deploy/slurm/run_pipeline.py --jobs 4 --gpu-jobs 2 --queue cpu --gpu-queue gpu \\
        "ingest s3://lab/remc.zarr --genes data/gene_windows.hg19.bed.gz --expression data/rpkm.56epigenomes.tsv.gz" \\
        "labels s3://lab/remc.zarr"

``--print-job-script`` prints the two job scripts and exits without submitting anything.
Certificates come from ``--certs`` (made there with ``deploy/tls/make-certs.sh`` when absent;
the directory must be on a file system the compute nodes share, e.g. your home): the
scheduler, the worker jobs and the steps each use their own role's certificate from
``CERTS/dask``; the CA key stays in ``CERTS/ca``.

A step's ``--storage-options`` (which may hold keys and secrets) is handed to its command
through ``$CHROMESTORE_STORAGE_OPTIONS``, never on a command line (``ps`` shows those), and
is printed with every secret-looking value replaced by ``***``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import signal
import subprocess
import sys
from pathlib import Path

import dask
import yaml
from dask_jobqueue import SLURMCluster
from dask_jobqueue.slurm import SLURMJob
from distributed import Client, Security

from chromestore.app.errors import EXIT_INTERRUPTED  # 128 + SIGINT, as shells report it

HERE = Path(__file__).resolve().parent
CONFIG = HERE / "jobqueue.yaml"
MAKE_CERTS = HERE.parent / "tls" / "make-certs.sh"
CPU, GPU = "chromestore-cpu", "chromestore-gpu"
ROLES = ("scheduler", "worker", "client")
STORAGE_OPTIONS = "--storage-options"
ENV_STORAGE_OPTIONS = "CHROMESTORE_STORAGE_OPTIONS"
#: storage-option names whose values are never printed
SECRET = re.compile(r"key|secret|token|passw|credential|signature|session", re.IGNORECASE)


def _keep_ctrl_c() -> None:
    """Undo what importing dask_jobqueue does to Ctrl-C: its ``runner`` module replaces the
    SIGINT handler of every process that imports it with a silent ``sys.exit()``, exit
    status 0, so an interrupted pipeline would look finished to the shell or the job that
    ran it. Python's own handler comes back (only where it was dask_jobqueue's)."""
    handler = signal.getsignal(signal.SIGINT)
    if getattr(handler, "__module__", None) == "dask_jobqueue.runner":
        try:
            signal.signal(signal.SIGINT, signal.default_int_handler)
        except ValueError:  # not the main thread: handlers cannot change here
            pass


_keep_ctrl_c()


class Interrupts:
    """Ctrl-C that is never lost: the handler raises ``KeyboardInterrupt`` as Python's does
    and also records it, and the pipeline's waits check the record. (Python runs a signal
    handler wherever the main thread is; in a garbage-collection callback, such as
    distributed's ``GCDiagnosis``, the exception is printed as "ignored" and the wait goes
    on.)"""

    requested = False

    @classmethod
    def handler(cls, signum, frame) -> None:
        cls.requested = True
        raise KeyboardInterrupt

    @classmethod
    def check(cls) -> None:
        if cls.requested:
            raise KeyboardInterrupt


def wait_for_workers(client: Client, n: int, poll: float = 2.0) -> None:
    """``client.wait_for_workers(n)``, looking every ``poll`` seconds for an interrupt."""
    while True:
        Interrupts.check()
        try:
            client.wait_for_workers(n, timeout=poll)
            return
        except TimeoutError:
            continue


def load_config(path: str | os.PathLike = CONFIG) -> dict:
    """Merge ``jobqueue.yaml`` into Dask's config (``jobqueue.chromestore-cpu``/``-gpu``).

    Each template starts from dask-jobqueue's ``jobqueue.slurm`` defaults.
    """
    with open(path) as f:
        cfg = yaml.safe_load(f)
    base = dask.config.get("jobqueue.slurm")
    cfg["jobqueue"] = {name: {**base, **tpl} for name, tpl in cfg["jobqueue"].items()}
    dask.config.update(dask.config.config, cfg, priority="new")
    return cfg


def ensure_certs(certs: str | os.PathLike) -> Path:
    """``certs`` (made with make-certs.sh when absent); returns it."""
    certs = Path(certs).expanduser()
    if not (certs / "dask" / "ca.pem").exists():
        subprocess.run([str(MAKE_CERTS), str(certs)], check=True)
    return certs


def security(certs: str | os.PathLike) -> Security:
    """Mutual TLS for scheduler, workers and client, all signed by the CA in ``certs``,
    each role with its own certificate and key (``certs/dask/ROLE.pem``, ``ROLE-key.pem``)."""
    d = Path(certs) / "dask"
    return Security(
        tls_ca_file=str(d / "ca.pem"),
        **{
            f"tls_{role}_{k}": str(d / f"{role}{suffix}.pem")
            for role in ROLES
            for k, suffix in (("cert", ""), ("key", "-key"))
        },
        require_encryption=True,
    )


def client_env(certs: str | os.PathLike) -> dict[str, str]:
    """Environment that makes a Dask client (the chromestore CLI) present the client certificate."""
    d = Path(certs) / "dask"
    return {
        "DASK_DISTRIBUTED__COMM__REQUIRE_ENCRYPTION": "True",
        "DASK_DISTRIBUTED__COMM__TLS__CA_FILE": str(d / "ca.pem"),
        "DASK_DISTRIBUTED__COMM__TLS__CLIENT__CERT": str(d / "client.pem"),
        "DASK_DISTRIBUTED__COMM__TLS__CLIENT__KEY": str(d / "client-key.pem"),
    }


def redact(value):
    """``value`` (parsed storage options) with every secret-looking entry replaced by ``***``."""
    if isinstance(value, dict):
        return {k: "***" if SECRET.search(str(k)) else redact(v) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v) for v in value]
    return value


def split_step(step: str) -> tuple[list[str], str | None]:
    """A step's arguments without ``--storage-options`` (either form), and that option's value."""
    args, options, it = [], None, iter(shlex.split(step))
    for arg in it:
        if arg == STORAGE_OPTIONS:
            options = next(it, "")
        elif arg.startswith(STORAGE_OPTIONS + "="):
            options = arg.split("=", 1)[1]
        else:
            args.append(arg)
    return args, options


def shown(args: list[str], options: str | None) -> str:
    """How a step is printed: its storage options redacted (or hidden, when not JSON)."""
    if options is None:
        return shlex.join(args)
    try:
        safe = json.dumps(redact(json.loads(options)))
    except ValueError:
        safe = "<not shown>"
    return shlex.join([*args, STORAGE_OPTIONS, safe])


def make_cluster(certs: str | os.PathLike, **overrides) -> SLURMCluster:
    """The CPU-job cluster (its scheduler starts now; no job is submitted yet)."""
    return SLURMCluster(config_name=CPU, security=security(certs), **overrides)


def gpu_job_options(cluster: SLURMCluster, **overrides) -> dict:
    opts = {k: cluster._job_kwargs[k] for k in ("interface", "protocol", "security")}
    return {**opts, "config_name": GPU, **overrides}


def gpu_job_script(cluster: SLURMCluster, **overrides) -> str:
    job = SLURMJob(
        cluster.scheduler.address, name="dummy-name", **gpu_job_options(cluster, **overrides)
    )
    return job.job_script()


def add_gpu_jobs(cluster: SLURMCluster, n: int, **overrides) -> None:
    """Submit ``n`` GPU jobs to the same scheduler (a second worker group of the cluster)."""
    for i in range(n):
        cluster.worker_spec[f"gpu-{i}"] = {
            "cls": SLURMJob,
            "options": gpu_job_options(cluster, **overrides),
        }
    cluster.sync(cluster._correct_state)


def run_steps(address: str, steps: list[str], certs: str | os.PathLike) -> int:
    """Run each step as ``chromestore --scheduler ADDRESS STEP``; stop at the first that
    fails and return its exit status (0 when all succeed)."""
    for step in steps:
        Interrupts.check()
        args, options = split_step(step)
        env = {**os.environ, **client_env(certs)}
        if options is not None:
            env[ENV_STORAGE_OPTIONS] = options
        cmd = [sys.executable, "-m", "chromestore.app.cli", "--scheduler", address, *args]
        print("+ chromestore " + shown(args, options), flush=True)
        rc = subprocess.run(cmd, env=env).returncode
        if rc:
            print(
                f"step failed (exit {rc}): chromestore {shown(args, options)}",
                file=sys.stderr,
                flush=True,
            )
            return rc
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("steps", nargs="*", help="chromestore commands to run, one quoted string each")
    p.add_argument("--jobs", type=int, default=2, help="CPU worker jobs")
    p.add_argument("--gpu-jobs", type=int, default=0, help="GPU worker jobs (resources GPU=1)")
    p.add_argument("--queue", default=None, help="partition of the CPU jobs")
    p.add_argument("--gpu-queue", default=None, help="partition of the GPU jobs")
    p.add_argument("--account", default=None)
    p.add_argument("--interface", default=None, help="internal network interface (default: config)")
    p.add_argument("--certs", default="~/.chromestore/tls", help="shared directory of TLS files")
    p.add_argument("--config", default=str(CONFIG))
    p.add_argument("--wait-workers", type=int, default=1, help="workers to wait for before running")
    p.add_argument("--print-job-script", action="store_true")
    a = p.parse_args(argv)

    load_config(a.config)
    certs = ensure_certs(a.certs)
    common = {k: v for k, v in (("account", a.account), ("interface", a.interface)) if v}
    cpu = {**common, **({"queue": a.queue} if a.queue else {})}
    gpu = {**common, **({"queue": a.gpu_queue} if a.gpu_queue else {})}
    with make_cluster(certs, **cpu) as cluster:
        if a.print_job_script:
            print(cluster.job_script())
            print(gpu_job_script(cluster, **gpu))
            return 0
        print(
            f"scheduler {cluster.scheduler.address}; dashboard {cluster.dashboard_link}", flush=True
        )
        cluster.scale(jobs=a.jobs)
        if a.gpu_jobs:
            add_gpu_jobs(cluster, a.gpu_jobs, **gpu)
        with Client(cluster, security=security(certs)) as client:
            wait_for_workers(client, a.wait_workers)
            return run_steps(cluster.scheduler.address, a.steps, certs)


if __name__ == "__main__":
    signal.signal(signal.SIGINT, Interrupts.handler)
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("error: interrupted; the worker jobs were cancelled", file=sys.stderr)
        sys.exit(EXIT_INTERRUPTED)
