"""The shared JSON logging: one object per line, static and bound fields, stdlib records
through the same formatter, secrets masked, and Celery's task fields bound per run."""

from __future__ import annotations

import io
import json
import logging
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import structlog
from celery import Celery

from vpcnet.observability import celery_hooks
from vpcnet.observability.logs import MASK, configure_logging, mask_secrets
from vpcnet.tasknames import GC_ENIS, PROVISION_NODE


@pytest.fixture
def logs() -> Iterator[Callable[..., list[dict[str, Any]]]]:
    """``logs(component, **kw)`` configures JSON logging into a buffer and returns a
    reader of the lines so far; the previous logging setup is restored afterwards."""
    root = logging.getLogger()
    saved_handlers, saved_level = list(root.handlers), root.level
    buf = io.StringIO()

    def setup(component: str = "test", level: str = "info", **kw: Any) -> None:
        configure_logging(component, level, stream=buf, **kw)

    def read() -> list[dict[str, Any]]:
        return [json.loads(line) for line in buf.getvalue().splitlines()]

    read.setup = setup  # type: ignore[attr-defined]
    setup()
    try:
        yield read
    finally:
        structlog.contextvars.clear_contextvars()
        structlog.reset_defaults()
        for h in list(root.handlers):
            root.removeHandler(h)
        for h in saved_handlers:
            root.addHandler(h)
        root.setLevel(saved_level)


def test_structlog_events_are_json_lines_with_bound_node_eni_task_and_container(logs: Any) -> None:
    logs.setup("worker", static={"node": "static-node"})
    log = structlog.get_logger("vpcnet.test")
    with structlog.contextvars.bound_contextvars(task=PROVISION_NODE, task_id="t-1"):
        log.info("eni attached", node="n1", eni="eni-0abc", device_index=2)
    with structlog.contextvars.bound_contextvars(container="c0ffee", ifname="eth0"):
        log.warning("slow ADD", ms=120.5)
    log.info("after")
    first, second, third = logs()
    assert first["event"] == "eni attached" and first["level"] == "info"
    assert first["logger"] == "vpcnet.test" and first["component"] == "worker"
    assert (first["node"], first["eni"], first["device_index"]) == ("n1", "eni-0abc", 2)
    assert (first["task"], first["task_id"]) == (PROVISION_NODE, "t-1")
    assert first["timestamp"].endswith("Z")
    assert second["container"] == "c0ffee" and second["level"] == "warning"
    assert second["node"] == "static-node"  # the process-wide field, unless bound
    assert "task" not in third and "container" not in third  # unbound after the block


def test_stdlib_records_get_the_same_fields_and_their_extras(logs: Any) -> None:
    logs.setup("agent", static={"node": "ip-10-0-0-1"})
    with structlog.contextvars.bound_contextvars(container="abc123"):
        logging.getLogger("vpcnet.agent.cni").info(
            "cni %s %s -> %s", "ADD", "abc123/eth0", "ok", extra={"code": 0, "eni": "eni-1"}
        )
    (line,) = logs()
    assert line["event"] == "cni ADD abc123/eth0 -> ok"
    assert line["logger"] == "vpcnet.agent.cni"
    assert (line["component"], line["node"], line["container"]) == ("agent", "ip-10-0-0-1", "abc123")
    assert (line["code"], line["eni"]) == (0, "eni-1")


def test_level_filtering_and_reconfiguring_never_doubles_lines(logs: Any) -> None:
    logs.setup("watcher", level="warning")
    logs.setup("watcher", level="warning")  # e.g. Celery calling the hook twice
    structlog.get_logger("x").info("dropped")
    logging.getLogger("y").debug("dropped too")
    structlog.get_logger("x").warning("kept")
    logging.getLogger("y").error("kept too")
    assert [line["event"] for line in logs()] == ["kept", "kept too"]


def test_exceptions_are_rendered_inside_the_json_object(logs: Any) -> None:
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        structlog.get_logger("x").exception("structlog failed")
        logging.getLogger("y").exception("stdlib failed")
    a, b = logs()
    assert "RuntimeError: boom" in a["exception"] and "Traceback" in a["exception"]
    assert "RuntimeError: boom" in b["exception"]


