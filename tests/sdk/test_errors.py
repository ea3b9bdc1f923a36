"""Error answers as the official SDK surfaces them: exception class, code, status, message."""

from __future__ import annotations

import json
import time
import urllib.parse
import urllib.request

import pytest
from alibabacloud_eas20210701 import models as em
from alibabacloud_esa20240910 import models as sm
from alibabacloud_tea_openapi import utils as openapi_utils
from alibabacloud_tea_openapi import utils_models as open_api_models
from alibabacloud_tea_openapi.exceptions import ClientException, ServerException, ThrottlingException
from darabonba.exceptions import UnretryableException
from darabonba.runtime import RuntimeOptions

from support import EAS_REGION as R
from support import digits, uid

import test_eas as eas_t
import test_esa as esa_t


def expect(exc_type, code, status, call, message_part=None):
    with pytest.raises(exc_type) as info:
        call()
    err = info.value
    assert err.code == code, f"code {err.code!r} (message {err.message!r})"
    assert err.status_code == status, f"status {err.status_code} for {err.code}"
    assert err.statusCode == status
    assert isinstance(err.data, dict) and err.data.get("Code") == code, err.data
    assert err.data.get("RequestId"), f"error body without RequestId: {err.data}"
    assert "HostId" in err.data and err.data.get("Message"), f"error body shape: {err.data}"
    assert err.message.startswith(f"code: {status}, "), err.message
    if message_part is not None:
        assert message_part.lower() in err.message.lower(), err.message
    return err


def describe_demo(client):
    return lambda: client.describe_service(R, "llm-chat", em.DescribeServiceRequest())


# ---------------------------------------------------------------- authentication
def test_wrong_secret_is_a_signature_mismatch(sim):
    eas = sim.eas(secret="not-the-secret")
    expect(ClientException, "SignatureDoesNotMatch", 400, describe_demo(eas))
    esa = sim.esa(secret="not-the-secret")
    expect(ClientException, "SignatureDoesNotMatch", 400,
           lambda: esa.get_routine(sm.GetRoutineRequest(name="edge-auth")))


def test_unknown_access_key(sim):
    eas = sim.eas(ak="LTAInobodyHasThisKey")
    expect(ClientException, "InvalidAccessKeyId.NotFound", 404, describe_demo(eas))


def test_stale_date_is_rejected(sim, monkeypatch):
    monkeypatch.setattr(openapi_utils.Utils, "get_timestamp", staticmethod(lambda: "2020-01-01T00:00:00Z"))
    expect(ClientException, "InvalidTimeStamp.Expired", 400, describe_demo(sim.eas()))


def test_reused_nonce_is_rejected(sim, monkeypatch):
    nonce = digits(32)
    monkeypatch.setattr(openapi_utils.Utils, "get_nonce", staticmethod(lambda: nonce))
    eas = sim.eas()
    describe_demo(eas)()
    expect(ClientException, "SignatureNonceUsed", 400, describe_demo(eas))


# ---------------------------------------------------------------- STS
def assume_role_with_oidc(sim, token="eyJhbGciOiJSUzI1NiJ9.test.sig"):
    """The request alibabacloud_credentials' OIDC provider sends (it hardcodes https, so it is rebuilt here)."""
    query = {
        "Action": "AssumeRoleWithOIDC", "Format": "JSON", "Version": "2015-04-01",
        "DurationSeconds": "3600", "RoleArn": "acs:ram::1234567890123456:role/rollouts",
        "OIDCProviderArn": "acs:ram::1234567890123456:oidc-provider/ack-rrsa",
        "OIDCToken": token, "RoleSessionName": "alicloud-rollouts",
        "Timestamp": openapi_utils.Utils.get_timestamp(),
    }
    url = f"http://{sim.endpoint}/?{urllib.parse.urlencode(query)}"
    with urllib.request.urlopen(url, timeout=10) as resp:
        assert resp.status == 200
        return json.loads(resp.read())


