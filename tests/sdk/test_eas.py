"""PAI-EAS (ROA) operations driven by the official SDK `alibabacloud_eas20210701`."""

from __future__ import annotations

import json
import re
import time

from alibabacloud_eas20210701 import models as m

from support import EAS_REGION as R
from support import to_plain, uid, wait_for

NEXT_BATCH_FORMAT = re.compile(r"^\d{4}/\d{2}/\d{2} \d{2}:\d{2}:\d{2}$")


# ---------------------------------------------------------------- helpers
def seed_service(sim, replicas: int = 8, enabled: bool = True, extra: dict | None = None):
    name = uid("sdksvc")
    image = f"registry.example/{name}:v1"
    config = {"containers": [{"image": image}]}
    if extra:
        config.update(extra)
    sim.seed(services=[{
        "name": name, "region": R, "replicas": replicas, "rolloutEnabled": enabled, "config": config,
    }])
    return name, image


def describe(eas, name):
    return eas.describe_service(R, name, m.DescribeServiceRequest()).body


def rollout(eas, name):
    body = eas.describe_service_rollout(R, name, m.DescribeServiceRolloutRequest()).body
    assert body.rollout is not None and body.rollout.status is not None, f"no Rollout.Status: {to_plain(body)}"
    return body


def status(eas, name):
    return rollout(eas, name).rollout.status


def update_image(eas, name, image, update_type=None):
    body = json.dumps({"containers": [{"image": image}]})
    return eas.update_service(R, name, m.UpdateServiceRequest(update_type=update_type, body=body)).body


def create_batch(eas, name, size: str, interval: str, paused=None):
    req = m.CreateServiceRolloutRequest(
        batch=m.CreateServiceRolloutRequestBatch(batch_size=size, interval=interval), paused=paused)
    return eas.create_service_rollout(R, name, req).body


def create_partition(eas, name, partition: str, paused=None):
    req = m.CreateServiceRolloutRequest(
        partition=m.CreateServiceRolloutRequestPartition(partition=partition), paused=paused)
    return eas.create_service_rollout(R, name, req).body


def set_partition(eas, name, partition: str):
    req = m.UpdateServiceRolloutRequest(partition=m.UpdateServiceRolloutRequestPartition(partition=partition))
    return eas.update_service_rollout(R, name, req).body


def set_paused(eas, name, paused: bool):
    return eas.update_service_rollout(R, name, m.UpdateServiceRolloutRequest(paused=paused)).body


def assert_ack(body):
    assert isinstance(body.request_id, str) and body.request_id, to_plain(body)
    assert isinstance(body.message, str) and body.message, to_plain(body)


def wait_completed(sim, eas, name, total: int, sim_budget: float):
    return wait_for(
        lambda: status(eas, name),
        lambda s: s.phase == "Completed" and s.updated_replicas == total,
        timeout=sim.sim_seconds(sim_budget) * 3 + 5,
        what=f"rollout of {name} to complete",
    )


# ---------------------------------------------------------------- DescribeService
def test_demo_service_is_described(sim):
    svc = describe(sim.eas(), "llm-chat")
    assert svc.service_name == "llm-chat"
    assert svc.region == "cn-shanghai"
    assert isinstance(svc.request_id, str) and svc.request_id
    assert svc.total_instance == 8 and isinstance(svc.total_instance, int)
    assert isinstance(svc.current_version, int) and svc.current_version >= 1
    config = json.loads(svc.service_config)
    assert config["metadata"]["labels"]["eas.aliyun.com/enable-rollout"] == "true"


def test_describe_service_reports_typed_fields(sim):
    eas = sim.eas()
    name, image = seed_service(sim, replicas=4)
    svc = describe(eas, name)
    assert svc.service_name == name
    assert svc.region == R
    assert svc.image == image
    assert svc.current_version == 1 and svc.latest_version == 1
    for field in ("current_version", "latest_version", "total_instance", "running_instance"):
        assert isinstance(getattr(svc, field), int), (field, to_plain(svc))
    assert svc.total_instance == 4
    assert svc.running_instance == 4
    assert isinstance(svc.status, str) and svc.status
    assert isinstance(svc.service_config, str)
    assert json.loads(svc.service_config)["containers"][0]["image"] == image


