"""The keys vpcnet writes or reads on other systems' objects: node taints, labels and
annotations, ENI tags (like Kubernetes' ``well_known_labels.go``).

Each key is defined here and only here (``tests/unit/test_facts_single.py`` keeps it
so): a key spelt twice can drift, and a taint that the watcher adds under one spelling
and the control plane removes under another keeps the node unschedulable for ever.
Pure (it imports nothing), so every layer may import it, the pure ones included.
"""

from __future__ import annotations

# Every key below lives under this prefix; the watcher's projection and `vpcnet status`
# recognise vpcnet's own keys by it.
KEY_PREFIX = "vpcnet.io/"

# --- node taints ---------------------------------------------------------------------
# Keeps pods off a node until its agent has programmed the ENIs (invariant 5; the
# seed's k8s-vpcnet/no-interface-configured). The watcher adds it, node_ready removes it.
NOT_READY_TAINT = "vpcnet.io/not-ready"
# A warm-pool node whose every IP is assigned: new pods would only fail their CNI ADD.
NO_FREE_IPS_TAINT = "vpcnet.io/no-free-ips"

# --- node labels ---------------------------------------------------------------------
INSTANCE_ID_LABEL = "vpcnet.io/instance-id"

# --- node annotations ----------------------------------------------------------------
# Written by vpcnet: its own summary of the node (phase, ENIs, IPs, last error), JSON.
STATUS_ANNOTATION = "vpcnet.io/status"
# Read by vpcnet (custom networking, vpcnet.control.networking): per-node overrides.
MODE_ANNOTATION = "vpcnet.io/mode"
IP_FAMILY_ANNOTATION = "vpcnet.io/ip-family"  # ipv4 | ipv6 | dual
SUBNET_ANNOTATION = "vpcnet.io/subnet-id"
SUBNET_TAGS_ANNOTATION = "vpcnet.io/subnet-tags"  # "k=v,k2=v2": the matching subnet with most free IPs
SECURITY_GROUPS_ANNOTATION = "vpcnet.io/security-groups"  # "sg-1,sg-2"
PROFILE_ANNOTATION = "vpcnet.io/profile"

# --- EC2 tags on the ENIs vpcnet creates ---------------------------------------------
# The IAM policy conditions on TAG_CLUSTER (manifests, tests/unit/test_iam_policy.py).
TAG_CLUSTER = "vpcnet.io/cluster"
TAG_NODE = "vpcnet.io/node"
TAG_INSTANCE = "vpcnet.io/instance-id"
# Value: vpcnet.control.view.created_at_tag / created_at (the one codec).
TAG_CREATED_AT = "vpcnet.io/created-at"