def test_sts_credentials_from_oidc_sign_requests(sim):
    answer = assume_role_with_oidc(sim)
    assert "Credentials" in answer, answer
    creds = answer["Credentials"]
    for key in ("AccessKeyId", "AccessKeySecret", "SecurityToken", "Expiration"):
        assert isinstance(creds.get(key), str) and creds[key], answer
    # The credentials library parses Expiration with this exact format.
    time.strptime(creds["Expiration"], "%Y-%m-%dT%H:%M:%SZ")

    eas = sim.eas(ak=creds["AccessKeyId"], secret=creds["AccessKeySecret"], token=creds["SecurityToken"])
    assert eas.describe_service(R, "llm-chat", em.DescribeServiceRequest()).body.service_name == "llm-chat"
    esa = sim.esa(ak=creds["AccessKeyId"], secret=creds["AccessKeySecret"], token=creds["SecurityToken"])
    assert esa.get_routine(sm.GetRoutineRequest(name="edge-auth")).body.request_id

    # The STS key without its token, and with somebody else's token, is refused.
    bare = sim.eas(ak=creds["AccessKeyId"], secret=creds["AccessKeySecret"])
    expect(ClientException, "InvalidSecurityToken.MismatchWithAccessKey", 400, describe_demo(bare))
    other = assume_role_with_oidc(sim)["Credentials"]
    mixed = sim.eas(ak=creds["AccessKeyId"], secret=creds["AccessKeySecret"], token=other["SecurityToken"])
    expect(ClientException, "InvalidSecurityToken.MismatchWithAccessKey", 400, describe_demo(mixed))
    forged = sim.eas(ak=creds["AccessKeyId"], secret=creds["AccessKeySecret"], token="forged-token")
    with pytest.raises(ClientException) as info:
        describe_demo(forged)()
    assert info.value.code in ("InvalidSecurityToken.Malformed", "InvalidSecurityToken.MismatchWithAccessKey")


# ---------------------------------------------------------------- EAS validation
def test_unknown_service(sim):
    eas = sim.eas()
    expect(ClientException, "InvalidService.NotFound", 404,
           lambda: eas.describe_service(R, uid("nosuchsvc"), em.DescribeServiceRequest()))
    expect(ClientException, "InvalidService.NotFound", 404,
           lambda: eas.describe_service_rollout(R, uid("nosuchsvc"), em.DescribeServiceRolloutRequest()))
    # Services live in one region: the demo service is not found under another ClusterId.
    expect(ClientException, "InvalidService.NotFound", 404,
           lambda: eas.describe_service("cn-hangzhou", "llm-chat", em.DescribeServiceRequest()))


def test_no_rollout_yet(sim):
    eas = sim.eas()
    name, _ = eas_t.seed_service(sim, replicas=2)
    expect(ClientException, "InvalidRollout.NotFound", 404,
           lambda: eas.describe_service_rollout(R, name, em.DescribeServiceRolloutRequest()))
    expect(ClientException, "InvalidRollout.NotFound", 404, lambda: eas_t.set_paused(eas, name, True))
    expect(ClientException, "InvalidRollout.NotFound", 404,
           lambda: eas.delete_service_rollout(R, name, em.DeleteServiceRolloutRequest()))


def test_rollout_twice_and_not_enabled(sim):
    eas = sim.eas()
    name, _ = eas_t.seed_service(sim, replicas=2)
    eas_t.create_partition(eas, name, "1")
    expect(ClientException, "InvalidRollout.AlreadyExists", 400, lambda: eas_t.create_partition(eas, name, "1"))
    plain, _ = eas_t.seed_service(sim, replicas=2, enabled=False)
    expect(ClientException, "InvalidRollout.NotEnabled", 400, lambda: eas_t.create_partition(eas, plain, "1"))


def test_partition_and_batch_together_rejected(sim):
    eas = sim.eas()
    name, _ = eas_t.seed_service(sim, replicas=2)
    both = em.CreateServiceRolloutRequest(
        partition=em.CreateServiceRolloutRequestPartition(partition="1"),
        batch=em.CreateServiceRolloutRequestBatch(batch_size="1", interval="1m"))
    expect(ClientException, "InvalidParameter", 400, lambda: eas.create_service_rollout(R, name, both))
    eas_t.create_partition(eas, name, "1")
    both_upd = em.UpdateServiceRolloutRequest(
        partition=em.UpdateServiceRolloutRequestPartition(partition="1"),
        batch=em.UpdateServiceRolloutRequestBatch(batch_size="1", interval="1m"))
    expect(ClientException, "InvalidParameter", 400, lambda: eas.update_service_rollout(R, name, both_upd))
    # The failed update changed nothing.
    strategy = eas_t.rollout(eas, name).rollout.strategy
    assert strategy.partition.partition == "1" and strategy.batch is None


