"""Label and field selectors of the Kubernetes emulator."""

from __future__ import annotations

import pytest

from vpcnet_sim.kube.resources import PODS
from vpcnet_sim.kube.selectors import (
    SelectorError,
    fields_match,
    labels_match,
    parse_field_selector,
    parse_label_selector,
)

LABELS = {"app": "web", "tier": "front", "vpcnet.io/instance-id": "i-0abc", "n": "5"}


@pytest.mark.parametrize(("selector", "expected"), [
    ("", True),
    ("app=web", True),
    ("app==web", True),
    ("app=db", False),
    ("app!=db", True),
    ("missing!=x", True),  # != matches objects without the key
    ("app", True),
    ("missing", False),
    ("!missing", True),
    ("!app", False),
    ("app in (web, db)", True),
    ("app in (db)", False),
    ("app notin (db)", True),
    ("missing notin (db)", True),
    ("tier in (front),app=web", True),
    ("tier in (front),app=db", False),
    ("vpcnet.io/instance-id=i-0abc", True),
    ("n>4", True),
    ("n<5", False),
    ("missing>1", False),
])
def test_label_selector(selector: str, expected: bool) -> None:
    assert labels_match(parse_label_selector(selector), LABELS) is expected


@pytest.mark.parametrize("selector", ["app=web,", "a b", "n>x", "-bad=1", "x in (a", ","])
def test_bad_label_selectors(selector: str) -> None:
    with pytest.raises(SelectorError):
        parse_label_selector(selector)


POD = {"metadata": {"name": "p1", "namespace": "default"},
       "spec": {"nodeName": "node-1", "hostNetwork": True}, "status": {"phase": "Running"}}


@pytest.mark.parametrize(("selector", "expected"), [
    ("spec.nodeName=node-1", True),
    ("spec.nodeName==node-1", True),
    ("spec.nodeName!=node-1", False),
    ("spec.nodeName=node-2", False),
    ("spec.nodeName=node-1,status.phase=Running", True),
    ("spec.nodeName=node-1,status.phase!=Running", False),
    ("metadata.name=p1,metadata.namespace=default", True),
    ("spec.hostNetwork=true", True),
    ("status.podIP=", True),  # an absent field is the empty string
])
def test_field_selector(selector: str, expected: bool) -> None:
    reqs = parse_field_selector(selector, PODS.field_labels)
    assert fields_match(reqs, POD, PODS.field_labels) is expected


def test_field_selector_escapes() -> None:
    reqs = parse_field_selector(r"metadata.name=a\,b", PODS.field_labels)
    assert fields_match(reqs, {"metadata": {"name": "a,b"}}, PODS.field_labels)


@pytest.mark.parametrize("selector", ["spec.unknown=x", "spec.nodeName"])
def test_bad_field_selectors(selector: str) -> None:
    with pytest.raises(SelectorError):
        parse_field_selector(selector, PODS.field_labels)
