"""Every task runs on ``workers.base.ControlTask``."""

from __future__ import annotations

from vpcnet.errors import PermanentError, TemporaryError
from vpcnet.tasknames import TASKS


def test_every_task_runs_on_the_base_class() -> None:
    from workers import app
    from workers.base import ControlTask

    app.loader.import_default_modules()  # the app's ``include``: workers.tasks
    for name in TASKS:
        task = app.tasks[name]
        assert isinstance(task, ControlTask), name
        assert task.autoretry_for == (TemporaryError,) and task.throws == (PermanentError,)
        assert task.acks_late and task.reject_on_worker_lost and task.retry_jitter