@pytest.mark.parametrize("partition", ["abc", "-1", "150%", "1.5"])
def test_bad_partition_value(sim, partition):
    eas = sim.eas()
    name, _ = eas_t.seed_service(sim, replicas=2)
    expect(ClientException, "InvalidParameter", 400, lambda: eas_t.create_partition(eas, name, partition))


@pytest.mark.parametrize("interval", ["5x", "m", "-5m"])
def test_bad_batch_interval(sim, interval):
    eas = sim.eas()
    name, _ = eas_t.seed_service(sim, replicas=2)
    expect(ClientException, "InvalidParameter", 400, lambda: eas_t.create_batch(eas, name, "1", interval))


def test_update_rollout_with_nothing_to_update(sim):
    eas = sim.eas()
    name, _ = eas_t.seed_service(sim, replicas=2)
    eas_t.create_partition(eas, name, "1")
    expect(ClientException, "InvalidParameter", 400,
           lambda: eas.update_service_rollout(R, name, em.UpdateServiceRolloutRequest()))


def test_unknown_service_version(sim):
    eas = sim.eas()
    name, _ = eas_t.seed_service(sim, replicas=2)
    expect(ClientException, "InvalidParameter", 400,
           lambda: eas.update_service_version(R, name, em.UpdateServiceVersionRequest(version=99)))


def test_update_service_with_malformed_json(sim):
    eas = sim.eas()
    name, _ = eas_t.seed_service(sim, replicas=2)
    expect(ClientException, "InvalidParameter", 400,
           lambda: eas.update_service(R, name, em.UpdateServiceRequest(body='{"containers": [')))
    assert eas_t.describe(eas, name).latest_version == 1, "a rejected update creates no version"


def test_update_service_version_zero(sim):
    eas = sim.eas()
    name, _ = eas_t.seed_service(sim, replicas=2)
    expect(ClientException, "InvalidParameter", 400,
           lambda: eas.update_service_version(R, name, em.UpdateServiceVersionRequest(version=0)))


# ---------------------------------------------------------------- generic SDK calls
def generic_call(client, action, version):
    params = open_api_models.Params(
        action=action, version=version, protocol="HTTPS", pathname="/", method="POST",
        auth_type="AK", style="RPC", req_body_type="formData", body_type="json")
    req = open_api_models.OpenApiRequest(body={"Name": "edge-auth"})
    return lambda: client.call_api(params, req, RuntimeOptions())


def test_wrong_api_version_is_rejected(sim):
    expect(ClientException, "InvalidVersion", 400, generic_call(sim.esa(), "GetRoutine", "2019-01-01"))
    # The same generic call with the right version succeeds, so only the version was wrong.
    assert generic_call(sim.esa(), "GetRoutine", "2024-09-10")()["body"]["RequestId"]


def test_unknown_action_is_not_found(sim):
    expect(ClientException, "InvalidAction.NotFound", 404, generic_call(sim.esa(), "DescribeNothing", "2024-09-10"))


# ---------------------------------------------------------------- ESA routine validation
def test_code_versions_must_sum_to_100(sim):
    esa = sim.esa()
    name, (a, b) = esa_t.seed_routine(sim)
    expect(ClientException, "InvalidParameter", 400,
           lambda: esa_t.deploy(esa, name, "production", (a, 90), (b, 9)))
    assert esa_t.env_split(esa, name, "production")[1] == [(a, 100)], "a rejected deployment changes nothing"


def test_at_most_two_code_versions(sim):
    esa = sim.esa()
    name, (a, b, c) = esa_t.seed_routine(sim, versions=3)
    expect(ClientException, "InvalidParameter", 400,
           lambda: esa_t.deploy(esa, name, "production", (a, 40), (b, 30), (c, 30)))


