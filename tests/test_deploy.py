"""deploy/: the container, compose, Kubernetes and SLURM files parse, agree and work.

No docker engine or SLURM here: compose and the manifests are parsed and checked
against the repository (image tag = package version, commands = real CLI commands);
the TLS settings and the SLURM job script are run for real, with real processes on
127.0.0.1.
"""

from __future__ import annotations

import importlib.util
import re
import shlex
import subprocess
import tomllib
from pathlib import Path

import pytest
import yaml
from distributed import Client, Security

from chromestore.app.cli import main as cli_main
from tests.cluster_fixtures import DaskProcs, _spawn, _wait, dask_procs, stop  # noqa: F401

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
    assert compose({"MINIO_ROOT_PASSWORD": "pw", "CPU_WORKERS": "8"})["services"]["worker"][
        "deploy"]["replicas"] == 8


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
    assert "mc mb --ignore-existing store/chromestore" in c["services"]["createbucket"]["entrypoint"]
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
    steps = [shlex.split(line.strip().rstrip("\\"))
             for line in job["args"][0].splitlines() if line.strip().startswith("chromestore ")]
    assert steps and all(s[1] in cli_main.commands for s in steps), steps


# --- TLS with real processes ---------------------------------------------------------------


@pytest.fixture(scope="module")
def certs(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("tls") / "certs"
    subprocess.run([str(DEPLOY / "tls" / "make-certs.sh"), str(out)], check=True,
                   capture_output=True, timeout=60)
    return out


def _tls_config_dir(certs: Path, where: Path) -> Path:
    """deploy/tls/dask-tls.yaml with /etc/dask/tls pointed at ``certs``."""
    where.mkdir(exist_ok=True)
    text = (DEPLOY / "tls" / "dask-tls.yaml").read_text().replace("/etc/dask/tls", str(certs))
    (where / "dask-tls.yaml").write_text(text)
    return where


@pytest.mark.cluster
@pytest.mark.timeout(180)
def test_tls_settings__real_scheduler_and_worker_speak_tls_only(certs, dask_procs, tmp_path):  # noqa: F811
    other = tmp_path / "other-ca"
    subprocess.run([str(DEPLOY / "tls" / "make-certs.sh"), str(other)], check=True,
                   capture_output=True, timeout=60)
    conf = _tls_config_dir(certs, tmp_path / "dask-config")
    dask_procs.env = {"DASK_CONFIG": str(conf)}
    dask_procs.protocol = "tls"
    address = dask_procs.start_scheduler()
    assert address.startswith("tls://127.0.0.1:")
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
    return Security(
        tls_ca_file=str(certs / "ca.pem"), tls_client_cert=str(certs / "node.pem"),
        tls_client_key=str(certs / "node-key.pem"), require_encryption=True,
    )


# --- SLURM ---------------------------------------------------------------------------------


def _run_pipeline_module():
    spec = importlib.util.spec_from_file_location("run_pipeline", DEPLOY / "slurm" / "run_pipeline.py")
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
            assert f"--tls-ca-file {certs / 'ca.pem'}" in script
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
