"""What every registered class shares: a registry ``name`` and a validated ``Params`` model."""

from __future__ import annotations

import difflib
import re
import typing
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, ValidationError
from pydantic_core import PydanticCustomError

from clgym_core.errors import SpecError

NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_]*$")


class Params(BaseModel):
    """Base of every component's parameter model: unknown keys are errors, assignments are checked."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, populate_by_name=True)


def normalize_name(name: str) -> str:
    """Registry names are snake_case; accept ``Rotated-MNIST`` style spellings too."""
    return name.strip().lower().replace("-", "_").replace(" ", "_")


#: The error type of :func:`combination_error`.
COMBINATION_ERROR = "clgym_combination"


def combination_error(field: str, reason: str) -> PydanticCustomError:
    """What a model validator raises when fields clash: reported as ``<path>.field: reason``."""
    return PydanticCustomError(COMBINATION_ERROR, "{field}: {reason}", {"field": field, "reason": reason})


def format_validation_error(error: ValidationError, prefix: str = "", model: type[BaseModel] | None = None) -> str:
    """One line per problem: ``path.to.field: reason``.

    With the ``model`` that was validated, an unknown key names the closest known one
    (``lamda`` -> ``lambda``) and lists the keys the model takes at that place.
    """
    lines = []
    for item in error.errors():
        loc = ".".join(str(part) for part in item["loc"])
        message = item["msg"]
        if item["type"] == COMBINATION_ERROR:  # a model validator naming the field a combination fails on
            loc = ".".join(part for part in (loc, item["ctx"]["field"]) if part)
            message = item["ctx"]["reason"]
        where = f"{prefix}.{loc}" if prefix and loc else (prefix or loc)
        if item["type"] == "extra_forbidden":
            message = "unknown parameter" + _known_fields_hint(model, item["loc"])
        lines.append(f"{where}: {message}" if where else message)
    return "; ".join(lines)


def field_names(model: type[BaseModel]) -> list[str]:
    """The keys ``model`` takes, as a spec writes them (aliases where a field has one)."""
    return [f.alias or name for name, f in model.model_fields.items()]


def _known_fields_hint(model: type[BaseModel] | None, loc: tuple[Any, ...]) -> str:
    """``; did you mean X? (takes: a, b, c)`` for the unknown key at ``loc`` of ``model``."""
    owner = _model_at(model, loc[:-1]) if model is not None else None
    if owner is None:
        return ""
    known = field_names(owner)
    if not known:
        return f" ({owner.__name__} takes no parameters)"
    close = difflib.get_close_matches(str(loc[-1]), known, n=1, cutoff=0.6)
    hint = f"; did you mean {close[0]}?" if close else ""
    return f"{hint} (known: {', '.join(known)})"


def _model_at(model: type[BaseModel], path: tuple[Any, ...]) -> type[BaseModel] | None:
    """The pydantic model that validates the mapping at ``path`` inside ``model`` (None when not one)."""
    for part in path:
        fields = {f.alias or n: f for n, f in model.model_fields.items()}
        fields.update(model.model_fields)
        field = fields.get(str(part))
        annotation = field.annotation if field is not None else None
        candidates = [annotation, *typing.get_args(annotation)]
        found = next((c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)), None)
        if found is None:
            return None
        model = found
    return model


def validate_model(model: type[BaseModel], values: Any, where: str) -> Any:
    """Validate ``values`` with ``model``; raise a one-line :class:`SpecError` naming the field."""
    if isinstance(values, model):
        return values
    if isinstance(values, BaseModel):
        values = values.model_dump(by_alias=True)
    try:
        return model.model_validate(dict(values or {}))
    except ValidationError as error:
        raise SpecError(format_validation_error(error, where, model)) from None


def validate_params(cls: type, values: dict[str, Any] | BaseModel | None, where: str | None = None) -> Any:
    """Validate a component's parameters with ``cls.Params``."""
    prefix = where if where is not None else f"{getattr(cls, 'name', '') or cls.__name__}.params"
    return validate_model(cls.Params, values, prefix)


def summary_line(cls: type) -> str:
    """The first line of the class docstring: what ``clgym list`` shows."""
    doc = (cls.__doc__ or "").strip()
    return doc.splitlines()[0].strip() if doc else ""


class Component:
    """Mixin for registrable classes.

    Subclasses set ``name`` (snake_case, unique per kind) and nest a ``Params``
    model deriving from :class:`clgym_core.component.Params`.
    """

    name: ClassVar[str] = ""
    Params: ClassVar[type[Params]] = Params
    params: Params

    @classmethod
    def check_component(cls) -> None:
        """Raise ``TypeError`` when the class cannot be registered (used by the registry)."""
        name = getattr(cls, "name", "")
        if not isinstance(name, str) or not NAME_PATTERN.match(name):
            raise TypeError(f"{cls.__qualname__}.name must be a snake_case string, got {name!r}")
        params = getattr(cls, "Params", None)
        if not (isinstance(params, type) and issubclass(params, BaseModel)):
            raise TypeError(f"{cls.__qualname__}.Params must be a pydantic model")
        if params.model_config.get("extra") != "forbid":
            raise TypeError(f"{cls.__qualname__}.Params must forbid extra keys (derive from clgym_core.Params)")
