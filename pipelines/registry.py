"""Coroutines by name: registration checks the signature and derives an args schema from hints."""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import re
import threading
import typing
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError, create_model

from .errors import RegistryError, SpecIssue
from .spec import issues_from_validation

__all__ = ["CoroKind", "CoroInfo", "Registry", "inspect_coroutine"]

CoroKind = Literal["source", "processor"]
F = TypeVar("F", bound=Callable[..., Any])

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")
_SOURCE_PARAM_NAMES = {"output_q", "q_out", "output_queue", "out_q"}
# The contract's name for a processor's item (and tuple, its type): a library coroutine that
# takes one is a processor, so a graph that makes it an input node is refused, as the service
# refuses a registered processor there.
_PROCESSOR_PARAM_NAMES = {"q_elt"}


@dataclasses.dataclass(frozen=True, slots=True)
class CoroInfo:
    """A checked coroutine: its kind, doc line and a pydantic model of its keyword arguments."""

    name: str
    fn: Callable[..., Any]
    kind: CoroKind | None  # None: not declared (library coroutines); the graph position decides
    doc: str
    args_model: type[BaseModel]
    accepts_extra: bool

    def args_schema(self) -> dict[str, Any]:
        return self.args_model.model_json_schema()

    def validate_args(self, args: dict[str, Any], prefix: str) -> tuple[dict[str, Any], list[SpecIssue]]:
        """Check `args` against the signature; return the call kwargs or the issues."""
        try:
            model = self.args_model.model_validate(args)
        except ValidationError as exc:
            issues = issues_from_validation(exc, prefix)
            known = ", ".join(self.args_model.model_fields) or "none"
            return {}, [
                SpecIssue(i.path, i.code, f"{i.message}; {self.name} accepts: {known}")
                if i.code == "unknown_field"
                else i
                for i in issues
            ]
        kwargs = {k: getattr(model, k) for k in self.args_model.model_fields}
        if model.model_extra:
            kwargs.update(model.model_extra)
        return kwargs, []

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "doc": self.doc,
                "args_schema": self.args_schema()}


def _is_coroutine_function(fn: Any) -> bool:
    if inspect.iscoroutinefunction(fn):
        return True
    call = getattr(fn, "__call__", None)  # noqa: B004 - an object with an async __call__
    return call is not None and inspect.iscoroutinefunction(call)


#: Derived args models kept for coroutines checked again (a library pipeline built per request
#: checks its coroutines on every build; a closure made by the same `def` shares its code)
_MODEL_CACHE_SIZE = 128
_models: OrderedDict[Any, CoroInfo] = OrderedDict()
_models_lock = threading.Lock()


class _Same:
    """Stands for an object in a key by its identity (held, so its id is not reused while the
    key lives): a function's globals, where its string annotations are resolved."""

    __slots__ = ("obj",)

    def __init__(self, obj: object) -> None:
        self.obj = obj

    def __hash__(self) -> int:
        return id(self.obj)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Same) and other.obj is self.obj


def _cache_key(fn: Any, label: str, kind: CoroKind | None, doc: str | None,
               strict: bool) -> Any:
    """What a coroutine's checked form depends on, or None when it cannot be keyed (not a
    plain function, or parts that cannot be hashed)."""
    if not inspect.isfunction(fn) or hasattr(fn, "__wrapped__") or hasattr(fn, "__signature__"):
        return None  # (a wrapper's signature is another function's: not told by its code)
    # defaults with their types: 1, 1.0 and True are equal keys, not equal defaults
    defaults = tuple((type(v), v) for v in fn.__defaults__ or ())
    kwdefaults = tuple((k, type(v), v) for k, v in sorted((fn.__kwdefaults__ or {}).items()))
    key = (fn.__code__, label, kind, doc, strict, fn.__doc__, defaults, kwdefaults,
           tuple(fn.__annotations__.items()), _Same(fn.__globals__))
    try:
        hash(key)
    except TypeError:  # a default or an annotation that cannot be hashed
        return None
    return key


def inspect_coroutine(
    fn: Callable[..., Any],
    *,
    name: str | None = None,
    kind: CoroKind | None = None,
    doc: str | None = None,
    strict: bool = True,
) -> CoroInfo:
    """Check that `fn` fits the coroutine contract and build its CoroInfo.

    The args model derived for a function is kept (the last 128), so checking the
    same function again, or another made by the same `def` with the same defaults and
    annotations, costs a lookup.

    :param strict: validate args strictly (no "5" for an int): the service's setting.
    """
    label: str = name or getattr(fn, "__qualname__", None) or repr(fn)
    key = _cache_key(fn, label, kind, doc, strict)
    if key is not None:
        with _models_lock:  # (pipelines may be built in several threads, each with its loop)
            hit = _models.get(key)
            if hit is not None:
                _models.move_to_end(key)
                return dataclasses.replace(hit, fn=fn)  # (another closure of the same `def`)
    info = _inspect(fn, label, kind, doc, strict)
    if key is not None:
        with _models_lock:
            _models[key] = info
            if len(_models) > _MODEL_CACHE_SIZE:
                _models.popitem(last=False)
    return info