def test_code_version_percentage_range_and_strategy(sim):
    esa = sim.esa()
    name, (a, b) = esa_t.seed_routine(sim)
    expect(ClientException, "InvalidParameter", 400,
           lambda: esa_t.deploy(esa, name, "production", (a, 100), (b, 0)))
    bad_strategy = sm.CreateRoutineCodeDeploymentRequest(
        name=name, env="production", strategy="canary", code_versions=esa_t.split((a, 100)))
    expect(ClientException, "InvalidParameter", 400, lambda: esa.create_routine_code_deployment(bad_strategy))


def test_routine_code_versions_page_size_limit(sim):
    esa = sim.esa()
    name, _ = esa_t.seed_routine(sim)
    expect(ClientException, "InvalidParameter", 400, lambda: esa.list_routine_code_versions(
        sm.ListRoutineCodeVersionsRequest(name=name, page_size=21)))


def test_routine_env_uses_production_not_prod(sim):
    esa = sim.esa()
    name, (a, _) = esa_t.seed_routine(sim)
    expect(ClientException, "InvalidParameter", 400, lambda: esa_t.deploy(esa, name, "prod", (a, 100)))


def test_unknown_code_version(sim):
    esa = sim.esa()
    name, (a, _) = esa_t.seed_routine(sim)
    expect(ClientException, "InvalidParameter", 400,
           lambda: esa_t.deploy(esa, name, "production", (a, 50), (digits(19), 50)))


def test_unknown_routine(sim):
    esa = sim.esa()
    missing = uid("sdk-missing-")
    expect(ClientException, "RoutineNotExist", 400, lambda: esa.get_routine(sm.GetRoutineRequest(name=missing)))
    expect(ClientException, "RoutineNotExist", 400,
           lambda: esa_t.deploy(esa, missing, "production", (digits(19), 100)))


def test_missing_routine_name(sim):
    esa = sim.esa()
    expect(ClientException, "MissingParameter", 400, lambda: esa.get_routine(sm.GetRoutineRequest()), "Name")


# ---------------------------------------------------------------- ESA app validation
def test_publish_env_invalid(sim):
    esa = sim.esa()
    app, (_, v1) = esa_t.seed_app(sim)
    expect(ClientException, "InvalidParameter.PublishEnv", 400, lambda: esa_t.publish(esa, app, v1, env="production"))


@pytest.mark.parametrize("percentage", [0, 101, -5])
def test_publish_percentage_out_of_range(sim, percentage):
    esa = sim.esa()
    app, (_, v1) = esa_t.seed_app(sim)
    expect(ClientException, "InvalidParameter.Percentage", 400,
           lambda: esa_t.publish(esa, app, v1, percentage=percentage))
    st = esa_t.app_status(esa, app)
    assert st.publish_status == "published" and st.publishing_version in (None, "", st.deployed_version)


def test_version_id_must_start_with_ver(sim):
    esa = sim.esa()
    app, _ = esa_t.seed_app(sim)
    expect(ClientException, "InvalidParameter.VersionId", 400, lambda: esa_t.publish(esa, app, "v-123"))
    expect(ClientException, "InvalidParameter.VersionId", 400, lambda: esa.rollback_edge_container_app_version(
        sm.RollbackEdgeContainerAppVersionRequest(app_id=app, version_id="123")))


def test_unknown_app_version(sim):
    esa = sim.esa()
    app, _ = esa_t.seed_app(sim)
    expect(ClientException, "InvalidVersion.NotFound", 404, lambda: esa_t.publish(esa, app, f"ver-{digits(16)}"))


def test_unknown_or_malformed_app(sim):
    esa = sim.esa()
    missing = f"app-{digits(16)}"
    expect(ClientException, "InvalidApp.NotFound", 404, lambda: esa_t.app_status(esa, missing))
    expect(ClientException, "InvalidApp.NotFound", 404, lambda: esa_t.publish(esa, missing, f"ver-{digits(16)}"))
    expect(ClientException, "InvalidApp.NotFound", 404, lambda: esa.list_edge_container_app_versions(
        sm.ListEdgeContainerAppVersionsRequest(app_id=missing)))
    expect(ClientException, "InvalidParameter.appid", 400, lambda: esa_t.app_status(esa, "not-an-app"))


