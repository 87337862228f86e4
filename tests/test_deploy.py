"""deploy/: the container, compose, Kubernetes and SLURM files parse, agree and work.

No docker engine or SLURM here: compose and the manifests are parsed and checked
against the repository (image tag = package version, commands = real CLI commands);
the TLS settings and the SLURM job script are run for real, with real processes on
127.0.0.1.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shlex
import shutil
import signal
import stat
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml
from distributed import Client, Security

from chromestore.app.cli import main as cli_main
from tests.cluster_fixtures import DaskProcs, _spawn, stop

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
IMAGE = f"chromestore:{VERSION}"
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::([-?])([^}]*))?\}")


def _interpolate(text: str, env: dict[str, str]) -> str:
    """Compose's ${VAR}, ${VAR:-default} and ${VAR:?error} ($$ is a literal $)."""

    def sub(m: re.Match) -> str:
        name, op, arg = m.groups()
        if env.get(name):
            return env[name]
        if op == "-":
            return arg
        if op == "?":
            raise KeyError(f"{name}: {arg}")
        return ""

    return _VAR.sub(sub, text.replace("$$", "\0")).replace("\0", "$")


def compose(env: dict[str, str] | None = None) -> dict:
    return yaml.safe_load(_interpolate((DEPLOY / "docker-compose.yml").read_text(), env or {}))


def manifests() -> list[dict]:
    docs = []
    for f in sorted((DEPLOY / "kubernetes").glob("*.yaml")):
        docs += [d for d in yaml.safe_load_all(f.read_text()) if d]
    return docs


def _containers(obj) -> list[dict]:
    """Every container spec anywhere in a manifest."""
    found = []
    if isinstance(obj, dict):
        for k, v in obj.items():
            if k == "containers":
                found += v
            else:
                found += _containers(v)
    elif isinstance(obj, list):
        for v in obj:
            found += _containers(v)
    return found


# --- Dockerfile ---------------------------------------------------------------------------


def test_dockerfile__copies_real_paths_and_takes_a_torch_index():
    text = (DEPLOY / "Dockerfile").read_text()
    copies = re.findall(r"^COPY\s+(.+)$", text, flags=re.M)
    sources = [s for line in copies for s in line.split()[:-1]]
    assert {"pyproject.toml", "README.md", "chromestore", "training", "analysis"} <= set(sources)
    for s in sources:
        assert (ROOT / s).exists(), s
    assert re.search(r"^ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu$", text, re.M)
    assert '--index-url "${TORCH_INDEX}"' in text
    pinned = (ROOT / "constraints.txt").read_text()
    assert re.search(r"^ARG TORCH_VERSION=(\S+)$", text, re.M).group(1) in pinned
    ignore = (DEPLOY / "Dockerfile.dockerignore").read_text().split()
    assert all(f"!{s}" in ignore for s in sources)


def test_image_dask_config__nanny_workers_start_without_dasks_malloc_trim_threshold(
    tmp_path, monkeypatch
):
    """deploy/dask-workers.yaml, copied into the image's /etc/dask (its DASK_CONFIG): a real
    `dask worker` with its nanny, reading it, starts its worker without Dask's 64 KiB
    MALLOC_TRIM_THRESHOLD_ (training ran 1.6–1.8× slower under it) and still with
    OMP_NUM_THREADS=1; without the file the worker gets 65536."""
    text = (DEPLOY / "Dockerfile").read_text()
    assert re.search(r"^COPY deploy/dask-workers.yaml /etc/dask/\S+\.yaml$", text, re.M)
    assert "!deploy/dask-workers.yaml" in (DEPLOY / "Dockerfile.dockerignore").read_text().split()
    for key in ("MALLOC_TRIM_THRESHOLD_", "OMP_NUM_THREADS", "DASK_CONFIG"):
        monkeypatch.delenv(key, raising=False)
    config = tmp_path / "etc-dask"
    config.mkdir()
    shutil.copy(DEPLOY / "dask-workers.yaml", config / "chromestore-workers.yaml")

    def worker_environ(with_config: bool) -> dict:
        env = {"DASK_CONFIG": str(config)} if with_config else {}
        procs = DaskProcs(tmp_path / f"c{int(with_config)}", env=env)
        procs.directory.mkdir()
        try:
            address = procs.start_scheduler()
            procs.start_worker("w", nanny=True)
            with Client(address, timeout=30) as client:
                client.wait_for_workers(1, timeout=30)
                return {
                    key: next(iter(client.run(os.getenv, key).values()))
                    for key in ("MALLOC_TRIM_THRESHOLD_", "OMP_NUM_THREADS")
                }
        finally:
            procs.close()

    assert worker_environ(True) == {"MALLOC_TRIM_THRESHOLD_": None, "OMP_NUM_THREADS": "1"}
    assert worker_environ(False) == {"MALLOC_TRIM_THRESHOLD_": "65536", "OMP_NUM_THREADS": "1"}


