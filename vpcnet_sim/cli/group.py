"""A subcommand whose own subcommands (``vpcnet sim ec2``, ``vpcnet bench cni``) live in
other modules, each defining ``register(subparsers)``."""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Sequence
from typing import Any


def register_group(sub: Any, name: str, help: str, metavar: str, modules: Sequence[str]) -> None:
    parser: argparse.ArgumentParser = sub.add_parser(name, help=help)
    group = parser.add_subparsers(dest=name, metavar=metavar, required=True)
    for modname in modules:
        importlib.import_module(modname).register(group)
