"""Helpers shared by the SDK tests: the simulator handle, its admin API, polling."""

from __future__ import annotations

import json
import secrets
import time
import urllib.error
import urllib.request
from typing import Any, Callable

from alibabacloud_eas20210701.client import Client as EasClient
from alibabacloud_esa20240910.client import Client as EsaClient
from alibabacloud_tea_openapi.utils_models import Config

DEFAULT_AK = "testid"
DEFAULT_SECRET = "testsecret"
EAS_REGION = "cn-shanghai"
ESA_REGION = "cn-hangzhou"


class Sim:
    """A running simulator: its endpoint and its unsigned admin API under /_sim/."""

    def __init__(self, endpoint: str, time_scale: float) -> None:
        self.endpoint = endpoint
        self.time_scale = time_scale

    # -------------------------------------------------------------- admin API
    def admin(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(f"http://{self.endpoint}/_sim/{path}", data=data, method=method)
        if data is not None:
            req.add_header("content-type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                raw = resp.read()
        except urllib.error.HTTPError as err:
            raise AssertionError(f"admin {method} /_sim/{path} -> {err.code}: {err.read()!r}") from err
        return json.loads(raw) if raw.strip() else None

    def seed(self, **objects: Any) -> None:
        self.admin("POST", "seed", objects)

    def add_fault(self, **fault: Any) -> Any:
        return self.admin("POST", "faults", fault)

    def clear_faults(self) -> None:
        self.admin("DELETE", "faults")

    def calls(self) -> dict:
        return self.admin("GET", "calls")

    def state(self) -> Any:
        return self.admin("GET", "state")

    # -------------------------------------------------------------- time
    def sim_seconds(self, seconds: float) -> float:
        """Real seconds that `seconds` of simulated delay take."""
        return seconds / self.time_scale

    # -------------------------------------------------------------- clients
    def config(self, region: str, ak: str = DEFAULT_AK, secret: str = DEFAULT_SECRET,
               token: str | None = None, read_timeout_ms: int = 10000) -> Config:
        return Config(
            access_key_id=ak,
            access_key_secret=secret,
            security_token=token,
            endpoint=self.endpoint,
            protocol="http",
            region_id=region,
            read_timeout=read_timeout_ms,
            connect_timeout=5000,
        )

    def eas(self, **kw: Any) -> EasClient:
        return EasClient(self.config(EAS_REGION, **kw))

    def esa(self, **kw: Any) -> EsaClient:
        return EsaClient(self.config(ESA_REGION, **kw))



def uid(prefix: str) -> str:
    """A name no other test uses (lowercase letters and digits)."""
    return f"{prefix}{secrets.token_hex(4)}"


def digits(n: int = 16) -> str:
    """A random decimal id of n digits (not starting with 0)."""
    return str(secrets.randbelow(9 * 10 ** (n - 1)) + 10 ** (n - 1))


def wait_for(fetch: Callable[[], Any], done: Callable[[Any], bool], timeout: float,
             interval: float = 0.05, what: str = "condition") -> Any:
    """Call fetch() until done(value) holds; bounded by timeout (real seconds)."""
    deadline = time.monotonic() + timeout
    value = fetch()
    while not done(value):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}; last value: {value!r}")
        time.sleep(interval)
        value = fetch()
    return value


def to_plain(model: Any) -> Any:
    """A typed SDK response as a plain dict (for failure messages)."""
    return model.to_map() if hasattr(model, "to_map") else model
