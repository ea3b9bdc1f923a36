"""ESA (RPC) routine and edge container app operations driven by `alibabacloud_esa20240910`."""

from __future__ import annotations

import datetime as dt
import time

from alibabacloud_esa20240910 import models as m

from support import digits, to_plain, uid, wait_for


# ---------------------------------------------------------------- routines
def seed_routine(sim, versions: int = 2, deployed: bool = True):
    name = uid("sdk-routine-")
    codes = [digits(19) for _ in range(versions)]
    routine = {"name": name, "codeVersions": codes}
    if deployed:
        routine["deployed"] = codes[0]
    sim.seed(routines=[routine])
    return name, codes


def split(*pairs):
    return [m.CreateRoutineCodeDeploymentRequestCodeVersions(code_version=c, percentage=p) for c, p in pairs]


def deploy(esa, name, env, *pairs):
    req = m.CreateRoutineCodeDeploymentRequest(name=name, env=env, strategy="percentage", code_versions=split(*pairs))
    return esa.create_routine_code_deployment(req).body


def env_split(esa, name, env):
    body = esa.get_routine(m.GetRoutineRequest(name=name)).body
    envs = {e.env: e for e in body.envs}
    assert env in envs, to_plain(body)
    deploy_ = envs[env].code_deploy
    return deploy_, sorted((v.code_version, v.percentage) for v in deploy_.code_versions)


def test_demo_routine_is_deployed_everywhere(sim):
    body = sim.esa().get_routine(m.GetRoutineRequest(name="edge-auth")).body
    assert isinstance(body.request_id, str) and body.request_id
    envs = {e.env: e for e in body.envs}
    assert set(envs) >= {"production", "staging"}, to_plain(body)


def test_get_routine_reports_seeded_split(sim):
    esa = sim.esa()
    name, codes = seed_routine(sim)
    for env in ("production", "staging"):
        _, pairs = env_split(esa, name, env)
        assert pairs == [(codes[0], 100)]


def test_code_deployment_replaces_the_split(sim):
    esa = sim.esa()
    name, (a, b) = seed_routine(sim)

    resp = deploy(esa, name, "production", (a, 90), (b, 10))
    assert isinstance(resp.request_id, str) and resp.request_id
    assert resp.strategy == "percentage"
    assert isinstance(resp.deployment_id, str) and resp.deployment_id, to_plain(resp)
    assert sorted((v.code_version, v.percentage) for v in resp.code_versions) == sorted([(a, 90), (b, 10)])

    code_deploy, pairs = env_split(esa, name, "production")
    assert pairs == sorted([(a, 90), (b, 10)])
    assert all(isinstance(p, int) for _, p in pairs)
    assert code_deploy.deploy_id == resp.deployment_id
    assert code_deploy.strategy == "percentage"
    # The other environment is untouched.
    assert env_split(esa, name, "staging")[1] == [(a, 100)]

    second = deploy(esa, name, "production", (b, 100))
    assert second.deployment_id != resp.deployment_id
    code_deploy, pairs = env_split(esa, name, "production")
    assert pairs == [(b, 100)], "a new deployment replaces the previous split"
    assert code_deploy.deploy_id == second.deployment_id


def test_staging_deployment_leaves_production(sim):
    esa = sim.esa()
    name, (a, b) = seed_routine(sim)
    deploy(esa, name, "staging", (b, 100))
    assert env_split(esa, name, "staging")[1] == [(b, 100)]
    assert env_split(esa, name, "production")[1] == [(a, 100)]


def test_list_routine_code_versions_pages(sim):
    esa = sim.esa()
    name, codes = seed_routine(sim, versions=3)
    body = esa.list_routine_code_versions(m.ListRoutineCodeVersionsRequest(name=name, page_number=1, page_size=20)).body
    assert body.total_count == 3, to_plain(body)
    assert sorted(v.code_version for v in body.code_versions) == sorted(codes)
    assert all(isinstance(v.status, str) and v.status for v in body.code_versions), to_plain(body)

    first = esa.list_routine_code_versions(m.ListRoutineCodeVersionsRequest(name=name, page_number=1, page_size=2)).body
    second = esa.list_routine_code_versions(m.ListRoutineCodeVersionsRequest(name=name, page_number=2, page_size=2)).body
    assert len(first.code_versions) == 2 and len(second.code_versions) == 1, (to_plain(first), to_plain(second))
    assert first.total_count == 3 and second.total_count == 3
    paged = [v.code_version for v in first.code_versions + second.code_versions]
    assert sorted(paged) == sorted(codes)


# ---------------------------------------------------------------- edge container apps
def seed_app(sim, versions: int = 2):
    app = f"app-{digits(16)}"
    vers = [f"ver-{digits(16)}" for _ in range(versions)]
    sim.seed(apps=[{"id": app, "versions": vers, "deployed": vers[0]}])
    return app, vers


def app_status(esa, app, env="prod"):
    return esa.get_edge_container_app_status(m.GetEdgeContainerAppStatusRequest(app_id=app, publish_env=env)).body.app_status


def publish(esa, app, version, env="prod", **kw):
    req = m.PublishEdgeContainerAppVersionRequest(app_id=app, version_id=version, publish_env=env, **kw)
    return esa.publish_edge_container_app_version(req).body