# ---------------------------------------------------------------- Batch strategy
def test_batch_rollout_moves_batch_by_batch(sim):
    eas = sim.eas()
    name, _ = seed_service(sim, replicas=8)
    assert_ack(create_batch(eas, name, "2", "20s"))

    body = rollout(eas, name)
    assert body.rollout.strategy.batch.batch_size == "2"
    assert body.rollout.strategy.batch.interval == "20s"
    assert body.rollout.strategy.partition is None
    before = body.rollout.status
    assert before.total_replicas == 8
    assert before.phase == "Completed", to_plain(before)
    assert re.fullmatch(rf"{name}-[0-9a-f]{{6}}-v1", before.current_revision), before.current_revision

    new_image = f"registry.example/{name}:v2"
    assert_ack(update_image(eas, name, new_image))

    seen = []
    deadline = time.monotonic() + sim.sim_seconds(1 + 3 * 20) * 3 + 5
    while True:
        s = status(eas, name)
        assert s.total_replicas == 8, to_plain(s)
        assert isinstance(s.updated_replicas, int), to_plain(s)
        assert s.updated_replicas % 2 == 0, f"batches of 2 expected: {to_plain(s)}"
        assert re.fullmatch(rf"{name}-[0-9a-f]{{6}}-v2", s.update_revision), to_plain(s)
        if seen:
            assert s.updated_replicas >= seen[-1], f"went backwards: {seen} then {to_plain(s)}"
        seen.append(s.updated_replicas)
        if s.phase == "Completed":
            break
        assert s.phase in ("Pending", "Running"), to_plain(s)
        assert s.current_revision.endswith("-v1"), to_plain(s)
        if 0 < s.updated_replicas < 8:
            assert s.next_batch_start_time and NEXT_BATCH_FORMAT.match(s.next_batch_start_time), to_plain(s)
        assert time.monotonic() < deadline, f"rollout did not complete; seen {seen}"
        time.sleep(0.05)

    assert s.updated_replicas == 8
    assert s.current_revision == s.update_revision
    assert {2, 4, 6} <= set(seen), f"every batch should be visible: {seen}"

    svc = describe(eas, name)
    assert svc.image == new_image
    assert svc.current_version == 2 and svc.latest_version == 2
    assert json.loads(svc.service_config)["containers"][0]["image"] == new_image


# ---------------------------------------------------------------- Partition strategy
def test_partition_keeps_replicas_on_old_version(sim):
    eas = sim.eas()
    name, _ = seed_service(sim, replicas=6)
    assert_ack(create_partition(eas, name, "2"))
    body = rollout(eas, name)
    assert body.rollout.strategy.partition.partition == "2"
    assert body.rollout.strategy.batch is None

    update_image(eas, name, f"registry.example/{name}:v2")
    wait_for(lambda: status(eas, name), lambda s: s.updated_replicas == 4,
             timeout=sim.sim_seconds(10) * 3 + 5, what="4 of 6 replicas updated")
    # Hold: several ticks later, still 2 replicas on the old revision.
    time.sleep(sim.sim_seconds(5))
    s = status(eas, name)
    assert s.updated_replicas == 4, to_plain(s)
    assert s.phase != "Completed", to_plain(s)
    assert s.current_revision != s.update_revision, to_plain(s)

    assert_ack(set_partition(eas, name, "0"))
    s = wait_completed(sim, eas, name, 6, 10)
    assert s.current_revision == s.update_revision


def test_partition_percentage_keeps_that_share_old(sim):
    eas = sim.eas()
    name, _ = seed_service(sim, replicas=6)
    create_partition(eas, name, "50%")
    update_image(eas, name, f"registry.example/{name}:v2")
    wait_for(lambda: status(eas, name), lambda s: s.updated_replicas == 3,
             timeout=sim.sim_seconds(10) * 3 + 5, what="3 of 6 replicas updated")
    time.sleep(sim.sim_seconds(5))
    s = status(eas, name)
    assert s.updated_replicas == 3, to_plain(s)
    assert rollout(eas, name).rollout.strategy.partition.partition == "50%"