# --- docker compose ------------------------------------------------------------------------


def test_compose__services_ports_and_image():
    c = compose({"MINIO_ROOT_PASSWORD": "pw"})
    s = c["services"]
    assert set(s) == {"scheduler", "worker", "gpu-worker", "minio", "createbucket"}
    assert s["scheduler"]["ports"] == ["127.0.0.1:8786:8786", "127.0.0.1:8787:8787"]
    for name in ("scheduler", "worker"):
        assert s[name]["image"] == IMAGE
        assert s[name]["build"]["dockerfile"] == "deploy/Dockerfile"
        assert (DEPLOY / s[name]["build"]["context"] / s[name]["build"]["dockerfile"]).exists()
    assert "tls://scheduler:8786" in s["worker"]["command"]
    assert s["worker"]["deploy"]["replicas"] == 2
    assert (
        compose({"MINIO_ROOT_PASSWORD": "pw", "CPU_WORKERS": "8"})["services"]["worker"]["deploy"][
            "replicas"
        ]
        == 8
    )


def test_compose__nothing_published_beyond_loopback():
    c = compose({"MINIO_ROOT_PASSWORD": "pw"})
    published = [p for svc in c["services"].values() for p in svc.get("ports", [])]
    assert len(published) == 4
    assert all(p.startswith("127.0.0.1:") for p in published)


def test_compose__gpu_worker_offers_gpu_resource_on_nvidia_runtime():
    g = compose({"MINIO_ROOT_PASSWORD": "pw"})["services"]["gpu-worker"]
    assert g["profiles"] == ["gpu"] and g["runtime"] == "nvidia"
    assert "--resources GPU=1" in " ".join(g["command"].split())
    assert g["deploy"]["resources"]["reservations"]["devices"][0]["capabilities"] == ["gpu"]
    assert "/cu" in g["build"]["args"]["TORCH_INDEX"]
    assert g["environment"]["AWS_ENDPOINT_URL_S3"] == "http://minio:9000"


def test_compose__minio_holds_the_store_and_password_is_required():
    c = compose({"MINIO_ROOT_PASSWORD": "pw"})
    w = c["services"]["worker"]
    assert w["environment"]["AWS_SECRET_ACCESS_KEY"] == "pw"
    assert c["services"]["minio"]["environment"]["MINIO_ROOT_PASSWORD"] == "pw"
    assert (
        "mc mb --ignore-existing store/chromestore" in c["services"]["createbucket"]["entrypoint"]
    )
    assert "$MINIO_ROOT_PASSWORD" in c["services"]["createbucket"]["entrypoint"]
    with pytest.raises(KeyError, match="MINIO_ROOT_PASSWORD"):
        compose({})
    # Mounted files exist.
    for v in w["volumes"]:
        src = v.split(":")[0]
        if src.startswith("./") and "certs" not in src:
            assert (DEPLOY / src).exists(), src


# --- Kubernetes ----------------------------------------------------------------------------