def test_a_celery_task_error_carries_a_traceback_only_when_celery_asks_for_one(logs: Any) -> None:
    """Celery's tracer logs every task error with its traceback in ``extra["data"]`` and
    passes ``exc_info`` only for unexpected ones; an expected error (a task's ``throws``)
    must stay one line without a traceback."""
    trace = logging.getLogger("celery.app.trace")
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        context = {"name": PROVISION_NODE, "exc": "RuntimeError('boom')",
                   "traceback": "Traceback (most recent call last): ..."}
        trace.info("Task %(name)s raised expected: %(exc)s", context, extra={"data": context})
        trace.error("Task %(name)s raised unexpected: %(exc)s", context, exc_info=True,
                    extra={"data": context})
    expected, unexpected = logs()
    assert "raised expected" in expected["event"] and "Traceback" not in json.dumps(expected)
    assert expected["data"]["exc"] == "RuntimeError('boom')"
    assert "Traceback" in unexpected["exception"] and "Traceback" in unexpected["data"]["traceback"]


@pytest.mark.parametrize(
    ("raw", "masked"),
    [
        ("redis://:hunter2@redis:6379/0", f"redis://:{MASK}@redis:6379/0"),
        ("rediss://workers:p%40ss@r.example:6380/1", f"rediss://workers:{MASK}@r.example:6380/1"),
        ("cannot connect to redis://u:pw@h:1/0: refused", f"cannot connect to redis://u:{MASK}@h:1/0: refused"),
        ("redis://redis:6379/0", "redis://redis:6379/0"),  # nothing to hide
        ("a=redis://u:x@h b=amqp://g:y@k", f"a=redis://u:{MASK}@h b=amqp://g:{MASK}@k"),
        ("no url here: user:pw@host", "no url here: user:pw@host"),
    ],
)
def test_mask_secrets(raw: str, masked: str) -> None:
    assert mask_secrets(raw) == masked


def test_secrets_never_reach_the_output_whoever_logs_them(logs: Any) -> None:
    url = "redis://agent:t0psecret@redis.vpcnet-system:6379/0"
    structlog.get_logger("x").info(f"connecting to {url}", url=url, password="t0psecret",
                                   nested={"broker": url, "secret": "t0psecret", "n": 1})
    logging.getLogger("y").warning("lost %s", url, extra={"aws_secret_access_key": "t0psecret"})
    out = [json.dumps(line) for line in logs()]
    assert len(out) == 2
    assert all("t0psecret" not in line for line in out)
    first = json.loads(out[0])
    assert first["url"] == f"redis://agent:{MASK}@redis.vpcnet-system:6379/0"
    assert first["password"] == MASK and first["nested"]["secret"] == MASK
    assert first["nested"]["n"] == 1


def test_fields_bound_in_one_thread_stay_out_of_another(logs: Any) -> None:
    log = structlog.get_logger("x")
    bound, other = threading.Event(), threading.Event()

    def request() -> None:
        structlog.contextvars.bind_contextvars(container="c1")
        bound.set()
        other.wait(5)
        log.info("in request")

    t = threading.Thread(target=request)
    t.start()
    bound.wait(5)
    log.info("elsewhere")
    other.set()
    t.join(5)
    lines = {line["event"]: line for line in logs()}
    assert lines["in request"]["container"] == "c1"
    assert "container" not in lines["elsewhere"]


def test_a_celery_task_run_binds_task_id_name_and_node(logs: Any) -> None:
    app = Celery("t", set_as_current=False)
    # shared=False: a shared task joins every app finalized later, the workers' app too,
    # where it would replace the real task of that name.

    @app.task(name=PROVISION_NODE, bind=True, shared=False)  # type: ignore[untyped-decorator]
    def provision(self: Any, node: str, iid: str, az: str) -> None:
        return None

    @app.task(name=GC_ENIS, shared=False)  # type: ignore[untyped-decorator]
    def gc() -> None:
        return None

    log = structlog.get_logger("vpcnet.tasks")
    celery_hooks._on_prerun(task_id="id-1", task=provision, args=["n7", "i-1", "az"])
    log.info("inside")
    celery_hooks._on_postrun(task_id="id-1", task=provision, retval=None, state="SUCCESS")
    log.info("between")
    celery_hooks._on_prerun(task_id="id-2", task=gc, args=[])
    log.info("cluster-wide")
    celery_hooks._on_postrun(task_id="id-2", task=gc, retval=None, state="SUCCESS")
    inside, between, cluster = logs()
    assert (inside["task"], inside["task_id"], inside["node"]) == (PROVISION_NODE, "id-1", "n7")
    assert not {"task", "task_id", "node"} & set(between)
    assert (cluster["task"], cluster["task_id"]) == (GC_ENIS, "id-2")
    assert "node" not in cluster
