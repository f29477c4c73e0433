"""node_ready: the agent reported that it programmed the node's current ENIs.

Only then does the node lose its not-ready taint (invariant 5) and become READY. "The
current ENIs" is one write of the store, named by its version (epoch, generation,
write_id): a report about another history (before a FLUSHALL or a failover that lost
writes) or about a write the store no longer holds is no proof (invariant 7).
"""

from __future__ import annotations

import time

from vpcnet.control.common import EVENT_NORMAL, log, node_lock
from vpcnet.control.context import ControlContext
from vpcnet.domain import NodePhase
from vpcnet.errors import PermanentError, TemporaryError
from vpcnet.state.control import NodeState
from vpcnet.wellknown import NOT_READY_TAINT

# How long node_ready waits for a held node lock before it raises LockHeld (and retries).
LOCK_WAIT_SECONDS = 1.0
_LOCK_POLL_SECONDS = 0.02


def wait_for_lock_release(ctx: ControlContext, node_name: str, timeout: float) -> None:
    """Until no pass holds the node's lock, for at most ``timeout`` (Redis sends no word
    of a release: a short poll of one key)."""
    deadline = time.monotonic() + timeout
    while ctx.state.lock_held(node_name) and time.monotonic() < deadline:
        time.sleep(_LOCK_POLL_SECONDS)


def agent_has_programmed(ctx: ControlContext, st: NodeState) -> bool:
    # The version and the report come from one transaction, not from ``st``: a report
    # is then never compared with an older read of the store than its own.
    current, agent = ctx.state.read_node_and_agent(st.name)
    if agent is None or current != st.version:
        return False
    # Exactly this write: after a rollback the same generation can name another state.
    return agent.has_programmed(current)


def node_ready(ctx: ControlContext, node_name: str) -> bool:
    """Converge: True when the node is READY (taint gone); False if the agent is not there yet."""
    st = ctx.state.read_node(node_name)
    if st is None or st.phase not in (NodePhase.PROVISIONED, NodePhase.READY):
        return False
    if not agent_has_programmed(ctx, st):
        return st.phase is NodePhase.READY
    # The pass whose write the agent reports may still hold the node's lock for its last
    # moment (its write-back is what the agent saw): wait that out, not LockHeld's retry
    # (2 s, sized for a whole pass), which a lone node's join otherwise paid at random.
    wait_for_lock_release(ctx, node_name, LOCK_WAIT_SECONDS)
    with node_lock(ctx, node_name):
        st = ctx.state.read_node(node_name)
        if st is None or st.phase not in (NodePhase.PROVISIONED, NodePhase.READY):
            return False
        ctx.kube.remove_taint(node_name, NOT_READY_TAINT)
        if st.phase is not NodePhase.READY:
            ctx.state.set_fields(node_name, {"phase": NodePhase.READY.value}, register=False)
            try:
                ctx.kube.emit_event(node_name, "NetworkReady",
                                    f"agent programmed generation {st.generation} "
                                    f"(epoch {st.epoch or '-'})", EVENT_NORMAL)
            except (PermanentError, TemporaryError) as e:
                log.warning("cannot emit event", node=node_name, error=str(e))
    return True
