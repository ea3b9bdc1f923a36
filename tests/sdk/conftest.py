"""Fixtures: the simulator (started here unless SIM_ENDPOINT is given) and fault hygiene.

`scripts/sdk-tests.sh` starts the simulator and passes its address in SIM_ENDPOINT. When
pytest is run directly without SIM_ENDPOINT, the session fixture starts the simulator
itself (binary from ALICLOUD_ROLLOUTS_BIN, or `debug/alicloud-rollouts` of the cargo target
directory, built if missing) and stops it at the end.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from support import Sim

# The SDK reads proxy variables itself and would send loopback traffic to a proxy.
for _var in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY", "all_proxy"):
    os.environ.pop(_var, None)

REPO = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _locate_binary() -> str:
    env = os.environ.get("ALICLOUD_ROLLOUTS_BIN")
    if env:
        return env
    target = os.environ.get("CARGO_TARGET_DIR")
    if not target:
        meta = subprocess.run(
            ["cargo", "metadata", "--format-version", "1", "--no-deps"],
            cwd=REPO, check=True, capture_output=True, text=True, timeout=120,
        )
        target = json.loads(meta.stdout)["target_directory"]
    path = Path(target) / "debug" / "alicloud-rollouts"
    if not path.exists():
        subprocess.run(["cargo", "build", "--bin", "alicloud-rollouts"], cwd=REPO, check=True, timeout=1800)
    return str(path)


def _wait_ready(endpoint: str, proc: subprocess.Popen | None, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"simulator exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(f"http://{endpoint}/_sim/state", timeout=2) as resp:
                if resp.status == 200:
                    return
        except Exception as err:  # noqa: BLE001 - any failure means "not yet"
            last = err
        time.sleep(0.1)
    raise RuntimeError(f"simulator at {endpoint} not ready after {timeout}s: {last}")


@pytest.fixture(scope="session")
def sim() -> Sim:
    time_scale = float(os.environ.get("SIM_TIME_SCALE", "10"))
    endpoint = os.environ.get("SIM_ENDPOINT")
    if endpoint:
        _wait_ready(endpoint, None)
        yield Sim(endpoint, time_scale)
        return
    proc, endpoint = start_simulator(["--demo"], time_scale)
    try:
        yield Sim(endpoint, time_scale)
    finally:
        stop_simulator(proc)


@pytest.fixture(scope="module")
def limited_sim() -> Sim:
    """A second simulator allowing only 3 requests per second per action."""
    proc, endpoint = start_simulator(["--rate-limit", "3"])
    try:
        yield Sim(endpoint, 1.0)
    finally:
        stop_simulator(proc)


def start_simulator(extra: list[str], time_scale: float = 1.0):
    endpoint = f"127.0.0.1:{_free_port()}"
    proc = subprocess.Popen(
        [_locate_binary(), "simulator", "--listen", endpoint, "--time-scale", str(time_scale), *extra],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        _wait_ready(endpoint, proc)
    except Exception:
        stop_simulator(proc)
        raise
    return proc, endpoint


def stop_simulator(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


@pytest.fixture
def faults(sim: Sim) -> Sim:
    """The simulator, with every injected fault cleared before and after the test."""
    sim.clear_faults()
    yield sim
    sim.clear_faults()