def test_raising_partition_moves_replicas_back(sim):
    eas = sim.eas()
    name, _ = seed_service(sim, replicas=6)
    create_partition(eas, name, "2")
    update_image(eas, name, f"registry.example/{name}:v2")
    wait_for(lambda: status(eas, name), lambda s: s.updated_replicas == 4,
             timeout=sim.sim_seconds(10) * 3 + 5, what="4 of 6 replicas updated")
    set_partition(eas, name, "5")
    s = wait_for(lambda: status(eas, name), lambda s: s.updated_replicas == 1,
                 timeout=sim.sim_seconds(10) * 3 + 5, what="back to 1 updated replica")
    assert s.phase != "Completed"
    time.sleep(sim.sim_seconds(4))
    assert status(eas, name).updated_replicas == 1


# ---------------------------------------------------------------- Paused
def test_pause_freezes_and_resume_completes(sim):
    eas = sim.eas()
    name, _ = seed_service(sim, replicas=8)
    create_batch(eas, name, "2", "20s")
    update_image(eas, name, f"registry.example/{name}:v2")
    wait_for(lambda: status(eas, name), lambda s: s.updated_replicas >= 2,
             timeout=sim.sim_seconds(5) * 3 + 5, what="first batch")

    assert_ack(set_paused(eas, name, True))
    frozen = wait_for(lambda: status(eas, name), lambda s: s.phase == "Paused",
                      timeout=sim.sim_seconds(2) * 3 + 2, what="phase Paused")
    # Pausing keeps the strategy as it was.
    strategy = rollout(eas, name).rollout.strategy
    assert strategy.batch.batch_size == "2" and strategy.batch.interval == "20s"
    # Longer than two batch intervals: nothing moves.
    time.sleep(sim.sim_seconds(45))
    s = status(eas, name)
    assert s.phase == "Paused", to_plain(s)
    assert s.updated_replicas == frozen.updated_replicas < 8, (to_plain(frozen), to_plain(s))

    assert_ack(set_paused(eas, name, False))
    wait_completed(sim, eas, name, 8, 4 * 20)


def test_rollout_created_paused_does_not_start(sim):
    eas = sim.eas()
    name, _ = seed_service(sim, replicas=4)
    create_batch(eas, name, "1", "10s", paused=True)
    update_image(eas, name, f"registry.example/{name}:v2")
    time.sleep(sim.sim_seconds(15))
    s = status(eas, name)
    assert s.phase == "Paused", to_plain(s)
    assert s.updated_replicas == 0, to_plain(s)
    set_paused(eas, name, False)
    wait_completed(sim, eas, name, 4, 1 + 3 * 10)


# ---------------------------------------------------------------- strategy switch, delete
def test_update_rollout_switches_strategy(sim):
    eas = sim.eas()
    name, _ = seed_service(sim, replicas=4)
    create_partition(eas, name, "1")
    req = m.UpdateServiceRolloutRequest(
        batch=m.UpdateServiceRolloutRequestBatch(batch_size="50%", interval="1m"))
    assert_ack(eas.update_service_rollout(R, name, req).body)
    strategy = rollout(eas, name).rollout.strategy
    assert strategy.partition is None, to_plain(strategy)
    assert strategy.batch.batch_size == "50%" and strategy.batch.interval == "1m"


def test_delete_rollout_then_update_replaces_all_at_once(sim):
    eas = sim.eas()
    name, _ = seed_service(sim, replicas=4)
    create_partition(eas, name, "4")
    assert_ack(eas.delete_service_rollout(R, name, m.DeleteServiceRolloutRequest()).body)
    new_image = f"registry.example/{name}:v2"
    update_image(eas, name, new_image)
    # No rollout any more: every replica is replaced at once (2 simulated seconds).
    svc = wait_for(lambda: describe(eas, name), lambda s: s.current_version == 2,
                   timeout=sim.sim_seconds(2) * 3 + 5, what="version 2 serving")
    assert svc.image == new_image
    assert svc.running_instance == 4


