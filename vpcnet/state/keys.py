"""Redis key layout, schema version 2. Pure: no redis import.

Every key of one node shares the hash tag ``{<cluster>/<node>}``; cluster-wide keys use
the tag ``{<cluster>}``. This does not make the layout work on Redis Cluster, which is not
supported: the control plane's write script and transactions span a node's keys and
cluster-wide ones at once (``vpcnet.state.control``); Redis Cluster refuses the script
(CROSSSLOT). vpcnet needs one Redis primary.

Per node (writer in brackets):

``node``         hash  [control plane] instance_id, instance_type, az, subnet_id, primary_ip,
                       mode, ip_family (vpcnet.domain.IpFamily), phase (vpcnet.domain.NodePhase), error, updated, and the
                       store version: epoch, generation, write_id (see "Store history")
``enis``         hash  [control plane] eni_id -> EniRecord JSON (vpcnet.domain), pool source
``assigned``     hash  [agent] ip -> Assignment JSON (mirror of the agent's checkpoint); both
                       families: a dual-stack pod has an IPv4 and an IPv6 entry under one key
``cooldown``     zset  [agent] ip -> unix time the IP was freed (not reusable before + cooldown)
``release-req``  set   [control plane] IPs the warm-pool trim wants to give back to EC2, and
                       IPv6 /80 prefixes as their CIDR (``str(IPv6Network)``, compressed)
``release-ok``   set   [agent] members of release-req the agent removed from its pool (unused)
``agent``        hash  [agent] vpcnet.state.records.AgentRecord: ready (0/1), epoch,
                       generation, write_id (the store version programmed), rollback
                       (epoch in which the agent saw the store go back, or empty),
                       heartbeat, free, assigned, cooldown, version, error
``demand``       hash  [agent] ``waiting`` (ADDs waiting for the pool to grow, 0 when none),
                       ``pool`` (IPs in the agent's pool then), ``at`` (unix time of the
                       change, also the watcher's dedup value); the agent publishes its node name
                       on ``agent-ready`` when ADDs start waiting, or still wait after the
                       pool changed; the watcher then enqueues a
                       provisioning pass that plans for it (``PoolUsage.demand``)
``lock``         str   [control plane] per-node lock (token), with TTL
``lock:pass``    hash  [control plane] the provisioning pass holding ``lock``: ``token``, and
                       ``wanted`` when another pass handed its work over to it
                       (``vpcnet.state.claims.PassHandover``); TTL, deleted with the lock

Channels: ``changed`` (per node; control plane publishes after any write of node/enis/
release-req, the agent reacts within a second) and the cluster channel ``agent-ready``
(the agent publishes its node name once it has programmed a write and is ready).

Store history (schema 2; invariant 7). Redis can lose acknowledged writes (asynchronous
replication, a failover, AOF everysec, FLUSHALL, a restored backup), so a generation alone
says nothing: after a loss the control plane counts again from a lower number and the
same (generation) names two different states. Every write of ``node`` + ``enis`` (the one
Lua script in ``vpcnet.state.control``) therefore stamps three fields:

- ``epoch``: the id of the store history (random hex). The script creates one when the
  node hash has none (first write, or after FLUSHALL / a lost node), and *rotates* it
  (new id, generation restarts at 1) when the node's ``agent`` hash shows the store went
  back: the agent reports ``rollback`` equal to the current epoch, or it reports having
  programmed a higher generation of the current epoch than the store holds.
- ``generation``: counts writes within the epoch.
- ``write_id``: random per write, so a rollback followed by a new write that lands on
  the same (epoch, generation) is still told apart.

The agent remembers, next to its checkpoint (``vpcnet.agent.history``), the highest
version it programmed, the epochs it left for newer ones, and a rollback it saw. A store
version of the same epoch that is lower, or equal with another write_id, or of an epoch
it left, is a rollback: the agent reports it (``rollback``), keeps every running pod's
ENI that metadata or the live links still show (``vpcnet.agent.truth``), takes into its
pool only IPs metadata lists, and keeps reporting until the epoch changes.

``node_ready`` (``vpcnet.control.ready``) takes an agent's report as proof only for the
exact write the store holds now (same epoch, generation and write_id, read in one
transaction); versions of two epochs are never compared. Schema-1 data (no epoch on
either side) is compared by generation only.

Cluster-wide: ``schema`` (str "2"), ``nodes`` (set of node names), ``limits:<type>``
(InstanceLimits JSON), ``ratelimit:<class>`` (token bucket hash), ``errors`` (capped list
of recent error JSON), ``dedup:<node>`` (watcher enqueue dedup, with TTL).

Added by the control plane (workers/beat):

- cluster ``ec2-stats`` hash: ``calls:<Action>``, ``throttled:<Action>``, ``errors:<Action>``,
  ``latency_us:<Action>``, ``wait_us:<Action>`` summed over every worker process;
  ``subnet:<id>`` hash (cidr, az, vpc_id) cache of immutable subnet facts;
  ``beat-lock`` str (token, TTL): the one active beat;
  ``gc-lock`` str (token, TTL): fences GC's delete of a leaked ENI that names no node
  (one tagged for a node is fenced by that node's ``lock``);
  ``fill:<what>`` str (TTL): one worker process fills a cache entry (limits, subnet), the
  others wait for it instead of all asking EC2 at once.
- cluster ``credentials`` set (node names with an ACL user) and ``credentials:<node>``
  zset (sha256 of each live password of the node's ACL user -> unix time issued), written
  by the credential issuer only (``vpcnet.state.acl_users``); no agent can read them.
- node ``ec2-calls`` hash: EC2 action -> calls made on behalf of this node.
- node hash ``node`` also carries ``plan_calls`` (JSON action -> minimum EC2 calls of the
  last provisioning pass that acted), ``no_free_ips`` (0/1, taint applied), ``mode``,
  ``pass_epoch`` (ClientToken epoch of an unfinished pass), ``queued:<task>`` (unix
  time, by the Redis server's clock, a scan enqueued that task; dedups beat's follow-ups,
  claimed in one script by ``vpcnet.state.claims``, field name ``followup_field``) and
  ``no_growth`` (why the pool cannot grow — ENI/IP limits reached — or empty when it can;
  the agent fails an ADD at once instead of waiting when nothing else can give it an IP)
  and ``enis_ahead_after`` (unix time before which warm mode adds no ENI held ahead: one
  failed; written fenced by that pass, kept by the write-back; lost, it only means an
  earlier retry).
"""

