"""Task and queue names are written once, in ``vpcnet.tasknames``; everyone imports them."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

from vpcnet import tasknames

REPO = Path(__file__).resolve().parents[2]
OWNER = REPO / "vpcnet" / "tasknames.py"
QUEUE_NAMES = frozenset(tasknames.QUEUES)


def product_files() -> list[Path]:
    """The product tree (and the harness, wherever it lives), without the owner."""
    files = [*REPO.glob("vpcnet/**/*.py"), *REPO.glob("vpcnet_sim/**/*.py"),
             *REPO.glob("workers/*.py"), *REPO.glob("beat/*.py")]
    return [f for f in files if f != OWNER]


def _str(node: ast.AST | None) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def name_literals(path: Path) -> list[str]:
    """``line: literal`` for each task name written as a string, and each queue name
    written where Celery takes a queue (``queue=``, ``{"queue": …}``, ``Queue(…)``,
    ``*_QUEUE = …``)."""
    tree = ast.parse(path.read_text(), str(path))
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if _str(node) in tasknames.TASKS:
            found.append((node.lineno, str(_str(node))))
        queue_values: list[ast.AST] = []
        if isinstance(node, ast.keyword) and node.arg == "queue":
            queue_values.append(node.value)
        elif isinstance(node, ast.Dict):
            queue_values += [v for k, v in zip(node.keys, node.values, strict=True) if _str(k) == "queue"]
        elif isinstance(node, ast.Call) and getattr(node.func, "id", None) == "Queue":
            queue_values += node.args[:1]
        elif isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id.endswith(("QUEUE", "QUEUES")) for t in node.targets):
            queue_values += list(node.value.elts) if isinstance(node.value, ast.Tuple) else [node.value]
        found += [(v.lineno, str(_str(v))) for v in queue_values if _str(v) in QUEUE_NAMES]
    return [f"{line}: {value}" for line, value in sorted(found)]


def test_task_and_queue_names_are_written_only_in_tasknames() -> None:
    offenders = {str(f.relative_to(REPO)): sites for f in product_files() if (sites := name_literals(f))}
    assert offenders == {}


def test_the_scan_sees_each_way_of_writing_a_name(tmp_path: Path) -> None:
    """Not vacuous: today's tree wrote names in each of these ways."""
    sample = tmp_path / "sample.py"
    sample.write_text(
        '@app.task(name="vpcnet.gc_enis")\n'
        'def f(): app.send_task("vpcnet.provision_node", queue="vpcnet")\n'
        'ROUTES = {"vpcnet.warm_pool": {"queue": "vpcnet"}}\n'
        'QUEUES = (Queue("ec2"),)\n'
        'EC2_QUEUE = "ec2"\n'
        'client = boto3.client("ec2")  # a service name, not a queue\n'
    )
    assert name_literals(sample) == [
        "1: vpcnet.gc_enis", "2: vpcnet", "2: vpcnet.provision_node", "3: vpcnet",
        "3: vpcnet.warm_pool", "4: ec2", "5: ec2",
    ]


def test_tasknames_loads_no_celery() -> None:
    """The watcher and the control layer's scans import it without Celery's machinery."""
    code = ("import json, sys, vpcnet.tasknames\n"
            "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in ('celery', 'kombu'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == []


def test_every_task_of_the_app_has_its_queue_here() -> None:
    from workers import app

    app.loader.import_default_modules()  # the app's ``include``: workers.tasks
    ours = {name for name in app.tasks if name.startswith("vpcnet.")}
    assert ours == set(tasknames.TASKS)
    assert {name: route["queue"] for name, route in app.conf.task_routes.items()} == dict(tasknames.QUEUE_OF)
    assert set(tasknames.QUEUE_OF.values()) == QUEUE_NAMES