# ---------------------------------------------------------------- UpdateService
def test_update_service_merge_keeps_unsent_config(sim):
    eas = sim.eas()
    name, _ = seed_service(sim, replicas=2, extra={"metadata": {"instance": 2, "cpu": 3}})
    new_image = f"registry.example/{name}:v2"
    assert_ack(update_image(eas, name, new_image, update_type="merge"))
    svc = wait_for(lambda: describe(eas, name), lambda s: s.latest_version == 2,
                   timeout=5, what="version 2 recorded")
    config = json.loads(svc.service_config)
    assert config["containers"][0]["image"] == new_image
    assert config["metadata"]["cpu"] == 3, config


def test_update_service_replace_drops_unsent_config(sim):
    eas = sim.eas()
    name, _ = seed_service(sim, replicas=2, extra={"metadata": {"instance": 2, "cpu": 3}})
    new_image = f"registry.example/{name}:v2"
    assert_ack(update_image(eas, name, new_image, update_type="replace"))
    svc = wait_for(lambda: describe(eas, name), lambda s: s.latest_version == 2,
                   timeout=5, what="version 2 recorded")
    config = json.loads(svc.service_config)
    assert config["containers"][0]["image"] == new_image
    assert "cpu" not in config.get("metadata", {}), config


# ---------------------------------------------------------------- versions
def test_list_service_versions_and_roll_back_to_one(sim):
    eas = sim.eas()
    name, old_image = seed_service(sim, replicas=4)
    create_batch(eas, name, "2", "10s")
    v1_revision = status(eas, name).current_revision
    new_image = f"registry.example/{name}:v2"
    update_image(eas, name, new_image)
    wait_completed(sim, eas, name, 4, 1 + 10 * 2)

    listed = eas.list_service_versions(R, name, m.ListServiceVersionsRequest(page_number=1, page_size=50)).body
    assert listed.total_count == 2, to_plain(listed)
    by_id = {v.image_id: v for v in listed.versions}
    assert set(by_id) == {1, 2}, to_plain(listed)
    assert all(isinstance(i, int) for i in by_id)
    assert json.loads(by_id[1].service_config)["containers"][0]["image"] == old_image
    assert json.loads(by_id[2].service_config)["containers"][0]["image"] == new_image

    pages = [eas.list_service_versions(R, name, m.ListServiceVersionsRequest(page_number=n, page_size=1)).body
             for n in (1, 2, 3)]
    assert [len(p.versions) for p in pages] == [1, 1, 0], [to_plain(p) for p in pages]
    assert all(p.total_count == 2 for p in pages)
    assert {pages[0].versions[0].image_id, pages[1].versions[0].image_id} == {1, 2}

    assert_ack(eas.update_service_version(R, name, m.UpdateServiceVersionRequest(version=1)).body)
    s = wait_completed(sim, eas, name, 4, 1 + 10 * 2)
    assert s.update_revision == v1_revision, (v1_revision, to_plain(s))
    svc = describe(eas, name)
    assert svc.image == old_image
    assert svc.current_version == 1, to_plain(svc)
    assert svc.latest_version == 2, to_plain(svc)


def test_answers_carry_request_id_header_matching_body(sim):
    resp = sim.eas().describe_service(R, "llm-chat", m.DescribeServiceRequest())
    assert resp.status_code == 200
    assert resp.headers.get("x-acs-request-id") == resp.body.request_id, resp.headers
    assert resp.headers.get("content-type", "").startswith("application/json"), resp.headers


def test_batch_size_as_percentage(sim):
    eas = sim.eas()
    name, _ = seed_service(sim, replicas=4)
    create_batch(eas, name, "50%", "10s")
    update_image(eas, name, f"registry.example/{name}:v2")
    seen = set()
    deadline = time.monotonic() + sim.sim_seconds(1 + 10) * 3 + 5
    while True:
        s = status(eas, name)
        seen.add(s.updated_replicas)
        if s.phase == "Completed":
            break
        assert time.monotonic() < deadline, f"not completed; seen {seen}"
        time.sleep(0.05)
    assert seen <= {0, 2, 4} and 2 in seen, f"50% of 4 is batches of 2: {seen}"