from __future__ import annotations

SCHEMA_VERSION = 2
PREFIX = "vpcnet"


def followup_field(task: str) -> str:
    """The node hash's ``queued:<task>`` field: when a scan last enqueued ``task``."""
    return f"queued:{task}"


def _check(part: str, what: str) -> str:
    if not part or any(c in part for c in "{}/ \n"):
        raise ValueError(f"invalid {what} for a Redis key: {part!r}")
    return part


class ClusterKeys:
    def __init__(self, cluster: str) -> None:
        self.cluster = _check(cluster, "cluster name")
        self._p = f"{PREFIX}:{{{cluster}}}"

    @property
    def schema(self) -> str:
        return f"{self._p}:schema"

    @property
    def nodes(self) -> str:
        return f"{self._p}:nodes"

    @property
    def errors(self) -> str:
        return f"{self._p}:errors"

    @property
    def agent_ready_channel(self) -> str:
        return f"{self._p}:agent-ready"

    def limits(self, instance_type: str) -> str:
        return f"{self._p}:limits:{_check(instance_type, 'instance type')}"

    def ratelimit(self, action_class: str) -> str:
        return f"{self._p}:ratelimit:{_check(action_class, 'action class')}"

    @property
    def ec2_stats(self) -> str:
        return f"{self._p}:ec2-stats"

    @property
    def beat_lock(self) -> str:
        return f"{self._p}:beat-lock"

    @property
    def gc_lock(self) -> str:
        return f"{self._p}:gc-lock"

    def fill(self, what: str) -> str:
        return f"{self._p}:fill:{_check(what, 'cache entry')}"

    def subnet(self, subnet_id: str) -> str:
        return f"{self._p}:subnet:{_check(subnet_id, 'subnet id')}"

    def dedup(self, node: str) -> str:
        return f"{self._p}:dedup:{_check(node, 'node name')}"

    def dedup_action(self, node: str, action: str) -> str:
        """Watcher enqueue dedup for one action (provision, release, ready) of a node.

        Value: what was enqueued (e.g. the instance id); TTL: the dedup window.
        """
        return f"{self.dedup(node)}:{_check(action, 'action')}"

    @property
    def credentials(self) -> str:
        return f"{self._p}:credentials"

    def node_credentials(self, node: str) -> str:
        return f"{self.credentials}:{_check(node, 'node name')}"

    def node(self, node: str) -> NodeKeys:
        return NodeKeys(self.cluster, node)


class NodeKeys:
    def __init__(self, cluster: str, node: str) -> None:
        self.cluster = _check(cluster, "cluster name")
        self.node_name = _check(node, "node name")
        self._p = f"{PREFIX}:{{{cluster}/{node}}}"

    @property
    def node(self) -> str:
        return f"{self._p}:node"

    @property
    def enis(self) -> str:
        return f"{self._p}:enis"

    @property
    def assigned(self) -> str:
        return f"{self._p}:assigned"

    @property
    def cooldown(self) -> str:
        return f"{self._p}:cooldown"

    @property
    def release_req(self) -> str:
        return f"{self._p}:release-req"

    @property
    def release_ok(self) -> str:
        return f"{self._p}:release-ok"

    @property
    def agent(self) -> str:
        return f"{self._p}:agent"

    @property
    def demand(self) -> str:
        return f"{self._p}:demand"

    @property
    def lock(self) -> str:
        return f"{self._p}:lock"

    @property
    def lock_pass(self) -> str:
        return f"{self._p}:lock:pass"

    @property
    def ec2_calls(self) -> str:
        return f"{self._p}:ec2-calls"

    @property
    def changed_channel(self) -> str:
        return f"{self._p}:changed"

    def all(self) -> list[str]:
        """Every key of the node (for release and Redis-loss tests)."""
        return [
            self.node,
            self.enis,
            self.assigned,
            self.cooldown,
            self.release_req,
            self.release_ok,
            self.agent,
            self.demand,
            self.lock,
            self.lock_pass,
            self.ec2_calls,
        ]
