"""The base of every params section: forbids unknown keys and refuses booleans where numbers go."""

from __future__ import annotations

import types
from typing import Annotated, Union, get_args, get_origin

from pydantic import BaseModel, ConfigDict, model_validator
from pydantic_core import PydanticCustomError



class Section(BaseModel):
    """Base of every params section: unknown keys are errors, values are frozen, and a YAML boolean is
    never taken for a number (pydantic would read ``batch_rows: true`` as 1)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    @model_validator(mode="before")
    @classmethod
    def _no_booleans_for_numbers(cls, data):
        if isinstance(data, dict):
            for key, value in data.items():
                field = cls.model_fields.get(key)
                if field is not None and _bool_for_number(field.annotation, value):
                    raise PydanticCustomError("bool_number", "expected a number, got a boolean", {"key": key})
        return data


def _numeric(annotation) -> bool:
    origin = get_origin(annotation)
    if origin is Annotated:
        return _numeric(get_args(annotation)[0])
    if origin in (Union, types.UnionType):
        args = [a for a in get_args(annotation) if a is not type(None)]
        return bool not in args and any(_numeric(a) for a in args)
    return annotation in (int, float)


def _bool_for_number(annotation, value) -> bool:
    """Whether ``value`` holds a YAML boolean where ``annotation`` wants a number (or numbers)."""
    if isinstance(value, bool):
        return _numeric(annotation)
    origin = get_origin(annotation)
    if origin is Annotated:
        return _bool_for_number(get_args(annotation)[0], value)
    if origin in (list, tuple) and isinstance(value, (list, tuple)):
        args = get_args(annotation)
        homogeneous = origin is list or args[-1:] == (Ellipsis,)
        wanted = [args[0]] * len(value) if homogeneous and args else list(args)
        return any(isinstance(v, bool) and _numeric(a) for v, a in zip(value, wanted))
    return False


