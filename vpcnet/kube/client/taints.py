"""Node taints: a list, so every write carries the resourceVersion it was computed from.

A concurrent writer makes the server answer 409 and we re-read and retry, instead of
silently dropping someone else's taint.
"""

from __future__ import annotations

from collections.abc import Callable

from vpcnet.errors import KubeConflict, NotFoundError
from vpcnet.kube.client.api import MERGE_PATCH
from vpcnet.kube.client.conflicts import CONFLICT_RETRIES, conflict_pause
from vpcnet.kube.client.nodes import NodesApi
from vpcnet.kube.types import Taint


class NodeTaintsApi(NodesApi):
    def ensure_taint(self, node: str, key: str, effect: str, value: str = "") -> bool:
        """Converge: the node carries taint ``key:effect``. True if a write was needed."""
        want = Taint(key=key, effect=effect, value=value)

        def change(taints: tuple[Taint, ...]) -> tuple[Taint, ...] | None:
            if any(t.key == key and t.effect == effect for t in taints):
                return None
            return (*taints, want)

        return self._update_taints(node, change, missing_ok=False)

    def remove_taint(self, node: str, key: str, effect: str | None = None) -> bool:
        """Idempotent: drop taint ``key`` (of ``effect`` if given); a missing node is fine."""

        def change(taints: tuple[Taint, ...]) -> tuple[Taint, ...] | None:
            kept = tuple(t for t in taints if not (t.key == key and effect in (None, t.effect)))
            return None if len(kept) == len(taints) else kept

        return self._update_taints(node, change, missing_ok=True)

    def _update_taints(
        self,
        node: str,
        change: Callable[[tuple[Taint, ...]], tuple[Taint, ...] | None],
        *,
        missing_ok: bool,
    ) -> bool:
        for attempt in range(CONFLICT_RETRIES):
            current = self.read_node(node)
            if current is None:
                if missing_ok:
                    return False
                raise NotFoundError(f"node {node} not found")
            taints = change(current.taints)
            if taints is None:
                return False
            patch = {
                # Optimistic concurrency: the server rejects the patch with 409 if the node
                # changed since we read it, so we never overwrite a concurrent taint edit.
                "metadata": {"resourceVersion": current.resource_version},
                "spec": {"taints": [t.to_api() for t in taints] or None},
            }
            try:
                self._json("PATCH", f"/api/v1/nodes/{node}", body=patch, content_type=MERGE_PATCH)
                return True
            except KubeConflict:
                conflict_pause(attempt)
            except NotFoundError:
                if missing_ok:
                    return False
                raise
        raise KubeConflict(409, "Conflict", f"node {node}: taints kept changing under us")
