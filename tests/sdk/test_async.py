"""The SDKs' asyncio variants use a different HTTP stack (aiohttp + yarl); they must work too."""

from __future__ import annotations

import asyncio

from alibabacloud_eas20210701 import models as em
from alibabacloud_esa20240910 import models as sm

from support import EAS_REGION as R
from support import to_plain

import test_eas as eas_t
import test_esa as esa_t


def test_async_eas_rollout_calls(sim):
    name, _ = eas_t.seed_service(sim, replicas=2)

    async def run():
        eas = sim.eas()
        req = em.CreateServiceRolloutRequest(partition=em.CreateServiceRolloutRequestPartition(partition="1"))
        created = (await eas.create_service_rollout_async(R, name, req)).body
        paused = (await eas.update_service_rollout_async(R, name, em.UpdateServiceRolloutRequest(paused=True))).body
        described = (await eas.describe_service_rollout_async(R, name, em.DescribeServiceRolloutRequest())).body
        svc = (await eas.describe_service_async(R, name, em.DescribeServiceRequest())).body
        return created, paused, described, svc

    created, paused, described, svc = asyncio.run(run())
    assert created.request_id and paused.request_id
    assert described.rollout.strategy.partition.partition == "1", to_plain(described)
    assert svc.service_name == name and svc.total_instance == 2


def test_async_esa_calls_with_query_arrays_and_booleans(sim):
    app, (_, v1) = esa_t.seed_app(sim)
    name, (a, b) = esa_t.seed_routine(sim)

    async def run():
        esa = sim.esa()
        await esa.publish_edge_container_app_version_async(sm.PublishEdgeContainerAppVersionRequest(
            app_id=app, version_id=v1, publish_env="staging", publish_type="region",
            regions=["Europe"], full_release=False, remarks="async publish"))
        status = (await esa.get_edge_container_app_status_async(
            sm.GetEdgeContainerAppStatusRequest(app_id=app, publish_env="staging"))).body.app_status
        deployed = (await esa.create_routine_code_deployment_async(sm.CreateRoutineCodeDeploymentRequest(
            name=name, env="staging", strategy="percentage", code_versions=esa_t.split((a, 70), (b, 30))))).body
        routine = (await esa.get_routine_async(sm.GetRoutineRequest(name=name))).body
        return status, deployed, routine

    status, deployed, routine = asyncio.run(run())
    assert status.publishing_version == v1 and status.full_release is False, to_plain(status)
    assert status.regions.region == ["Europe"], to_plain(status)
    assert deployed.deployment_id
    staging = {e.env: e for e in routine.envs}["staging"].code_deploy
    assert sorted((v.code_version, v.percentage) for v in staging.code_versions) == sorted([(a, 70), (b, 30)])