def test_kubernetes__daskcluster_with_cpu_and_gpu_groups_using_the_image():
    docs = manifests()
    kinds = {d["kind"]: d for d in docs}
    assert {"ConfigMap", "DaskCluster", "DaskWorkerGroup", "Job"} <= set(kinds)
    cluster, gpu = kinds["DaskCluster"], kinds["DaskWorkerGroup"]
    assert cluster["apiVersion"] == gpu["apiVersion"] == "kubernetes.dask.org/v1"
    assert gpu["spec"]["cluster"] == cluster["metadata"]["name"]
    for c in _containers(docs):
        assert c["image"] in (IMAGE, f"{IMAGE}-cuda"), c["image"]
    gpu_c = _containers(gpu)[0]
    assert gpu_c["image"] == f"{IMAGE}-cuda"
    assert gpu_c["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert "--resources GPU=1" in " ".join(gpu_c["args"])
    assert "--resources" not in _containers(cluster["spec"]["worker"])[0]["args"]
    svc = cluster["spec"]["scheduler"]["service"]
    assert svc["type"] == "ClusterIP"
    assert {p["port"] for p in svc["ports"]} == {8786, 8787}


def test_kubernetes__tls_config_is_the_compose_one_and_job_targets_the_scheduler():
    docs = manifests()
    kinds = {d["kind"]: d for d in docs}
    tls = yaml.safe_load(kinds["ConfigMap"]["data"]["dask-tls.yaml"])
    assert tls == yaml.safe_load((DEPLOY / "tls" / "dask-tls.yaml").read_text())
    scheduler = f"tls://{kinds['DaskCluster']['metadata']['name']}-scheduler:8786"
    for c in _containers(docs):
        joined = " ".join(c.get("args", []) + c.get("command", []))
        if "dask worker" in joined:
            assert scheduler in joined
    job = _containers(kinds["Job"])[0]
    env = {e["name"]: e["value"] for e in job["env"]}
    assert env["CHROMESTORE_SCHEDULER"] == scheduler
    # Every step of the submitted run is a real chromestore command.
    steps = [
        shlex.split(line.strip().rstrip("\\"))
        for line in job["args"][0].splitlines()
        if line.strip().startswith("chromestore ")
    ]
    assert steps and all(s[1] in cli_main.commands for s in steps), steps


# --- TLS with real processes ---------------------------------------------------------------


@pytest.fixture(scope="module")
def certs(tmp_path_factory) -> Path:
    """make-certs.sh's output folder: ``ca/`` (the CA key) and ``dask/`` (what is mounted)."""
    out = tmp_path_factory.mktemp("tls") / "certs"
    subprocess.run(
        [str(DEPLOY / "tls" / "make-certs.sh"), str(out)],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return out


def _tls_config_dir(tls: Path, where: Path) -> Path:
    """deploy/tls/dask-tls.yaml with /etc/dask/tls pointed at ``tls``."""
    where.mkdir(exist_ok=True)
    text = (DEPLOY / "tls" / "dask-tls.yaml").read_text().replace("/etc/dask/tls", str(tls))
    (where / "dask-tls.yaml").write_text(text)
    return where


def _role_mount(certs: Path, role: str, where: Path) -> Path:
    """What a container of ``role`` mounts: the CA certificate and its own pair only."""
    where.mkdir()
    for name in ("ca.pem", f"{role}.pem", f"{role}-key.pem"):
        shutil.copy2(certs / "dask" / name, where / name)
    return where


ROLES = ("scheduler", "worker", "client")


def test_make_certs__a_certificate_per_role_keys_0600_ca_key_apart(certs):
    mounted = certs / "dask"
    assert sorted(p.name for p in mounted.iterdir()) == sorted(
        ["ca.pem"] + [f"{r}{s}.pem" for r in ROLES for s in ("", "-key")]
    )
    assert sorted(p.name for p in (certs / "ca").iterdir()) == ["ca-key.pem", "ca.pem"]
    for key in [certs / "ca" / "ca-key.pem", *mounted.glob("*-key.pem")]:
        assert stat.S_IMODE(key.stat().st_mode) == 0o600, key
    assert stat.S_IMODE((certs / "ca").stat().st_mode) == 0o700
    subjects = set()
    for role in ROLES:
        cert = mounted / f"{role}.pem"
        ok = subprocess.run(
            ["openssl", "verify", "-CAfile", str(mounted / "ca.pem"), str(cert)],
            capture_output=True,
            text=True,
        )
        assert ok.returncode == 0 and ok.stdout.strip().endswith(": OK"), ok.stdout + ok.stderr
        text = subprocess.run(
            ["openssl", "x509", "-in", str(cert), "-noout", "-subject", "-ext", "extendedKeyUsage"],
            capture_output=True,
            text=True,
        ).stdout
        assert f"CN=chromestore-dask-{role}" in text.replace(" ", "")
        assert ("TLS Web Server Authentication" in text) == (role != "client")
        subjects.add(text)
        # each certificate carries its own key (the key's public half matches it)
        pub = [
            subprocess.run(
                ["openssl", "x509", "-in", str(cert), "-noout", "-pubkey"],
                capture_output=True,
                text=True,
            ).stdout,
            None,
        ]
        pub[1] = subprocess.run(
            ["openssl", "pkey", "-in", str(mounted / f"{role}-key.pem"), "-pubout"],
            capture_output=True,
            text=True,
        ).stdout
        assert pub[0] == pub[1] and pub[0]
    assert len(subjects) == 3
    keys = {(mounted / f"{r}-key.pem").read_bytes() for r in ROLES}
    assert len(keys) == 3 and (certs / "ca" / "ca-key.pem").read_bytes() not in keys


def test_make_certs__never_overwrites_existing_certificates(certs):
    before = {p: p.read_bytes() for p in certs.rglob("*") if p.is_file()}
    res = subprocess.run(
        [str(DEPLOY / "tls" / "make-certs.sh"), str(certs)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert res.returncode == 1
    assert res.stderr.strip() == (
        f"make-certs.sh: {certs}/ca already exists; nothing was "
        "changed (remove it or choose another DIR)"
    )
    assert {p: p.read_bytes() for p in certs.rglob("*") if p.is_file()} == before


def test_compose__containers_mount_role_certificates_never_the_ca_key():
    c = compose({"MINIO_ROOT_PASSWORD": "pw"})
    for name in ("scheduler", "worker", "gpu-worker"):
        svc = c["services"][name]
        mounts = {v.split(":")[1]: v.split(":")[0] for v in svc["volumes"]}
        assert mounts["/etc/dask/tls"] == "./tls/certs/dask"
        assert not any("ca-key" in v or v.rstrip("/").endswith("/ca") for v in svc["volumes"])
        assert svc["user"] == "1000:1000"
    custom = compose(
        {"MINIO_ROOT_PASSWORD": "pw", "CHROMESTORE_UID": "1234", "CHROMESTORE_CERTS": "/srv/certs"}
    )["services"]["worker"]
    assert custom["user"] == "1234:1000" and "/srv/certs/dask:/etc/dask/tls:ro" in custom["volumes"]
    tls = yaml.safe_load((DEPLOY / "tls" / "dask-tls.yaml").read_text())["distributed"]["comm"]
    for role in ROLES:
        assert tls["tls"][role] == {
            "cert": f"/etc/dask/tls/{role}.pem",
            "key": f"/etc/dask/tls/{role}-key.pem",
        }


def _pods(obj) -> list[dict]:
    """Every pod spec (a dict with "containers") anywhere in a manifest."""
    if isinstance(obj, dict):
        found = [obj] if "containers" in obj else []
        return found + [p for v in obj.values() for p in _pods(v)]
    if isinstance(obj, list):
        return [p for v in obj for p in _pods(v)]
    return []


def test_kubernetes__each_pod_gets_only_its_role_key_and_never_the_ca_key():
    docs = manifests()
    roles = {"scheduler": "scheduler", "worker": "worker", "run": "client"}
    seen = []
    for pod in _pods(docs):
        role = roles[pod["containers"][0]["name"]]
        tls = next(v["secret"] for v in pod["volumes"] if v["name"] == "tls")
        assert tls["secretName"] == "chromestore-tls"
        assert {i["key"] for i in tls["items"]} == {"ca.pem", f"{role}.pem", f"{role}-key.pem"}
        assert tls["defaultMode"] == 0o440
        sec = pod["securityContext"]
        assert sec["runAsNonRoot"] and sec["runAsUser"] == 1000 and sec["fsGroup"] == 1000
        seen.append(role)
    assert sorted(seen) == ["client", "scheduler", "worker", "worker"]
    assert "ca-key" not in yaml.safe_dump_all(docs)
    text = (DEPLOY / "kubernetes" / "daskcluster.yaml").read_text()
    assert "kubectl create secret generic chromestore-tls --from-file=certs/dask\n" in text


@pytest.mark.cluster
@pytest.mark.timeout(180)
def test_tls_settings__real_scheduler_and_worker_speak_tls_only(certs, dask_procs, tmp_path):  # noqa: F811
    other = tmp_path / "other-ca"
    subprocess.run(
        [str(DEPLOY / "tls" / "make-certs.sh"), str(other)],
        check=True,
        capture_output=True,
        timeout=60,
    )
    # Each process holds only its role's certificate and key, as the pods do.
    for role in ("scheduler", "worker"):
        mount = _role_mount(certs, role, tmp_path / f"{role}-tls")
        dask_procs.env = {"DASK_CONFIG": str(_tls_config_dir(mount, tmp_path / f"{role}-cfg"))}
        dask_procs.protocol = "tls"
        if role == "scheduler":
            address = dask_procs.start_scheduler()
            assert address.startswith("tls://127.0.0.1:")
        else:
            dask_procs.start_worker("w0")
    with Client(address, security=_client_security(certs), timeout=30) as client:
        assert client.submit(sum, [1, 2, 3]).result(timeout=30) == 6
        assert all(w.startswith("tls://") for w in client.scheduler_info()["workers"])
    # A client whose certificate another CA signed is refused; so is one speaking plain TCP.
    with pytest.raises((OSError, TimeoutError)):
        Client(address, security=_client_security(other), timeout=5)
    with pytest.raises((OSError, TimeoutError)):
        Client(address.replace("tls://", "tcp://"), timeout=5)


def _client_security(certs: Path) -> Security:
    d = certs / "dask"
    return Security(
        tls_ca_file=str(d / "ca.pem"),
        tls_client_cert=str(d / "client.pem"),
        tls_client_key=str(d / "client-key.pem"),
        require_encryption=True,
    )


# --- SLURM ---------------------------------------------------------------------------------


def _run_pipeline_module():
    spec = importlib.util.spec_from_file_location(
        "run_pipeline", DEPLOY / "slurm" / "run_pipeline.py"
    )
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.cluster
@pytest.mark.timeout(180)
def test_slurm__job_scripts_from_our_config_start_real_tls_workers(certs, tmp_path):
    rp = _run_pipeline_module()
    rp.load_config()
    over = {"interface": "lo", "local_directory": str(tmp_path / "scratch")}
    with rp.make_cluster(certs, **over) as cluster:
        cpu = cluster.job_script()
        gpu = rp.gpu_job_script(cluster, **over)
        address = cluster.scheduler.address
        assert address.startswith("tls://127.0.0.1:")
        for script in (cpu, gpu):
            assert script.startswith("#!/usr/bin/env bash")
            assert f"-m distributed.cli.dask_worker {address}" in script
            assert f"--tls-ca-file {certs / 'dask' / 'ca.pem'}" in script
            assert f"--tls-cert {certs / 'dask' / 'worker.pem'}" in script
            assert f"--tls-key {certs / 'dask' / 'worker-key.pem'}" in script
            assert "ca-key" not in script
            assert "#SBATCH -t 04:00:00" in script
        assert "#SBATCH --cpus-per-task=16" in cpu and "#SBATCH --mem=64G" in cpu
        assert "--nworkers 4" in cpu and "--nthreads 4" in cpu and "GPU=1" not in cpu
        assert "#SBATCH --gres=gpu:1" in gpu and "--resources GPU=1" in gpu
        assert "#SBATCH --cpus-per-task=8" in gpu
        # Run the GPU job script as SLURM would (its #SBATCH lines are comments to bash).
        job = tmp_path / "gpu-job.sh"
        job.write_text(gpu.replace("--nthreads 8", "--nthreads 1").replace("64.00GiB", "2GiB"))
        proc = _spawn(["bash", str(job)], tmp_path / "gpu-job.log", None)
        try:
            with Client(cluster, security=rp.security(certs)) as client:
                client.wait_for_workers(1, timeout=90)
                workers = client.scheduler_info()["workers"].values()
                assert [w["resources"] for w in workers] == [{"GPU": 1.0}]
                fut = client.submit(pow, 3, 4, resources={"GPU": 1})
                assert fut.result(timeout=30) == 81
        finally:
            stop(proc)


def test_slurm__importing_the_pipeline_leaves_ctrl_c_to_python():
    """dask_jobqueue's import makes SIGINT a silent ``sys.exit()`` in the importing process;
    run_pipeline gives Python's handler back (and this test process keeps it)."""
    before = signal.getsignal(signal.SIGINT)
    try:
        _run_pipeline_module()
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    finally:
        signal.signal(signal.SIGINT, before)


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")  # the lost one
def test_slurm__an_interrupt_lost_in_a_gc_callback_still_stops_the_wait_for_workers():
    """Python prints a KeyboardInterrupt raised inside a garbage-collection callback as
    "ignored" (distributed registers one); the pipeline's handler records the interrupt, so
    the wait for workers stops at its next look."""
    import gc

    rp = _run_pipeline_module()
    looks = []

    class NoWorkers:  # a cluster whose jobs never start
        def wait_for_workers(self, n, timeout=None):
            looks.append(timeout)
            assert len(looks) < 5, "the interrupt was lost: the wait goes on"
            gc.collect()  # the interrupt arrives during a collection, in its callback
            raise TimeoutError(f"no {n} workers after {timeout} s")

    def during_gc(phase, info):
        if phase == "start" and len(looks) == 1:
            os.kill(os.getpid(), signal.SIGINT)

    before = signal.signal(signal.SIGINT, rp.Interrupts.handler)
    gc.callbacks.append(during_gc)
    try:
        with pytest.raises(KeyboardInterrupt):
            rp.wait_for_workers(NoWorkers(), 1, poll=0.01)
    finally:
        gc.callbacks.remove(during_gc)
        signal.signal(signal.SIGINT, before)
    assert rp.Interrupts.requested and looks == [0.01]


@pytest.mark.cluster
@pytest.mark.timeout(120)
def test_slurm__ctrl_c_stops_the_pipeline_with_exit_130_not_a_silent_success(certs, tmp_path):
    """Ctrl-C while the pipeline waits for its worker jobs: the cluster closes, one line says
    so, exit 130. (dask_jobqueue's own handler exited 0: an interrupted pipeline looked
    finished to the shell or job script that ran it.)"""
    proc = subprocess.Popen(
        [sys.executable, str(DEPLOY / "slurm" / "run_pipeline.py"), "--jobs", "0",
         "--interface", "lo", "--certs", str(certs), "info x.zarr"],
        cwd=tmp_path, env={**os.environ, "TMPDIR": str(tmp_path)},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        first = proc.stdout.readline()  # printed once the scheduler listens
        assert first.startswith("scheduler tls://127.0.0.1:"), first + proc.stderr.read()
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    assert err.strip().splitlines()[-1] == "error: interrupted; the worker jobs were cancelled"


def test_slurm__config_names_both_templates():
    cfg = yaml.safe_load((DEPLOY / "slurm" / "jobqueue.yaml").read_text())["jobqueue"]
    assert set(cfg) == {"chromestore-cpu", "chromestore-gpu"}
    for tpl in cfg.values():
        assert tpl["scheduler-options"]["dashboard_address"].startswith("127.0.0.1:")


def test_deploy_readme__names_every_file():
    text = (DEPLOY / "README.md").read_text()
    for f in DEPLOY.rglob("*"):
        if f.is_file() and f.name not in ("README.md", ".gitignore") and "certs" not in f.parts:
            assert f.name in text, f.name


def test_slurm__storage_options_are_redacted_when_printed():
    rp = _run_pipeline_module()
    so = {
        "endpoint_url": "http://minio:9000",
        "key": "AKIAEXAMPLE",
        "secret": "s3cr3t",
        "client_kwargs": {"aws_session_token": "T0KEN-VALUE"},
        "anon": False,
    }
    args, options = rp.split_step(f"info s3://lab/x.zarr --storage-options '{json.dumps(so)}'")
    assert args == ["info", "s3://lab/x.zarr"] and json.loads(options) == so
    quoted = shlex.quote(json.dumps(so))
    assert rp.split_step(f"info X --storage-options={quoted}")[1] == json.dumps(so)
    shown = rp.shown(args, options)
    assert "AKIAEXAMPLE" not in shown and "s3cr3t" not in shown and "T0KEN" not in shown
    assert json.loads(shlex.split(shown)[-1]) == {
        "endpoint_url": "http://minio:9000",
        "key": "***",
        "secret": "***",
        "client_kwargs": {"aws_session_token": "***"},
        "anon": False,
    }
    assert (
        rp.shown(args, "{not json, secret}") == "info s3://lab/x.zarr --storage-options "
        "'<not shown>'"
    )


@pytest.mark.cluster
@pytest.mark.timeout(180)
def test_slurm__steps_get_storage_options_from_the_environment_never_argv(
    certs, s3_server, capfd, monkeypatch
):  # noqa: F811
    from chromestore.simulation import simulate

    rp = _run_pipeline_module()
    s3_server.make_bucket("slurm")
    so = s3_server.options()
    simulate("s3://slurm/s.zarr", cells=1, genes=50, seed=0, storage_options=so)
    for k in [k for k in os.environ if k.startswith("AWS_")]:
        monkeypatch.delenv(k)  # only --storage-options can reach the bucket
    calls = []
    real_run = subprocess.run

    def spy(cmd, **kw):
        calls.append((cmd, kw["env"].get(rp.ENV_STORAGE_OPTIONS)))
        return real_run(cmd, **kw)

    monkeypatch.setattr(rp.subprocess, "run", spy)
    opt = shlex.quote(json.dumps(so))
    rc = rp.run_steps(
        "tls://127.0.0.1:1",
        [
            f"info s3://slurm/s.zarr --format json --storage-options {opt}",
            f"info s3://slurm/absent.zarr --storage-options {opt}",
            "info s3://slurm/s.zarr",  # never runs: the step before failed
        ],
        certs,
    )
    out, err = capfd.readouterr()
    assert rc == 1 and len(calls) == 2
    assert json.loads(out[out.index("\n{\n") : out.index("\n}\n") + 2])["cells"] == ["E003"]
    assert "error: s3://slurm/absent.zarr: no chromestore store here" in err
    assert "step failed (exit 1): chromestore info s3://slurm/absent.zarr" in err
    for secret in (so["key"], so["secret"]):
        assert secret not in out + err
        assert not any(secret in arg for cmd, _ in calls for arg in cmd)
    assert all(json.loads(env) == so for _, env in calls)
    assert out.count('"secret": "***"') == 2
