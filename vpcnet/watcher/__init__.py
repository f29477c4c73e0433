"""The watcher process: Nodes in, deduplicated idempotent tasks out.

One idea per module:

- ``loop``: :class:`~vpcnet.watcher.loop.Watcher`, the one thread that handles every
  fed item and due timer; leadership hand-over.
- ``inbox``: the items the feeder threads put on the loop's queue.
- ``actions``: the leader's acts on nodes (labels, taint, warning Events, tasks) and its
  memory of them this term.
- ``enqueue``: a task through its dedup claim, with a trailing edge.
- ``status``: the ``vpcnet.io/status`` annotation writer.
- ``decisions`` (pure): what to enqueue and write, besides ``vpcnet.kube.nodeplan``.
- ``timers`` (pure): the loop's timers and per-node retry backoff.
- ``stats``: counters for logs and tests.

Nothing is imported here, so the pure modules load no I/O library.
"""