def _inspect(fn: Callable[..., Any], label: str, kind: CoroKind | None, doc: str | None,
             strict: bool) -> CoroInfo:
    if not callable(fn) or not _is_coroutine_function(fn):
        raise RegistryError(f"{label}: not a coroutine function (define it with 'async def')")
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError) as exc:
        raise RegistryError(f"{label}: cannot read its signature ({exc})") from None
    params = list(sig.parameters.values())
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    if len(positional) < 2 and not any(p.kind is p.VAR_POSITIONAL for p in params):
        raise RegistryError(
            f"{label}: a pipeline coroutine takes (self, q_elt, **args) or (self, output_q, **args); "
            f"it has {len(positional)} positional parameter(s)"
        )
    try:
        hints = typing.get_type_hints(fn, include_extras=True)  # keep Annotated[..., Field()]
    except Exception:  # unresolvable forward references: treat as unannotated
        hints = {}
    if kind is None and len(positional) >= 2:
        second = positional[1]
        ann = hints.get(second.name)
        if second.name in _SOURCE_PARAM_NAMES or ann is asyncio.Queue:
            kind = "source"
        elif second.name in _PROCESSOR_PARAM_NAMES or ann is tuple or typing.get_origin(ann) is tuple:
            kind = "processor"
    fields: dict[str, Any] = {}
    accepts_extra = False
    for p in params[2:] if len(positional) >= 2 else []:
        if p.kind is p.VAR_KEYWORD:
            accepts_extra = True
            continue
        if p.kind is p.VAR_POSITIONAL or p.kind is p.POSITIONAL_ONLY:
            continue
        ann = hints.get(p.name, Any)
        default = ... if p.default is p.empty else p.default
        fields[p.name] = (ann, default)
    config = ConfigDict(
        extra="allow" if accepts_extra else "forbid",
        strict=strict,
        allow_inf_nan=False,
        arbitrary_types_allowed=True,
    )
    model_name = re.sub(r"\W", "_", label) + "_args"
    try:
        model = create_model(model_name, __config__=config, **fields)
    except Exception as exc:  # an annotation pydantic cannot handle
        raise RegistryError(f"{label}: cannot derive an args schema ({exc})") from None
    line = doc if doc is not None else (inspect.getdoc(fn) or "").strip().splitlines()
    first = line if isinstance(line, str) else (line[0] if line else "")
    return CoroInfo(label, fn, kind, first, model, accepts_extra)


class Registry:
    """A whitelist of named coroutines; the service resolves node names only through one."""

    def __init__(self) -> None:
        self._entries: dict[str, CoroInfo] = {}
        self._frozen = False
        self._described: list[dict[str, Any]] | None = None

    def register(
        self,
        fn: Callable[..., Any],
        *,
        name: str | None = None,
        kind: CoroKind,
        doc: str | None = None,
    ) -> CoroInfo:
        """Check and add `fn` under `name` (default: its qualified name)."""
        if self._frozen:
            raise RegistryError("the registry is frozen: register coroutines before start-up")
        label: str = name or getattr(fn, "__qualname__", None) or ""
        if not _NAME.match(label):
            raise RegistryError(f"{label!r}: a registry name is dotted identifiers, e.g. Text.upper")
        if label in self._entries:
            raise RegistryError(f"{label!r} is registered already")
        if kind not in ("source", "processor"):
            raise RegistryError(f"{label}: kind must be 'source' or 'processor', not {kind!r}")
        info = inspect_coroutine(fn, name=label, kind=kind, doc=doc, strict=True)
        self._entries[label] = info
        return info

    def source(self, name: str | None = None, *, doc: str | None = None) -> Callable[[F], F]:
        """Decorator: register an input coroutine `async def f(self, output_q, **args)`."""
        def deco(fn: F) -> F:
            self.register(fn, name=name, kind="source", doc=doc)
            return fn
        return deco

    def processor(self, name: str | None = None, *, doc: str | None = None) -> Callable[[F], F]:
        """Decorator: register a processor coroutine `async def f(self, q_elt, **args)`."""
        def deco(fn: F) -> F:
            self.register(fn, name=name, kind="processor", doc=doc)
            return fn
        return deco

    def freeze(self) -> None:
        """Refuse further registrations."""
        self._frozen = True

    @property
    def frozen(self) -> bool:
        return self._frozen

    def get(self, name: str) -> CoroInfo | None:
        return self._entries.get(name)

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __len__(self) -> int:
        return len(self._entries)

    def describe(self) -> list[dict[str, Any]]:
        """Name, kind, doc line and args JSON Schema of every coroutine, sorted by name
        (computed once a frozen registry is asked; treat the answer as read-only)."""
        if self._described is not None:
            return self._described
        described = [self._entries[n].describe() for n in self.names()]
        if self._frozen:
            self._described = described
        return described
