"""CloudMonitor (RPC, 2019-01-01) driven by the official `alibabacloud_cms20190101` SDK:
DescribeMetricLast and DescribeMetricList for the PAI-EAS service metrics (`acs_pai_eas`),
answered from the simulator's traffic model, where a service whose image is marked bad
answers with a high 5xx ratio and slowly."""

from __future__ import annotations

import json
import time

import pytest
from alibabacloud_cms20190101 import models as m
from alibabacloud_cms20190101.client import Client as CmsClient
from alibabacloud_tea_openapi.exceptions import ClientException

from support import EAS_REGION, to_plain, uid, wait_for

NS = "acs_pai_eas"


def cms(sim) -> CmsClient:
    return CmsClient(sim.config(EAS_REGION))


def seed_service(sim, image_tag: str) -> str:
    name = uid("sdk-cms-")
    sim.seed(services=[{
        "name": name, "region": EAS_REGION, "replicas": 2,
        "config": {"metadata": {"name": name, "instance": 2},
                   "containers": [{"image": f"registry/demo/{name}:{image_tag}"}]},
    }])
    return name


def last(client: CmsClient, metric: str, service: str):
    req = m.DescribeMetricLastRequest(
        namespace=NS, metric_name=metric, period="60",
        dimensions=json.dumps([{"serviceName": service}]),
    )
    body = client.describe_metric_last(req).body
    assert body.success is True and body.code == "200", to_plain(body)
    assert body.request_id
    return json.loads(body.datapoints)


def value(points, service: str) -> float:
    assert len(points) == 1, points
    assert points[0]["serviceName"] == service
    assert isinstance(points[0]["timestamp"], int)
    return points[0]["Average"]


def test_a_bad_image_shows_a_high_5xx_ratio_and_a_good_one_a_low_one(sim):
    client = cms(sim)
    good, bad = seed_service(sim, "v1"), seed_service(sim, "v2-bad")
    # Traffic accrues on the simulator's clock; give it a couple of seconds.
    time.sleep(2.5)
    ratio_good = value(last(client, "5xxResponseRatio", good), good)
    ratio_bad = value(last(client, "5xxResponseRatio", bad), bad)
    assert ratio_good < 10 < 40 < ratio_bad, (ratio_good, ratio_bad)
    tp99_good = value(last(client, "ResponseTimeTP99", good), good)
    tp99_bad = value(last(client, "ResponseTimeTP99", bad), bad)
    assert tp99_good < 300 < 1000 < tp99_bad, (tp99_good, tp99_bad)
    assert value(last(client, "QueryPerSecondTotal", good), good) > 0


def test_metric_list_answers_datapoints_of_whole_periods(sim):
    client = cms(sim)
    name = "llm-chat"  # the demo service, serving since the simulator started
    now_ms = int(time.time() * 1000)
    req = m.DescribeMetricListRequest(
        namespace=NS, metric_name="5xxResponseRatio", period="5",
        start_time=str(now_ms - 60_000), dimensions=json.dumps({"serviceId": name}),
    )

    def fetch():
        req.end_time = str(int(time.time() * 1000))
        return client.describe_metric_list(req).body

    body = wait_for(fetch, lambda b: len(json.loads(b.datapoints)) >= 2, timeout=30)
    points = json.loads(body.datapoints)
    assert body.period == "5" and body.success is True
    stamps = [p["timestamp"] for p in points]
    assert stamps == sorted(stamps) and all(t % 5000 == 0 for t in stamps), stamps
    assert all(p["serviceId"] == name and p["Average"] < 10 for p in points), points


def test_an_unknown_namespace_or_metric_is_refused(sim):
    client = cms(sim)
    with pytest.raises(ClientException) as err:
        client.describe_metric_last(m.DescribeMetricLastRequest(namespace="acs_ecs_dashboard", metric_name="cpu_idle"))
    assert err.value.code == "InvalidParameter" and NS in err.value.message
    with pytest.raises(ClientException) as err:
        client.describe_metric_last(m.DescribeMetricLastRequest(namespace=NS, metric_name="NoSuchMetric"))
    assert err.value.code == "InvalidParameter"


def test_calls_are_signed(sim):
    bad_key = CmsClient(sim.config(EAS_REGION, secret="wrong"))
    with pytest.raises(ClientException) as err:
        bad_key.describe_metric_last(m.DescribeMetricLastRequest(namespace=NS, metric_name="QueryPerSecondTotal"))
    assert err.value.code in ("SignatureDoesNotMatch", "IncompleteSignature", "InvalidAccessKeyId.NotFound"), err.value.code
    assert sim.calls().get("DescribeMetricLast", 0) >= 1
