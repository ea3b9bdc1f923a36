"""Wire-level details the SDK exercises: UTF-8 in query and form, big bodies, concurrency."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

from alibabacloud_eas20210701 import models as em
from alibabacloud_esa20240910 import models as sm

from support import EAS_REGION as R
from support import to_plain, wait_for

import test_eas as eas_t
import test_esa as esa_t


def test_utf8_in_query_and_form_is_signed_correctly(sim):
    esa = sim.esa()
    app, (_, v1) = esa_t.seed_app(sim)
    # Query: UTF-8 bytes percent-encoded, a space sent as '+', signed as %20.
    body = esa.list_edge_container_app_versions(sm.ListEdgeContainerAppVersionsRequest(
        app_id=app, search_key="回滚 版本~", search_type="Remarks")).body
    assert body.request_id and body.total_count == 0, to_plain(body)
    # Form body: UTF-8 remarks.
    esa_t.publish(esa, app, v1, env="staging", percentage=10, remarks="灰度发布 10% — ok")
    st = esa_t.app_status(esa, app, "staging")
    assert st.publishing_version == v1, to_plain(st)


def test_large_json_body(sim):
    eas = sim.eas()
    name, _ = eas_t.seed_service(sim, replicas=1)
    image = f"registry.example/{name}:big"
    env = [{"name": f"VAR_{i}", "value": "x" * 200} for i in range(300)]  # ~70 KB
    config = {"containers": [{"image": image, "env": env}]}
    req = em.UpdateServiceRequest(body=json.dumps(config))
    assert eas.update_service(R, name, req).body.request_id
    svc = wait_for(lambda: eas_t.describe(eas, name), lambda s: s.latest_version == 2, timeout=5,
                   what="version 2 recorded")
    assert len(json.loads(svc.service_config)["containers"][0]["env"]) == 300


def test_concurrent_sdk_clients(sim):
    def worker(i):
        client = sim.eas() if i % 2 else sim.esa()
        results = []
        for _ in range(10):
            if i % 2:
                results.append(client.describe_service(R, "llm-chat", em.DescribeServiceRequest()).body.service_name)
            else:
                results.append(bool(client.get_routine(sm.GetRoutineRequest(name="edge-auth")).body.request_id))
        return results

    with ThreadPoolExecutor(max_workers=8) as pool:
        outcomes = list(pool.map(worker, range(8)))
    for i, results in enumerate(outcomes):
        assert results == (["llm-chat"] * 10 if i % 2 else [True] * 10)
