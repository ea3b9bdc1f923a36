"""STS GetCallerIdentity through the official STS SDK: the account of the credentials."""

from __future__ import annotations

import pytest
from alibabacloud_sts20150401.client import Client as StsClient
from alibabacloud_tea_openapi.exceptions import ClientException

from support import DEFAULT_AK


def sts(sim, **kw) -> StsClient:
    return StsClient(sim.config("cn-hangzhou", **kw))


def test_caller_identity_is_the_account_of_the_key_pair(sim):
    body = sts(sim).get_caller_identity().body
    accounts = sim.admin("GET", "accounts")
    assert body.account_id == accounts[DEFAULT_AK], (body.to_map(), accounts)
    assert len(body.account_id) == 16 and body.account_id.isdigit()
    assert body.request_id
    assert body.identity_type in ("Account", "RAMUser", "AssumedRoleUser")
    assert body.arn.startswith(f"acs:ram::{body.account_id}:")
    # The same key pair answers the same account every time.
    assert sts(sim).get_caller_identity().body.account_id == body.account_id


def test_caller_identity_checks_the_signature(sim):
    with pytest.raises(ClientException) as info:
        sts(sim, secret="not-the-secret").get_caller_identity()
    assert info.value.code == "SignatureDoesNotMatch"


def test_assume_role_gives_credentials_of_the_role_account(sim):
    """AssumeRole signed with the caller's own key: temporary credentials that the
    simulator accepts and attributes to the role's account (what a CloudAccount with
    assumeRole relies on)."""
    from alibabacloud_sts20150401 import models as sts_models

    request = sts_models.AssumeRoleRequest(
        role_arn="acs:ram::1000000000000007:role/rollouts",
        role_session_name="sdk-test",
        duration_seconds=900,
    )
    body = sts(sim).assume_role(request).body
    creds = body.credentials
    assert creds.access_key_id.startswith("STS."), body.to_map()
    assert creds.access_key_secret and creds.security_token and creds.expiration
    assert body.assumed_role_user.arn.startswith("acs:ram::1000000000000007:")
    assumed = sts(
        sim,
        ak=creds.access_key_id,
        secret=creds.access_key_secret,
        token=creds.security_token,
    ).get_caller_identity().body
    assert assumed.account_id == "1000000000000007", assumed.to_map()
    # The caller's own account is another one.
    assert sts(sim).get_caller_identity().body.account_id != assumed.account_id


def test_assume_role_refuses_a_malformed_role_arn(sim):
    from alibabacloud_sts20150401 import models as sts_models

    with pytest.raises(ClientException) as info:
        sts(sim).assume_role(
            sts_models.AssumeRoleRequest(role_arn="not-an-arn", role_session_name="s1")
        )
    assert info.value.code == "InvalidParameter.RoleArn"
