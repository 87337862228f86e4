"""Real Dask clusters, S3 servers and a headless browser for the ``cluster`` tests.

Everything binds to 127.0.0.1 and is started as a subprocess (or a thread) that the
fixture stops in its finalizer. Workers run without a nanny so that killing a worker's
process id is a real worker loss.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(predicate, timeout: float, what: str, proc: subprocess.Popen | None = None, log=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        if proc is not None and proc.poll() is not None:
            break
        time.sleep(0.1)
    tail = Path(log).read_text()[-3000:] if log and Path(log).exists() else ""
    raise RuntimeError(f"{what} did not happen within {timeout} s\n{tail}")


def stop(proc: subprocess.Popen, timeout: float = 10) -> None:
    """SIGTERM the process group, then SIGKILL what is left."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout)


def _spawn(cmd: list[str], log: Path, env: dict | None) -> subprocess.Popen:
    with open(log, "wb") as out:
        return subprocess.Popen(
            cmd,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
            start_new_session=True,
        )


@dataclass
class DaskProcs:
    """A scheduler and its workers, each a real process on 127.0.0.1."""

    directory: Path
    env: dict = field(default_factory=dict)
    protocol: str = "tcp"
    scheduler: subprocess.Popen | None = None
    address: str = ""
    dashboard_port: int = 0
    workers: dict[str, subprocess.Popen] = field(default_factory=dict)

    @property
    def dashboard(self) -> str:
        return f"http://127.0.0.1:{self.dashboard_port}"

    def start_scheduler(self, timeout: float = 60) -> str:
        sfile = self.directory / "scheduler.json"
        log = self.directory / "scheduler.log"
        cmd = [
            str(BIN / "dask"),
            "scheduler",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--protocol",
            self.protocol,
            "--dashboard-address",
            f"127.0.0.1:{free_port()}",
            "--scheduler-file",
            str(sfile),
        ]
        self.scheduler = _spawn(cmd, log, self.env)
        _wait(sfile.exists, timeout, "the scheduler file", self.scheduler, log)
        _wait(lambda: sfile.stat().st_size > 0, timeout, "the scheduler file", self.scheduler, log)
        info = json.loads(sfile.read_text())
        self.address = info["address"]
        self.dashboard_port = int(info["services"]["dashboard"])
        return self.address

    def start_worker(
        self,
        name: str,
        resources: str | None = None,
        nthreads: int = 1,
        timeout: float = 60,
        nanny: bool = False,
    ) -> subprocess.Popen:
        """A ``dask worker`` process (``nanny``: with its nanny, which starts the worker
        process with Dask's pre-spawn environment; else the worker alone)."""
        log = self.directory / f"worker-{name}.log"
        cmd = [
            str(BIN / "dask"),
            "worker",
            self.address,
            "--host",
            "127.0.0.1",
            "--name",
            name,
            "--nthreads",
            str(nthreads),
            *([] if nanny else ["--no-nanny"]),
            "--no-dashboard",
            "--memory-limit",
            "3GiB",
            "--local-directory",
            str(self.directory / f"w-{name}"),
        ]
        if resources:
            cmd += ["--resources", resources]
        proc = _spawn(cmd, log, self.env)
        self.workers[name] = proc
        _wait(
            lambda: b"Registered to" in log.read_bytes(),
            timeout,
            f"worker {name} registering",
            proc,
            log,
        )
        return proc

    def kill_worker(self, name: str) -> None:
        """SIGKILL a worker process: the scheduler learns of it only by the broken comm."""
        proc = self.workers[name]
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)

    def logs(self) -> str:
        return "\n".join(
            f"== {p.name}\n{p.read_text()[-2000:]}" for p in sorted(self.directory.glob("*.log"))
        )

    def close(self) -> None:
        for proc in self.workers.values():
            stop(proc)
        if self.scheduler is not None:
            stop(self.scheduler)


@pytest.fixture
def dask_procs(tmp_path) -> Iterator[DaskProcs]:
    """An empty DaskProcs; the test starts what it needs, the finalizer stops it all."""
    procs = DaskProcs(tmp_path / "dask")
    procs.directory.mkdir()
    yield procs
    procs.close()


@pytest.fixture(scope="module")
def dask_cluster(tmp_path_factory) -> Iterator[DaskProcs]:
    """`dask scheduler` + two `dask worker` processes on 127.0.0.1 (one offers GPU=1)."""
    procs = DaskProcs(tmp_path_factory.mktemp("dask"))
    try:
        procs.start_scheduler()
        procs.start_worker("cpu-0")
        procs.start_worker("gpu-0", resources="GPU=1")
        yield procs
    finally:
        procs.close()


@dataclass
class S3Server:
    """A running S3-compatible server and one IAM user's keys that may use all of S3."""

    endpoint: str
    key: str
    secret: str

    def options(self, **extra) -> dict:
        return {"endpoint_url": self.endpoint, "key": self.key, "secret": self.secret, **extra}

    def env(self) -> dict[str, str]:
        """The same credentials as botocore's environment chain reads them."""
        return {
            "AWS_ACCESS_KEY_ID": self.key,
            "AWS_SECRET_ACCESS_KEY": self.secret,
            "AWS_ENDPOINT_URL_S3": self.endpoint,
            "AWS_DEFAULT_REGION": "us-east-1",
        }

    def make_bucket(self, name: str) -> None:
        import s3fs

        s3fs.S3FileSystem(**self.options(), skip_instance_cache=True).mkdir(name)


