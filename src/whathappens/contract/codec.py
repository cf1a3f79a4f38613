"""Facts dataclasses ⇄ JSON, and their JSON Schema, from the type annotations alone.

The journey's output contract is a set of plain dataclasses (``contract.facts``): drivers fill
them, renderers read them, and this module is the one place that turns them into JSON, reads
JSON back into them, and writes the JSON Schema that describes them. Because all three come
from the same annotations, a field renamed or retyped in a dataclass changes the schema (which
a test compares with the checked-in file) and every reader that names it (which mypy checks).

Supported annotations: ``bool``, ``int``, ``float``, ``str``, ``None``, ``X | Y``,
``list[X]``, ``tuple[X, ...]``, fixed ``tuple[X, Y]``, ``dict[str, X]``, ``Literal[...]``,
``object`` (any JSON) and nested dataclasses. Every field is written, ``None`` as ``null``;
a field's ``metadata["doc"]`` becomes its schema description.
"""

from __future__ import annotations

import dataclasses
import functools
import types
import typing
from typing import Any, Literal, TypeVar, Union, get_args, get_origin

T = TypeVar("T")
JSON = None | bool | int | float | str | list["JSON"] | dict[str, "JSON"]


class ContractError(ValueError):
    """JSON that does not fit the contract (a stored journey from another version, say)."""


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def fields_of(cls: type) -> list[tuple[str, Any, dataclasses.Field[Any]]]:
    hints = _hints(cls)
    return [(f.name, hints[f.name], f) for f in dataclasses.fields(cls)]


def json_key(f: dataclasses.Field[Any]) -> str:
    """The field's key in the JSON (``from`` is a keyword in Python: ``from_``)."""
    return str(f.metadata.get("json", f.name))


def _default(f: dataclasses.Field[Any]) -> object:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return dataclasses.MISSING


def _written(obj: object, f: dataclasses.Field[Any], value: object) -> bool:
    if value is None and getattr(type(obj), "omit_none", False):
        return False
    return not (f.metadata.get("omit_default") and value == _default(f))