# ---------------------------------------------------------------- injected faults
def test_injected_500_is_a_server_exception(faults):
    eas = faults.eas()
    faults.add_fault(action="DescribeService", kind="error", status=500, code="InternalError", count=1)
    expect(ServerException, "InternalError", 500, describe_demo(eas))
    # count=1: the next call goes through, and other actions were never affected.
    assert eas.describe_service(R, "llm-chat", em.DescribeServiceRequest()).body.service_name == "llm-chat"


def test_injected_503_defaults_to_service_unavailable(faults):
    esa = faults.esa()
    faults.add_fault(action="GetRoutine", kind="error", status=503)
    expect(ServerException, "ServiceUnavailable", 503, lambda: esa.get_routine(sm.GetRoutineRequest(name="edge-auth")))
    # Scoped to GetRoutine: another action still answers.
    esa.list_routine_code_versions(sm.ListRoutineCodeVersionsRequest(name="edge-auth"))


def test_injected_throttle_is_a_throttling_exception(faults):
    eas = faults.eas()
    faults.add_fault(action="DescribeServiceRollout", kind="throttle", retryAfterSeconds=2, count=1)
    with pytest.raises(ThrottlingException) as info:
        eas.describe_service_rollout(R, "llm-chat", em.DescribeServiceRolloutRequest())
    err = info.value
    assert err.code == "Throttling.User"
    assert err.status_code == 400
    # The SDK treats x-acs-retry-after as milliseconds (it sleeps that many ms, capped at
    # 120000): a 2 s retry-after must reach it as 2000.
    assert err.retry_after == 2000
    assert err.message.startswith("code: 400, ")


def test_injected_error_without_retry_after_is_client_side_throttling(faults):
    esa = faults.esa()
    faults.add_fault(action="GetEdgeContainerAppStatus", kind="error", status=429, code="TooManyRequests", count=1)
    expect(ClientException, "TooManyRequests", 429, lambda: esa_t.app_status(esa, "app-8806886757837900"))


def test_dropped_connection_surfaces_as_unretryable(faults):
    eas = faults.eas()
    faults.add_fault(action="DescribeService", kind="drop", count=1)
    with pytest.raises(UnretryableException):
        eas.describe_service(R, "llm-chat", em.DescribeServiceRequest())


def test_injected_latency_hits_the_sdk_read_timeout(faults):
    eas = faults.eas(read_timeout_ms=300)
    faults.add_fault(action="DescribeService", kind="latency", latencyMs=1500, count=1)
    with pytest.raises(UnretryableException):
        eas.describe_service(R, "llm-chat", em.DescribeServiceRequest())


def test_rate_limit_answers_throttling_user(limited_sim):
    """--rate-limit 3: a burst of calls to one action is cut off with Throttling.User."""
    eas = limited_sim.eas()
    name = "ratelimited"
    limited_sim.seed(services=[{"name": name, "region": R, "replicas": 1}])
    outcomes = []
    start = time.monotonic()
    for _ in range(8):
        try:
            eas.describe_service(R, name, em.DescribeServiceRequest())
            outcomes.append("ok")
        except ClientException as err:
            assert err.code == "Throttling.User" and err.status_code == 400, (err.code, err.message)
            outcomes.append("throttled")
    elapsed = time.monotonic() - start
    assert elapsed < 1.0, f"burst too slow to test the limit: {elapsed:.2f}s"
    assert outcomes[:3] == ["ok"] * 3, outcomes
    assert "throttled" in outcomes, outcomes
    # Another action has its own budget.
    esa_routine = limited_sim.esa()
    with pytest.raises(ClientException) as info:
        esa_routine.get_routine(sm.GetRoutineRequest(name="missing-routine"))
    assert info.value.code == "RoutineNotExist"
    # A second later the action is allowed again.
    time.sleep(1.1)
    assert eas.describe_service(R, name, em.DescribeServiceRequest()).body.service_name == name


def test_calls_are_counted_including_rejected_ones(faults):
    faults.admin("DELETE", "calls")
    eas = faults.eas()
    eas.describe_service(R, "llm-chat", em.DescribeServiceRequest())
    with pytest.raises(ClientException):
        eas.describe_service(R, uid("nosuchsvc"), em.DescribeServiceRequest())
    assert faults.calls().get("DescribeService") == 2, faults.calls()
