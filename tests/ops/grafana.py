"""A dashboard checked against Grafana's own dashboard model: the types Grafana's foundation SDK generates from
Grafana's schema (the dashboard, each panel plugin's options and field config, each data source's query). The
file is read into that model and written back: a key the model does not know is lost on the way (misspelt,
misplaced), and every value read must be of the type, or one of the values, that the model declares for it."""

from __future__ import annotations

import enum
import json
import types
import typing
from collections.abc import Iterator, Mapping
from typing import Any

from grafana_foundation_sdk.cog import plugins
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.dashboard import Dashboard

plugins.register_default_plugins()  # each panel plugin's options and each data source's query, typed
MODELS = "grafana_foundation_sdk.models"


def problems(dashboard: Mapping[str, Any]) -> list[str]:
    """Everything in the dashboard that Grafana's model does not hold as written; none for a sound one."""
    try:
        model = Dashboard.from_json(dict(dashboard))
    except (AttributeError, KeyError, TypeError) as error:
        return [f"the model cannot read it: {error!r}"]
    written = json.loads(json.dumps(model, cls=JSONEncoder))
    found = [f"{where}: not in Grafana's model" for where in _lost(dashboard, written, "dashboard")]
    found += [f"panel {panel.title!r}: Grafana has no panel plugin {panel.type_val!r}"
              for panel in model.panels or [] if isinstance(panel.options, dict)]  # fmt: skip
    return found + list(_misfits(model, Dashboard, "dashboard"))


def _lost(given: Any, written: Any, where: str) -> Iterator[str]:
    """What of `given` is not in `written`, key by key."""
    if isinstance(given, Mapping) and isinstance(written, Mapping):
        for key, value in given.items():
            if key not in written:
                yield f"{where}.{key}"
            else:
                yield from _lost(value, written[key], f"{where}.{key}")
    elif isinstance(given, list) and isinstance(written, list) and len(given) == len(written):
        for number, (one, other) in enumerate(zip(given, written, strict=True)):
            yield from _lost(one, other, f"{where}[{number}]")
    elif given != written:
        yield f"{where} (written back as {written!r})"


def _misfits(value: Any, kind: Any, where: str) -> Iterator[str]:
    """Where `value` is not of `kind`, as the model's annotations declare it; a model object is checked against its
    own class, which is how a panel's options are typed by its plugin."""
    origin, arguments = typing.get_origin(kind), typing.get_args(kind)
    if kind is Any or kind is object:
        if type(value).__module__.startswith(MODELS):
            yield from _misfits(value, type(value), where)
    elif origin in (typing.Union, types.UnionType):
        each = [list(_misfits(value, argument, where)) for argument in arguments]
        if all(each):
            yield from min(each, key=len)
    elif origin is typing.Literal:
        if value not in arguments:
            yield f"{where}: {value!r} is not one of {arguments}"
    elif origin is list:
        yield from _items(value, list, enumerate(value) if isinstance(value, list) else (), arguments[0], where)
    elif origin is dict:
        yield from _items(value, dict, value.items() if isinstance(value, dict) else (), arguments[1], where)
    elif isinstance(kind, type) and issubclass(kind, enum.Enum):
        allowed = sorted(str(member.value) for member in kind)
        if (value.value if isinstance(value, enum.Enum) else value) not in {member.value for member in kind}:
            yield f"{where}: {value!r} is not one of {allowed}"
    elif isinstance(kind, type):
        yield from _scalar_or_model(value, kind, where)


def _items(value: Any, container: type, items: Any, kind: Any, where: str) -> Iterator[str]:
    if not isinstance(value, container):
        yield f"{where}: {value!r} is not a {container.__name__}"
    for key, item in items:
        yield from _misfits(item, kind, f"{where}[{key!r}]")


def _scalar_or_model(value: Any, kind: type, where: str) -> Iterator[str]:
    """JSON's numbers: an integer is a number too, and a boolean is neither."""
    if kind is type(None):
        fits = value is None
    elif kind in (int, float):
        fits = isinstance(value, int if kind is int else (int, float)) and not isinstance(value, bool)
    else:
        fits = isinstance(value, kind)
    if not fits:
        yield f"{where}: {value!r} is not of type {kind.__name__}"
    elif type(value).__module__.startswith(MODELS):
        for name, hint in typing.get_type_hints(type(value)).items():
            if hasattr(value, name):
                yield from _misfits(getattr(value, name), hint, f"{where}.{name}")
