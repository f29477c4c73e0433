"""A new node's provisioning is sent before the watcher's instance-id label patch (a
Kubernetes round trip no task needs), and after its not-ready taint (no node_ready may
race the taint)."""

from __future__ import annotations

from typing import Any, cast

from vpcnet.kube.nodeplan import ControlView
from vpcnet.kube.types import NodeObj
from vpcnet.tasknames import PROVISION_NODE
from vpcnet.watcher.actions import NodeActions


class Recorder:
    def __init__(self) -> None:
        self.order: list[str] = []

    def set_labels(self, name: str, labels: dict[str, str]) -> None:
        self.order.append("label")

    def ensure_taint(self, name: str, key: str, effect: str, value: str = "") -> bool:
        self.order.append("taint")
        return True

    def enqueue(self, task: str, request: Any) -> str:
        self.order.append(task)
        return "task-id"


def _actions(rec: Recorder) -> NodeActions:
    return NodeActions(kube=cast(Any, rec), state=cast(Any, None), enqueuer=cast(Any, rec),
                       timers=cast(Any, None), stats=cast(Any, None), cache={},
                       acting=lambda: True)


def test_provisioning_is_sent_before_the_label_patch() -> None:
    rec = Recorder()
    node = NodeObj(name="n1", provider_id="aws:///us-east-1a/i-0abc")  # untainted, unlabelled
    _actions(rec).consider(node, ControlView())
    assert rec.order == ["taint", PROVISION_NODE, "label"]
