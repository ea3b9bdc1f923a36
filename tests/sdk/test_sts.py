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
