"""Configuration problems as an operator reads them: one line each, naming the field,
the environment variable a value came from, and what was expected."""

from __future__ import annotations

import json
import typing
from collections.abc import Container
from typing import Final, Literal

import msgspec

from worker.errors import ConfigError

__all__ = ("ConfigErrors", "EnvironmentConfigError", "allowed_values", "validation_problem")

_TYPE_NAMES: Final = {
    "int": "an integer",
    "float": "a number",
    "bool": "true or false",
    "str": "a string",
    "array": "a list",
    "object": "a table",
    "null": "nothing",
}


class ConfigErrors(ConfigError):
    """Several configuration problems; ``problems`` holds one ConfigError each."""

    def __init__(self, problems: list[ConfigError]) -> None:
        self.problems = problems
        BaseException.__init__(self, "\n".join(str(p) for p in problems))
        self.field = problems[0].field
        self.problem = problems[0].problem

    def __str__(self) -> str:
        return "\n".join(str(p) for p in self.problems)


class EnvironmentConfigError(ConfigError):
    """A problem with a value that came from an environment variable, which it names:
    ``BALANCE_SINK_METRICS__PORT=abc: metrics.port: expected an integer`` (a secret's
    value is left out: ``BALANCE_SINK_TDENGINE__PASSWORD: tdengine.password: ...``)."""

    def __init__(self, variable: str, value: str | None, field: str, problem: str) -> None:
        super().__init__(field, problem)
        self.variable = variable
        shown = variable if value is None else f"{variable}={_shown(value)}"
        self.args = (f"{shown}: {field}: {problem}",)


def validation_problem(
    section: str,
    kind: type[msgspec.Struct],
    exc: msgspec.ValidationError,
    any_case: Container[str] = (),
) -> ConfigError:
    """msgspec's error for ``[section]`` in an operator's words: the dotted field, types
    named, the allowed values of a choice listed (``any_case``: fields taking any case)."""
    text = str(exc)
    field = section
    if text.startswith("Object contains unknown field `"):
        unknown = text.split("`")[1]
        return ConfigError(f"{section}.{unknown}", "unknown setting")
    if text.startswith("Object missing required field `"):
        missing = text.split("`")[1]
        return ConfigError(f"{section}.{missing}", "required field is missing")
    if " - at `$." in text:
        text, _, where = text.partition(" - at `$.")
        field = f"{section}.{where.rstrip('`')}"
    if text.startswith("Expected `") and "`, got `" in text:
        expected, _, got = text[len("Expected `") :].rstrip("`").partition("`, got `")
        text = f"expected {_type_names(expected)}, got {_type_names(got)}"
    elif text.startswith("Invalid enum value "):
        name = field.removeprefix(f"{section}.")
        allowed = allowed_values(kind, name)
        if allowed:
            value = text[len("Invalid enum value ") :]
            case = " (any case)" if name in any_case else ""
            text = f"{value} is not one of {', '.join(allowed)}{case}"
    return ConfigError(field, text)


def allowed_values(kind: type[msgspec.Struct], field: str) -> list[str]:
    """The values of a ``Literal`` field, in declared order (empty for other fields)."""
    hint = typing.get_type_hints(kind).get(field)
    return [str(v) for v in typing.get_args(hint)] if typing.get_origin(hint) is Literal else []


def _type_names(names: str) -> str:
    return " or ".join(_TYPE_NAMES.get(n.strip(), n.strip()) for n in names.split("|"))


def _shown(value: str) -> str:
    """An environment value as printed in a problem: bare when plain, else quoted."""
    plain = value and value.isprintable() and not any(c.isspace() for c in value)
    return value if plain else json.dumps(value)