def test_seeded_app_status_is_published_baseline(sim):
    esa = sim.esa()
    app, (v0, _) = seed_app(sim)
    st = app_status(esa, app)
    assert st.publish_status == "published", to_plain(st)
    assert st.deployed_version == v0
    assert st.base_line_version == v0
    assert st.publish_percentage == 100 and isinstance(st.publish_percentage, int)
    assert st.publish_env == "prod"


def test_publish_goes_publishing_then_published(sim):
    esa = sim.esa()
    app, (v0, v1) = seed_app(sim)
    start = (dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=3)).strftime("%Y-%m-%dT%H:%M:%SZ")
    resp = publish(esa, app, v1, percentage=50, start_time=start, remarks="canary 50% *first*")
    assert isinstance(resp.request_id, str) and resp.request_id

    st = app_status(esa, app)
    assert st.publish_status == "publishing", to_plain(st)
    assert st.publishing_version == v1
    assert st.expect_percentage == 50 and isinstance(st.expect_percentage, int)
    assert st.publish_type == "percentage", to_plain(st)

    st = wait_for(lambda: app_status(esa, app), lambda s: s.publish_status == "published",
                  timeout=3 + sim.sim_seconds(4) * 3 + 5, what="published")
    assert st.publish_percentage == 50, to_plain(st)
    assert st.base_line_version == v0, "a partial publish keeps the baseline"
    # Staging was not touched.
    staging = app_status(esa, app, "staging")
    assert staging.publish_status == "published" and staging.deployed_version == v0, to_plain(staging)

    publish(esa, app, v1, percentage=100)
    st = wait_for(lambda: app_status(esa, app),
                  lambda s: s.publish_status == "published" and s.publish_percentage == 100,
                  timeout=sim.sim_seconds(5) * 3 + 5, what="published at 100%")
    assert st.base_line_version == v1, to_plain(st)
    assert st.deployed_version == v1, to_plain(st)


def test_region_publish_reports_regions_and_full_release(sim):
    esa = sim.esa()
    app, (_, v1) = seed_app(sim)
    publish(esa, app, v1, publish_type="region", regions=["ChineseMainland", "Asia"], full_release=True)
    st = wait_for(lambda: app_status(esa, app), lambda s: s.publish_status == "published",
                  timeout=sim.sim_seconds(5) * 3 + 5, what="published")
    assert st.publish_type == "region", to_plain(st)
    assert st.full_release is True, to_plain(st)
    assert sorted(st.regions.region) == ["Asia", "ChineseMainland"], to_plain(st)
    assert st.base_line_version == v1, "region + FullRelease makes the version the baseline"


def test_rollback_goes_rollbacking_then_rollbacked(sim):
    esa = sim.esa()
    app, (v0, v1) = seed_app(sim)
    publish(esa, app, v1, percentage=50)
    wait_for(lambda: app_status(esa, app), lambda s: s.publish_status == "published",
             timeout=sim.sim_seconds(4) * 3 + 5, what="canary published")

    req = m.RollbackEdgeContainerAppVersionRequest(app_id=app, version_id=v0, percentage=100, used_percent=False,
                                                   remarks="bad canary")
    resp = esa.rollback_edge_container_app_version(req).body
    assert isinstance(resp.request_id, str) and resp.request_id

    st = app_status(esa, app)
    assert st.publish_status in ("rollbacking", "rollbacked"), to_plain(st)
    seen = {st.publish_status}
    deadline = time.monotonic() + sim.sim_seconds(2) * 3 + 5
    while st.publish_status != "rollbacked":
        assert st.publish_status == "rollbacking", to_plain(st)
        assert time.monotonic() < deadline, to_plain(st)
        time.sleep(0.02)
        st = app_status(esa, app)
        seen.add(st.publish_status)
    assert st.deployed_version == v0, to_plain(st)
    assert st.base_line_version == v0, to_plain(st)
    assert st.publish_percentage == 100, to_plain(st)
    assert st.rollback_time, to_plain(st)
    assert "rollbacking" in seen, f"rollbacking lasts 2 simulated seconds; saw {seen}"


def test_list_edge_container_app_versions(sim):
    esa = sim.esa()
    app, vers = seed_app(sim, versions=3)
    body = esa.list_edge_container_app_versions(
        m.ListEdgeContainerAppVersionsRequest(app_id=app, page_number=1, page_size=10)).body
    assert isinstance(body.request_id, str) and body.request_id
    assert body.total_count == 3, to_plain(body)
    assert sorted(v.version_id for v in body.versions) == sorted(vers)
    assert all(v.status in ("created", "creating", "failed") for v in body.versions), to_plain(body)
    pages = [esa.list_edge_container_app_versions(
        m.ListEdgeContainerAppVersionsRequest(app_id=app, page_number=n, page_size=2)).body for n in (1, 2)]
    assert [len(p.versions) for p in pages] == [2, 1], [to_plain(p) for p in pages]
    assert sorted(v.version_id for p in pages for v in p.versions) == sorted(vers)


def test_query_values_with_spaces_and_stars_are_signed_correctly(sim):
    # The SDK sends a space as '+' in the URL but signs it as '%20'; '*' as %2A.
    esa = sim.esa()
    app, _ = seed_app(sim)
    body = esa.list_edge_container_app_versions(
        m.ListEdgeContainerAppVersionsRequest(app_id=app, search_key="no such * version", search_type="Remarks")).body
    assert isinstance(body.request_id, str) and body.request_id
