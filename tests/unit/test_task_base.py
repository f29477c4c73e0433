"""Every task runs on ``workers.base.ControlTask``, and a task's error reaches whoever
reads its result (Flower, ``AsyncResult``) with its type and message."""

from __future__ import annotations

import inspect
from typing import Any

import pytest
from celery import Celery
from celery.backends.base import BaseBackend

from vpcnet import errors
from vpcnet.errors import PermanentError, TemporaryError, VpcnetError
from vpcnet.tasknames import TASKS

ARGUMENT_SAMPLES: dict[str, Any] = {"message": "what went wrong", "code": "InvalidParameterValue",
                                    "status": 409, "reason": "Conflict"}


def error_classes() -> list[type[VpcnetError]]:
    found: list[type[VpcnetError]] = []
    todo: list[type[VpcnetError]] = [VpcnetError]
    while todo:
        cls = todo.pop()
        found.append(cls)
        todo += [c for c in cls.__subclasses__() if c.__module__ == errors.__name__]
    return sorted(set(found), key=lambda c: c.__name__)


def sample(cls: type[VpcnetError]) -> VpcnetError:
    params = inspect.signature(cls.__init__).parameters.values()
    positional = [p.name for p in params
                  if p.name != "self" and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return cls(*(ARGUMENT_SAMPLES[name] for name in positional))


def test_every_task_runs_on_the_base_class() -> None:
    from workers import app
    from workers.base import ControlTask

    app.loader.import_default_modules()  # the app's ``include``: workers.tasks
    for name in TASKS:
        task = app.tasks[name]
        assert isinstance(task, ControlTask), name
        assert task.autoretry_for == (TemporaryError,) and task.throws == (PermanentError,)
        assert task.acks_late and task.reject_on_worker_lost and task.retry_jitter


@pytest.mark.parametrize("cls", error_classes(), ids=lambda c: c.__name__)
def test_an_error_survives_the_result_backends_json(cls: type[VpcnetError]) -> None:
    """The backend stores ``type`` and ``args`` and rebuilds ``type(*args)``: an error whose
    ``args`` are not its constructor's comes back as a bare ``Exception``."""
    backend = BaseBackend(Celery("t", set_as_current=False), serializer="json")
    error = sample(cls)
    rebuilt = backend.exception_to_python(backend.prepare_exception(error))
    assert type(rebuilt) is cls and str(rebuilt) == str(error)