def test_failing_image_ends_in_failed_phase(sim):
    eas = sim.eas()
    name, _ = seed_service(sim, replicas=2)
    create_batch(eas, name, "1", "10s")
    update_image(eas, name, f"registry.example/{name}:fail")
    s = wait_for(lambda: status(eas, name), lambda s: s.phase == "Failed",
                 timeout=sim.sim_seconds(25) * 3 + 5, what="phase Failed")
    assert s.current_revision != s.update_revision, to_plain(s)


# ---------------------------------------------------------------- eventual consistency
def test_lag_faults_hold_back_what_the_sdk_reads(faults):
    """pauseLag: the pause is acknowledged and holds, DescribeServiceRollout says Running,
    then Paused. readLag: DescribeService shows the previous version, then the new one.
    The lags are wall seconds, not divided by the time scale."""
    sim = faults
    lag = 2.0
    eas = sim.eas()
    name, _ = seed_service(sim, replicas=8)
    create_batch(eas, name, "1", "10s")
    update_image(eas, name, f"registry.example/{name}:v2")
    wait_for(lambda: status(eas, name), lambda s: s.updated_replicas >= 1,
             timeout=sim.sim_seconds(2) * 3 + 5, what="first batch")

    sim.add_fault(kind="pauseLag", lagSeconds=lag)
    sent = time.monotonic()
    assert_ack(set_paused(eas, name, True))
    first = status(eas, name)
    assert first.phase == "Running", to_plain(first)
    paused = wait_for(lambda: status(eas, name), lambda s: s.phase == "Paused",
                      timeout=lag + 10, what="phase Paused")
    assert time.monotonic() - sent >= lag
    assert paused.updated_replicas == first.updated_replicas < 8, (to_plain(first), to_plain(paused))

    sim.add_fault(kind="readLag", action="DescribeService", lagSeconds=lag)
    sent = time.monotonic()
    update_image(eas, name, f"registry.example/{name}:v3")
    assert describe(eas, name).latest_version == 2
    wait_for(lambda: describe(eas, name), lambda d: d.latest_version == 3,
             timeout=lag + 10, what="version 3 described")
    assert time.monotonic() - sent >= lag
    fired = {f["kind"]: f["fired"] for f in sim.admin("GET", "faults")}
    assert fired["pauseLag"] == 1 and fired["readLag"] >= 1, fired


# ---------------------------------------------------------------- service labels (ownership marker)
def labels_of(eas, name) -> dict:
    return {l.label_key: l.label_value for l in (describe(eas, name).labels or [])}


def test_service_labels_are_set_read_and_deleted_without_a_new_version(sim):
    from alibabacloud_tea_openapi.exceptions import ClientException
    import pytest

    eas = sim.eas()
    name, image = seed_service(sim, replicas=2)
    before = describe(eas, name)
    assert not before.labels
    owner = f"cluster-a/team-a/eas/{name}"
    body = eas.update_service_label(
        R, name, m.UpdateServiceLabelRequest(labels={"alicloud-rollouts.owner": owner, "team": "a"})).body
    assert isinstance(body.request_id, str) and body.request_id
    assert labels_of(eas, name) == {"alicloud-rollouts.owner": owner, "team": "a"}
    after = describe(eas, name)
    assert after.current_version == before.current_version, "a label starts no new version"
    assert after.latest_version == before.latest_version
    assert after.image == image

    # Overwrite one, keep the other.
    eas.update_service_label(R, name, m.UpdateServiceLabelRequest(labels={"team": "b"}))
    assert labels_of(eas, name)["team"] == "b"

    eas.delete_service_label(R, name, m.DeleteServiceLabelRequest(label_keys=["alicloud-rollouts.owner"]))
    assert labels_of(eas, name) == {"team": "b"}
    # The deprecated Keys parameter works too.
    eas.delete_service_label(R, name, m.DeleteServiceLabelRequest(keys=["team"]))
    assert labels_of(eas, name) == {}

    with pytest.raises(ClientException) as info:
        eas.update_service_label(R, name, m.UpdateServiceLabelRequest(labels={"k": "a=b"}))
    assert info.value.code == "InvalidParameter"
    with pytest.raises(ClientException) as info:
        eas.update_service_label(R, "no-such-service", m.UpdateServiceLabelRequest(labels={"k": "v"}))
    assert info.value.code == "InvalidService.NotFound"
