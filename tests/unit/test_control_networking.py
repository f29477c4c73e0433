"""Node annotations (anyone who can patch a Node writes them) are validated and bounded
before they become EC2 parameters and filters; errors quote them only shortened."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vpcnet.control.networking import (
    MAX_SECURITY_GROUPS,
    MAX_SUBNET_TAGS,
    NodeNetworking,
    Profile,
    node_networking,
)
from vpcnet.domain import Mode
from vpcnet.errors import ConfigError
from vpcnet.wellknown import (
    MODE_ANNOTATION,
    PROFILE_ANNOTATION,
    SECURITY_GROUPS_ANNOTATION,
    SUBNET_ANNOTATION,
    SUBNET_TAGS_ANNOTATION,
)


def nn(annotations: dict[str, str], profiles: dict[str, Profile] | None = None) -> NodeNetworking:
    return node_networking(Mode.FULL, {}, annotations, profiles or {})


def test_valid_annotations_are_taken() -> None:
    got = nn({
        MODE_ANNOTATION: "warm",
        SUBNET_TAGS_ANNOTATION: "team=a, tier=pods",
        SECURITY_GROUPS_ANNOTATION: "sg-0123456789abcdef0,sg-00000001",
    })
    assert got.mode is Mode.WARM
    assert got.subnet_tags == {"team": "a", "tier": "pods"}
    assert got.security_groups == ("sg-0123456789abcdef0", "sg-00000001")
    assert nn({SUBNET_ANNOTATION: "subnet-0123abcd"}).subnet_id == "subnet-0123abcd"


def test_at_most_aws_many_security_groups() -> None:
    groups = [f"sg-{i:08x}" for i in range(MAX_SECURITY_GROUPS)]
    assert len(nn({SECURITY_GROUPS_ANNOTATION: ",".join(groups)}).security_groups or ()) == MAX_SECURITY_GROUPS
    with pytest.raises(ConfigError, match="at most"):
        nn({SECURITY_GROUPS_ANNOTATION: ",".join([*groups, "sg-ffffffff"])})


def test_subnet_tags_are_bounded() -> None:
    many = ",".join(f"k{i}=v" for i in range(MAX_SUBNET_TAGS + 1))
    with pytest.raises(ConfigError, match="at most"):
        nn({SUBNET_TAGS_ANNOTATION: many})
    with pytest.raises(ConfigError, match="at most"):
        nn({SUBNET_TAGS_ANNOTATION: "k=" + "v" * 257})
    with pytest.raises(ConfigError, match="at most"):
        nn({SUBNET_TAGS_ANNOTATION: "k" * 129 + "=v"})
    with pytest.raises(ConfigError, match="k=v"):
        nn({SUBNET_TAGS_ANNOTATION: "novalue"})


def test_unknown_profile_and_bad_ids_are_refused() -> None:
    with pytest.raises(ConfigError, match="no profile"):
        nn({PROFILE_ANNOTATION: "nope"})
    for bad in ("subnet-XYZ", "subnet-1", "sg-0123abcd", ""):
        with pytest.raises(ConfigError):
            nn({SUBNET_ANNOTATION: bad})


@given(st.text(min_size=1, max_size=20_000))
def test_any_value_is_taken_or_refused_with_a_short_message(raw: str) -> None:
    for key in (MODE_ANNOTATION, SUBNET_ANNOTATION, SUBNET_TAGS_ANNOTATION, SECURITY_GROUPS_ANNOTATION, PROFILE_ANNOTATION):
        try:
            nn({key: raw})
        except ConfigError as e:
            assert len(str(e)) < 300, (key, str(e)[:400])
