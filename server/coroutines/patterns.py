"""Regular expressions with a time bound: `Regex.match`, `Regex.extract`, `Regex.sub`.

Patterns are compiled when the spec is validated (a bad one is refused then, like any bad arg), at most
`MAX_PATTERN` characters. Matching runs with the `regex` module in a worker thread that releases
the GIL, with a timeout (`regex_timeout`), on at most `regex_max_input` characters: a pattern that
backtracks catastrophically (`(a|aa)+$`) fails that one item instead of stalling the server.
"""

from __future__ import annotations

import asyncio
import functools
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Annotated, Any

import regex  # type: ignore[import-untyped]
from pydantic import AfterValidator, Field

from pipelines.processor import DROP, Processor
from pipelines.registry import Registry

__all__ = ["MAX_PATTERN", "REGEX_THREADS", "Pattern", "RegexLimits", "RegexTimeout", "register"]

MAX_PATTERN = 512


@functools.lru_cache(maxsize=256)
def _compiled(pattern: str, ignore_case: bool) -> Any:
    return regex.compile(pattern, regex.IGNORECASE if ignore_case else 0)


def _valid(pattern: str) -> str:
    try:
        _compiled(pattern, False)
    except regex.error as exc:
        raise ValueError(f"not a valid regular expression: {exc}") from None
    return pattern


Pattern = Annotated[str, Field(min_length=1, max_length=MAX_PATTERN), AfterValidator(_valid)]
Group = Annotated[int, Field(ge=0, le=99)] | Annotated[str, Field(min_length=1, max_length=64)]


class RegexTimeout(ValueError):
    """A match ran past `regex_timeout` (catastrophic backtracking, or a huge input)."""


#: Threads that run matches; a match holds one for at most `regex_timeout` seconds.
REGEX_THREADS = 4
_pool: list[ThreadPoolExecutor] = []


def _executor() -> ThreadPoolExecutor:
    if not _pool:
        _pool.append(ThreadPoolExecutor(REGEX_THREADS, thread_name_prefix="pipelines-regex"))
    return _pool[0]


@dataclass(frozen=True, slots=True)
class RegexLimits:
    """Seconds one match may take, and the longest input (characters)."""

    timeout: float = 1.0
    max_input: int = 100_000


def register(reg: Registry, limits: RegexLimits) -> None:
    def subject(value: Any) -> str:
        text = value if isinstance(value, str) else str(value)
        if len(text) > limits.max_input:
            raise ValueError(f"input of {len(text)} characters is over the regex limit of "
                             f"{limits.max_input}")
        return text

    async def run(fn: Any, *args: Any) -> Any:
        # `concurrent=True` releases the GIL, so the event loop goes on while the thread works;
        # the threads are the regex nodes' own, so slow patterns never queue other nodes' work.
        call = functools.partial(fn, *args, timeout=limits.timeout, concurrent=True)
        try:
            return await asyncio.get_running_loop().run_in_executor(_executor(), call)
        except TimeoutError:
            raise RegexTimeout(f"the pattern took longer than {limits.timeout} s on this input "
                               "(regex_timeout)") from None

    @reg.processor("Regex.match", doc="Keeps items (as strings) the pattern matches anywhere; "
                   "drops others.")
    async def match(
        self: Processor, q_elt: tuple[Any, ...], pattern: Pattern, ignore_case: bool = False,
    ) -> Any:
        found = await run(_compiled(pattern, ignore_case).search, subject(q_elt[0]))
        return q_elt[0] if found is not None else DROP

    @reg.processor(
        "Regex.extract",
        doc="The first match's group (0: the whole match), or with all=true every match; "
        "drops items without a match.",
    )
    async def extract(
        self: Processor,
        q_elt: tuple[Any, ...],
        pattern: Pattern,
        group: Group = 0,
        all: bool = False,
        ignore_case: bool = False,
    ) -> Any:
        compiled = _compiled(pattern, ignore_case)
        text = subject(q_elt[0])
        if all:
            matches = await run(lambda s, **kw: list(compiled.finditer(s, **kw)), text)
            if not matches:
                return DROP
            return [m.group(group) for m in matches[:10_000]]
        found = await run(compiled.search, text)
        return DROP if found is None else found.group(group)

    @reg.processor("Regex.sub", doc="Replaces every match by `replacement` (\\1 names a group); "
                   "at most regex_max_input / len(replacement) of them.")
    async def sub(
        self: Processor,
        q_elt: tuple[Any, ...],
        pattern: Pattern,
        replacement: Annotated[str, Field(max_length=1024)] = "",
        ignore_case: bool = False,
    ) -> str:
        # At most max_input / len(replacement) replacements: the result stays near max_input.
        count = max(1, limits.max_input // max(1, len(replacement)))
        result: str = await run(_compiled(pattern, ignore_case).sub, replacement,
                                subject(q_elt[0]), count)
        return result
