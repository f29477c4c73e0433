"""Nodes: list, read, and merge labels and annotations (maps: no read, no race)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from vpcnet.domain import NodeRef
from vpcnet.errors import ConfigError, NotFoundError, WatchExpired
from vpcnet.kube.client.api import LIST_PAGE, MERGE_PATCH, KubeApi
from vpcnet.kube.types import NodeObj
from vpcnet.wellknown import STATUS_ANNOTATION


class NodesApi(KubeApi):
    def list_nodes(self) -> tuple[list[NodeObj], str]:
        """Every node, and the list's resourceVersion to start a watch from (paged)."""
        nodes: list[NodeObj] = []
        cont = ""
        while True:
            query = [("limit", str(LIST_PAGE))]
            if cont:
                query.append(("continue", cont))
            try:
                page = self._json("GET", "/api/v1/nodes", query=query)
            except WatchExpired:
                # The continue token expired mid-list: start over for a consistent snapshot.
                nodes, cont = [], ""
                continue
            nodes.extend(NodeObj.from_api(item) for item in page.get("items") or ())
            meta = page.get("metadata") or {}
            cont = str(meta.get("continue") or "")
            if not cont:
                return nodes, str(meta.get("resourceVersion") or "")

    def read_node(self, name: str) -> NodeObj | None:
        """The node, or None when it does not exist."""
        try:
            return NodeObj.from_api(self._json("GET", f"/api/v1/nodes/{name}"))
        except NotFoundError:
            return None

    def get_node(self, name: str) -> NodeRef | None:
        """The node as a domain value; None when it does not exist.

        Raises :class:`ConfigError` when the node has no (or a non-AWS) providerID:
        vpcnet cannot act on it and retrying will not change that.
        """
        node = self.read_node(name)
        if node is None:
            return None
        try:
            return node.to_ref()
        except ValueError as e:
            raise ConfigError(f"node {name}: {e}") from e

    def set_labels(self, node: str, labels: Mapping[str, str | None]) -> None:
        """Merge ``labels`` into the node's labels; a None value removes that label."""
        self._patch_metadata_map(node, "labels", labels)

    def set_annotations(self, node: str, annotations: Mapping[str, str | None]) -> None:
        """Merge ``annotations`` into the node's; a None value removes that annotation."""
        self._patch_metadata_map(node, "annotations", annotations)

    def set_status_summary(self, node: str, summary: Mapping[str, Any]) -> None:
        """Publish vpcnet's view of the node (phase, ENIs, IPs, error) as an annotation."""
        self.set_annotations(node, {STATUS_ANNOTATION: json.dumps(dict(summary), sort_keys=True)})

    def _patch_metadata_map(self, node: str, field: str, values: Mapping[str, str | None]) -> None:
        if not values:
            return
        # A merge patch of a map touches only the given keys: no read, no race.
        patch = {"metadata": {field: dict(values)}}
        self._json("PATCH", f"/api/v1/nodes/{node}", body=patch, content_type=MERGE_PATCH)
