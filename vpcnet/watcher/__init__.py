"""The watcher process: Nodes in, deduplicated idempotent tasks out.

``loop`` holds :class:`~vpcnet.watcher.loop.Watcher`. Nothing is imported here, so the
package's pure modules load no I/O library.
"""