def to_json(value: object) -> JSON:
    """A facts value as JSON: dataclasses become objects (every field unless the class or
    field says to leave defaults out), tuples become lists."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        out: dict[str, JSON] = {}
        for name, _, f in fields_of(type(value)):
            v = getattr(value, name)
            if f.metadata.get("flatten"):
                out.update({str(k): to_json(x) for k, x in v.items()})
            elif _written(value, f, v):
                out[json_key(f)] = to_json(v)
        return out
    if isinstance(value, list | tuple):
        return [to_json(v) for v in value]
    if isinstance(value, dict):
        return {str(k): to_json(v) for k, v in value.items()}
    raise TypeError(f"{type(value).__name__} is not part of the journey contract")


def from_json(tp: type[T], data: object) -> T:
    """``data`` (parsed JSON) read back as ``tp``; :class:`ContractError` when it does not fit."""
    return typing.cast(T, _read(tp, data, "$"))


def _union_args(tp: Any) -> tuple[Any, ...] | None:
    origin = get_origin(tp)
    if origin is Union or origin is types.UnionType:
        return get_args(tp)
    return None


def _read(tp: Any, data: object, where: str) -> object:
    if tp is object or tp is Any:
        return data
    if tp is type(None) or tp is None:
        if data is not None:
            raise ContractError(f"{where}: expected null")
        return None
    alts = _union_args(tp)
    if alts is not None:
        if data is None and type(None) in alts:
            return None
        errors = []
        for alt in (a for a in alts if a is not type(None)):
            try:
                return _read(alt, data, where)
            except ContractError as err:
                errors.append(str(err))
        raise ContractError("; ".join(errors) or f"{where}: no alternative fits")
    if tp is bool:
        if not isinstance(data, bool):
            raise ContractError(f"{where}: expected a boolean")
        return data
    if tp is int:
        if isinstance(data, bool) or not isinstance(data, int):
            raise ContractError(f"{where}: expected an integer")
        return data
    if tp is float:
        if isinstance(data, bool) or not isinstance(data, int | float):
            raise ContractError(f"{where}: expected a number")
        return float(data)
    if tp is str:
        if not isinstance(data, str):
            raise ContractError(f"{where}: expected a string")
        return data
    origin = get_origin(tp)
    if origin is Literal:
        if data not in get_args(tp):
            raise ContractError(f"{where}: expected one of {get_args(tp)}")
        return data
    if origin in (list, tuple):
        if not isinstance(data, list):
            raise ContractError(f"{where}: expected an array")
        args = get_args(tp)
        if origin is list or (len(args) == 2 and args[1] is Ellipsis):
            items = [_read(args[0], v, f"{where}[{i}]") for i, v in enumerate(data)]
            return items if origin is list else tuple(items)
        if len(data) != len(args):
            raise ContractError(f"{where}: expected {len(args)} items")
        return tuple(_read(a, v, f"{where}[{i}]") for i, (a, v) in enumerate(zip(args, data,
                                                                                 strict=True)))
    if origin is dict:
        if not isinstance(data, dict):
            raise ContractError(f"{where}: expected an object")
        value_tp = get_args(tp)[1]
        return {str(k): _read(value_tp, v, f"{where}.{k}") for k, v in data.items()}
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return _read_dataclass(tp, data, where)
    raise TypeError(f"{tp!r} is not part of the journey contract")


def _read_dataclass(cls: type, data: object, where: str) -> object:
    if not isinstance(data, dict):
        raise ContractError(f"{where}: expected an object")
    kwargs: dict[str, object] = {}
    known: set[str] = set()
    flat: str | None = None
    # A class may choose a field's type from the data (a span's attrs by its name).
    chooser = getattr(cls, "field_types", None)
    chosen: dict[str, Any] = chooser(data) if chooser is not None else {}
    for name, tp, f in fields_of(cls):
        tp = chosen.get(name, tp)
        key = json_key(f)
        if f.metadata.get("flatten"):
            flat = name
            continue
        known.add(key)
        if key in data:
            kwargs[name] = _read(tp, data[key], f"{where}.{key}")
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ContractError(f"{where}: '{key}' is missing")
    unknown = {str(k): v for k, v in data.items() if k not in known}
    if unknown:
        if flat is None:
            raise ContractError(f"{where}: unknown field(s) {', '.join(sorted(unknown))}")
        kwargs[flat] = unknown
    return cls(**kwargs)


# ------------------------------------------------------------------------------ JSON Schema
def schema_of(tp: Any, defs: dict[str, object]) -> dict[str, object]:
    """The JSON Schema of ``tp``; dataclasses go into ``defs`` by name and are referenced."""
    if tp is object or tp is Any:
        return {}
    if tp is type(None) or tp is None:
        return {"type": "null"}
    alts = _union_args(tp)
    if alts is not None:
        parts = [schema_of(a, defs) for a in alts]
        simple = [p.get("type") for p in parts]
        if all(isinstance(s, str) for s in simple) and all(len(p) == 1 for p in parts):
            return {"type": list(dict.fromkeys(typing.cast(list[str], simple)))}
        return {"anyOf": parts}
    basic = {bool: "boolean", int: "integer", float: "number", str: "string"}
    if tp in basic:
        return {"type": basic[tp]}
    origin = get_origin(tp)
    if origin is Literal:
        return {"enum": list(get_args(tp))}
    if origin in (list, tuple):
        args = get_args(tp)
        if origin is list or (len(args) == 2 and args[1] is Ellipsis):
            return {"type": "array", "items": schema_of(args[0], defs)}
        return {"type": "array", "prefixItems": [schema_of(a, defs) for a in args],
                "minItems": len(args), "maxItems": len(args)}
    if origin is dict:
        return {"type": "object", "additionalProperties": schema_of(get_args(tp)[1], defs)}
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        name = tp.__name__
        if name not in defs:
            defs[name] = {}  # a placeholder first: a dataclass may refer to itself
            defs[name] = _dataclass_schema(tp, defs)
        return {"$ref": f"#/$defs/{name}"}
    raise TypeError(f"{tp!r} is not part of the journey contract")


def _dataclass_schema(cls: type, defs: dict[str, object]) -> dict[str, object]:
    props: dict[str, object] = {}
    required = []
    for _, tp, f in fields_of(cls):
        if f.metadata.get("flatten"):
            continue
        prop = schema_of(tp, defs)
        doc = f.metadata.get("doc")
        if doc:
            prop = {**prop, "description": doc}
        props[json_key(f)] = prop
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            required.append(json_key(f))
    out: dict[str, object] = {"type": "object"}
    if cls.__doc__ and not cls.__doc__.startswith(f"{cls.__name__}("):
        out["description"] = " ".join(cls.__doc__.split())
    if required:
        out["required"] = required
    out["properties"] = props
    # Closed unless the class says otherwise: a field the contract does not know is a bug.
    out["additionalProperties"] = any(f.metadata.get("flatten") for _, _, f in fields_of(cls))
    return out