@pytest.fixture(scope="module")
def s3_server(tmp_path_factory) -> Iterator[S3Server]:
    """`moto_server` on 127.0.0.1 at a free port, with authentication on.

    moto checks signatures and IAM policies once its first three requests (which create
    the user, its policy and its access key) are spent, so wrong keys are refused.
    """
    import boto3

    port = free_port()
    log = tmp_path_factory.mktemp("moto") / "moto.log"
    proc = _spawn(
        [str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
        log,
        {"INITIAL_NO_AUTH_ACTION_COUNT": "3"},
    )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        _wait(lambda: _answers(endpoint + "/moto-api/"), 60, "moto_server answering", proc, log)
        iam = boto3.client(
            "iam",
            endpoint_url=endpoint,
            region_name="us-east-1",
            aws_access_key_id="bootstrap",
            aws_secret_access_key="bootstrap",
        )
        iam.create_user(UserName="chromestore")
        iam.put_user_policy(
            UserName="chromestore",
            PolicyName="s3-all",
            PolicyDocument=json.dumps(
                {
                    "Version": "2012-10-17",
                    "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}],
                }
            ),
        )
        key = iam.create_access_key(UserName="chromestore")["AccessKey"]
        yield S3Server(endpoint, key["AccessKeyId"], key["SecretAccessKey"])
    finally:
        stop(proc)


def _answers(url: str) -> bool:
    try:
        urllib.request.urlopen(url, timeout=2)
        return True
    except OSError:
        return False


def chromium() -> str | None:
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    return "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None


def screenshot(
    url: str,
    out: Path,
    profile: Path,
    size: tuple[int, int] = (1280, 900),
    ready_js: str = "document.readyState === 'complete'",
    settle_s: float = 1.5,
    timeout: float = 90,
) -> Path:
    """A PNG of ``url`` from headless Chromium, taken once ``ready_js`` is true in the page.

    Pages that fill themselves over a websocket (the Bokeh dashboard) are not drawn when
    the load event fires, so Chromium is driven through the DevTools protocol on
    127.0.0.1: poll ``ready_js``, wait ``settle_s`` for drawing, then capture.
    """
    exe = chromium()
    if exe is None:
        pytest.skip("Debian chromium is not installed (apt-get install -y chromium)")
    cmd = [
        exe,
        *CHROMIUM_FLAGS,
        f"--user-data-dir={profile}",
        f"--window-size={size[0]},{size[1]}",
        "--remote-debugging-address=127.0.0.1",
        "--remote-debugging-port=0",
        url,
    ]
    log = Path(profile).with_suffix(".log")
    proc = _spawn(cmd, log, None)
    try:
        port_file = Path(profile) / "DevToolsActivePort"
        _wait(
            lambda: port_file.exists() and port_file.read_text().strip(),
            timeout,
            "chromium's DevTools port",
            proc,
            log,
        )
        port = int(port_file.read_text().split()[0])
        png = _cdp_capture(port, url, ready_js, settle_s, timeout)
    finally:
        stop(proc)
    out.write_bytes(png)
    return out


def _cdp_capture(port: int, url: str, ready_js: str, settle_s: float, timeout: float) -> bytes:
    import asyncio
    import base64

    from tornado.websocket import websocket_connect

    def page_ws() -> str | None:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=5) as r:
            pages = [p for p in json.load(r) if p.get("type") == "page"]
        return next((p["webSocketDebuggerUrl"] for p in pages if p["url"].startswith(url)), None)

    _wait(page_ws, timeout, f"a page for {url}")

    async def run() -> bytes:
        ws = await websocket_connect(page_ws())
        ids = iter(range(1, 10**6))

        async def call(method: str, **params):
            i = next(ids)
            ws.write_message(json.dumps({"id": i, "method": method, "params": params}))
            while True:
                msg = json.loads(await ws.read_message())
                if msg.get("id") == i:
                    if "error" in msg:
                        raise RuntimeError(f"{method}: {msg['error']}")
                    return msg["result"]

        deadline = time.monotonic() + timeout
        while True:
            res = await call(
                "Runtime.evaluate", expression=f"Boolean({ready_js})", returnByValue=True
            )
            if res["result"].get("value") is True:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"{url}: {ready_js} still false after {timeout} s")
            await asyncio.sleep(0.2)
        await asyncio.sleep(settle_s)
        shot = await call("Page.captureScreenshot", format="png")
        ws.close()
        return base64.b64decode(shot["data"])

    return asyncio.run(asyncio.wait_for(run(), timeout + 30))


BOKEH_RENDERED = (
    "window.Bokeh !== undefined && Bokeh.documents.length > 0 && "
    "Bokeh.documents[0].roots().length > 0"
)


def http_status(url: str, timeout: float = 10) -> int:
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.status
