"""The args model derived from a coroutine's signature is kept for the next check of the same
function (a library pipeline built per request checks its coroutines on every build), and is
never reused for a function whose signature may differ."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import pytest

from pipelines import Plumber, SpecError, inspect_coroutine


async def scale(self: Any, q_elt: tuple[Any, ...], factor: int = 2) -> Any:
    return q_elt[0] * factor


def test_the_same_function_checked_again_reuses_its_model() -> None:
    first = inspect_coroutine(scale, strict=False)
    again = inspect_coroutine(scale, strict=False)
    assert again.args_model is first.args_model
    assert again.fn is scale and again.kind == "processor"
    # what it is checked as is part of what is kept: strict and lax models differ
    strict = inspect_coroutine(scale, strict=True)
    assert strict.args_model is not first.args_model
    assert strict.validate_args({"factor": "3"}, "args")[1]  # strict: "3" is not an int
    assert first.validate_args({"factor": "3"}, "args") == ({"factor": 3}, [])


def _made_with(default: int) -> Callable[..., Any]:
    async def step(self: Any, q_elt: tuple[Any, ...], k: int = default) -> Any:
        return q_elt[0] + k

    return step


def test_closures_of_one_def_share_a_model_only_with_the_same_defaults() -> None:
    a, b, c = _made_with(1), _made_with(1), _made_with(5)
    ia, ib, ic = (inspect_coroutine(f, strict=False) for f in (a, b, c))
    assert ib.args_model is ia.args_model and ib.fn is b
    assert ic.args_model is not ia.args_model
    assert ia.validate_args({}, "args") == ({"k": 1}, [])
    assert ic.validate_args({}, "args") == ({"k": 5}, [])


def test_equal_defaults_of_other_types_are_not_shared() -> None:
    one, true = _made_with(1), _made_with(True)  # 1 == True, yet not the same default
    assert inspect_coroutine(one, strict=False).validate_args({}, "args") == ({"k": 1}, [])
    got = inspect_coroutine(true, strict=False).validate_args({}, "args")[0]["k"]
    assert got is True


def test_a_function_whose_defaults_changed_gets_a_new_model() -> None:
    f = _made_with(1)
    assert inspect_coroutine(f, strict=False).validate_args({}, "args") == ({"k": 1}, [])
    f.__defaults__ = (7,)
    assert inspect_coroutine(f, strict=False).validate_args({}, "args") == ({"k": 7}, [])


def _logged(fn: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(fn)
    async def wrapper(self: Any, q_elt: tuple[Any, ...], **kw: Any) -> Any:
        return await fn(self, q_elt, **kw)

    return wrapper


# unannotated and checked under one name: nothing but the wrapped signature tells them apart
@_logged
async def add(self, q_elt, plus=1):
    return q_elt[0] + plus


@_logged
async def mul(self, q_elt, times=1):
    return q_elt[0] * times


def test_wrappers_sharing_one_code_keep_their_own_signatures() -> None:
    assert add.__code__ is mul.__code__  # one wrapper's code, two signatures
    ia = inspect_coroutine(add, name="step", strict=False)
    im = inspect_coroutine(mul, name="step", strict=False)
    assert set(ia.args_model.model_fields) == {"plus"}
    assert set(im.args_model.model_fields) == {"times"}
    assert im.validate_args({"plus": 2}, "args")[1]  # mul does not take `plus`


async def test_a_pipeline_built_again_still_checks_its_args() -> None:
    async def numbers(self: Any, output_q: Any, n: int) -> None:
        for i in range(n):
            await output_q.put(i)

    def spec(n: Any, factor: Any) -> dict[str, Any]:
        return {"nodes": {"src": {"coro": numbers, "args": {"n": n}},
                          "x": {"coro": scale, "args": {"factor": factor}}},
                "graph": {"src": ["x"], "x": None}}

    for _ in range(2):  # the second build finds the models kept
        report = await Plumber(spec(3, 10), collect=True).run()
        assert report.ok and report.results == 3
        with pytest.raises(SpecError) as err:
            Plumber(spec(3, [1]))
        assert any(i.path.endswith("x.args.factor") for i in err.value.issues)
