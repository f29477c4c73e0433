"""The control plane's work: plain functions taking a ``ControlContext`` and ids.

``provision`` (re-read EC2, plan, act, write), ``release``, ``reconcile``, ``gc``,
``warmpool``. No Celery here: ``workers.tasks`` wraps these thinly.
"""
