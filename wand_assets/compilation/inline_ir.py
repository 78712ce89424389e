"""Two IR rewrites that make IREE 3.11's ``--iree-execution-model=inline-dynamic`` compile and run.

The inline execution model is compiled in three stages (``--compile-to=stream``, ``--compile-from=stream
--compile-to=hal``, ``--compile-from=hal``; staging alone reproduces the one-shot .vmfb byte for byte)
with one rewrite of the printed IR between each pair (see ``../shared/docs/PLATFORM_FACTS.md``, "IREE 3.11
inline execution model on this firmware, measured"):

- :func:`outline_initializer_constants`, on the stream-stage output: the weights constant that an
  initializer stores into a global is returned from a never-inlined ``util.func`` instead. Without it
  the stream → hal pipeline (FoldGlobals) silently drops the store and the module fails at run time
  with "ref is null" in ``hal_loader.executable.dispatch``.
- :func:`outline_executable_loads`, on the hal-stage output: the initializer that loads the model's
  executables (``hal_loader.executable.load``) becomes a call of a separate ``util.func``. Without it
  the compiler stops with "'util.initializer' op failed to inline into combined initializer"
  (hal_loader/hal_inline ops are not inlinable in 3.11; fixed upstream in IREE PR #24827, after 3.11).

Both work on the text the pinned compiler prints, and fail with :class:`InlineIRError` and a message
naming what they expected whenever the IR does not look like that, rather than pass something through
that would compile into a module that misbehaves on the device.
"""

from __future__ import annotations

import re

# Function names the rewrites add to the module; a module that already has them was rewritten already.
CONSTANT_FUNC_PREFIX = "__wand_initializer_constant_"
LOADER_FUNC_PREFIX = "__wand_load_executables_"
NEVER_INLINE = "attributes {inlining_policy = #util.inline.never}"

_INITIALIZER_OPEN = "  util.initializer {"
_INITIALIZER_CLOSE = "  }"
_BUFFER_CONSTANT = re.compile(r"(?P<indent>\s+)(?P<result>%[\w$.\-]+) = (?P<op>util\.buffer\.constant\b.*?: !util\.buffer = )")


class InlineIRError(ValueError):
    """The IR is not what the inline-dynamic work-arounds were written for (see the message)."""


def _initializer_spans(lines: list[str], stage: str) -> list[tuple[int, int]]:
    """(first, last) line index of every top-level ``util.initializer`` (its ``{`` and ``}`` lines)."""
    spans = []
    i = 0
    while i < len(lines):
        if lines[i].rstrip() == _INITIALIZER_OPEN:
            for j in range(i + 1, len(lines)):
                if lines[j].rstrip() == _INITIALIZER_CLOSE:
                    spans.append((i, j))
                    i = j
                    break
            else:
                raise InlineIRError(f"{stage} IR: the util.initializer at line {i + 1} has no closing '  }}' line")
        elif lines[i].lstrip().startswith("util.initializer") and lines[i].startswith("  util.initializer"):
            raise InlineIRError(
                f"{stage} IR: unexpected util.initializer form at line {i + 1} ({lines[i].strip()[:80]!r}); "
                f"expected {_INITIALIZER_OPEN.strip()!r} printed on its own line"
            )
        i += 1
    if not spans:
        raise InlineIRError(f"{stage} IR: no top-level util.initializer found (expected a line {_INITIALIZER_OPEN.strip()!r})")
    return spans


def _attribute_end(text: str, start: int, stage: str) -> int:
    """Index just past the attribute value that starts at ``text[start]``: the first newline at bracket
    depth 0 (``<>``, ``[]``, ``()``, ``{}``), string literals skipped."""
    depth = 0
    i = start
    pairs = {"<": 1, "[": 1, "(": 1, "{": 1, ">": -1, "]": -1, ")": -1, "}": -1}
    while i < len(text):
        c = text[i]
        if c == '"':
            close = text.find('"', i + 1)
            while close != -1 and text[close - 1] == "\\":
                close = text.find('"', close + 1)
            if close == -1:
                raise InlineIRError(f"{stage} IR: unterminated string literal in a util.buffer.constant")
            i = close + 1
            continue
        if c == "-" and text.startswith("->", i):  # an arrow is no bracket
            i += 2
            continue
        if c in pairs:
            depth += pairs[c]
            if depth < 0:
                raise InlineIRError(f"{stage} IR: unbalanced brackets in a util.buffer.constant value")
        elif c == "\n" and depth == 0:
            return i
        i += 1
    raise InlineIRError(f"{stage} IR: a util.buffer.constant value runs to the end of the file")


def _already_rewritten(text: str, prefix: str, stage: str) -> None:
    if f"@{prefix}" in text:
        raise InlineIRError(f"{stage} IR already contains @{prefix}…: it was rewritten before")


def _insert_before_last_brace(text: str, funcs: list[str], stage: str) -> str:
    body = text.rstrip()
    if not body.endswith("}"):
        raise InlineIRError(f"{stage} IR: expected the module's closing '}}' at the end")
    return body[:-1] + "".join(funcs) + "}\n"


def outline_initializer_constants(text: str) -> tuple[str, int]:
    """The stream-stage IR with each ``util.buffer.constant`` of an initializer moved into a
    never-inlined ``util.func`` the initializer calls. Returns the new IR and the number of constants
    moved (at least 1: the model's weights)."""
    stage = "stream-stage"
    _already_rewritten(text, CONSTANT_FUNC_PREFIX, stage)
    lines = text.splitlines(keepends=True)
    spans = _initializer_spans(lines, stage)
    offsets = [0]
    for line in lines:
        offsets.append(offsets[-1] + len(line))
    edits: list[tuple[int, int, str]] = []  # (start, end, replacement) in text
    funcs: list[str] = []
    for first, last in spans:
        region_start, region_end = offsets[first + 1], offsets[last]
        pos = region_start
        while pos < region_end:
            line_end = text.find("\n", pos, region_end)
            line_end = region_end if line_end == -1 else line_end
            match = _BUFFER_CONSTANT.match(text, pos, line_end)
            if match is None:
                pos = line_end + 1
                continue
            value_end = _attribute_end(text, match.end(), stage)
            if value_end > region_end:
                raise InlineIRError(f"{stage} IR: a util.buffer.constant value runs past the end of its initializer")
            name = f"{CONSTANT_FUNC_PREFIX}{len(funcs)}"
            op = text[match.start("op") : value_end]
            funcs.append(
                f"  util.func private @{name}() -> !util.buffer {NEVER_INLINE} {{\n"
                f"    %constant = {op}\n"
                f"    util.return %constant : !util.buffer\n"
                f"  }}\n"
            )
            call = f"{match.group('indent')}{match.group('result')} = util.call @{name}() : () -> !util.buffer"
            edits.append((match.start(), value_end, call))
            pos = value_end + 1
    if not funcs:
        raise InlineIRError(
            f"{stage} IR: no util.buffer.constant in any util.initializer; expected the model's weights constant "
            "(a `%x = util.buffer.constant … : !util.buffer = …` that the initializer stores into a global)"
        )
    for start, end, replacement in reversed(edits):
        text = text[:start] + replacement + text[end:]
    return _insert_before_last_brace(text, funcs, stage), len(funcs)


def outline_executable_loads(text: str) -> tuple[str, int]:
    """The hal-stage IR with each initializer that loads executables (``hal_loader.executable.load``)
    turned into a call of a ``util.func`` holding its body. Returns the new IR and the number of
    initializers rewritten (at least 1)."""
    stage = "hal-stage"
    _already_rewritten(text, LOADER_FUNC_PREFIX, stage)
    lines = text.splitlines(keepends=True)
    spans = _initializer_spans(lines, stage)
    funcs: list[str] = []
    replaced: dict[int, tuple[int, list[str]]] = {}
    for first, last in spans:
        body = lines[first + 1 : last]
        if not any("hal_loader.executable.load" in line for line in body):
            continue
        if any(re.match(r"\s*util\.return\s+\S", line) for line in body):
            raise InlineIRError(f"{stage} IR: the initializer at line {first + 1} returns values; expected plain util.return")
        name = f"{LOADER_FUNC_PREFIX}{len(funcs)}"
        funcs.append(f"  util.func private @{name}() {NEVER_INLINE} {{\n" + "".join(body) + "  }\n")
        replaced[first] = (last, [_INITIALIZER_OPEN + "\n", f"    util.call @{name}() : () -> ()\n", "    util.return\n"])
    if not funcs:
        raise InlineIRError(
            f"{stage} IR: no util.initializer contains hal_loader.executable.load; expected the inline-dynamic "
            "executable loader (was the module compiled with --iree-execution-model=inline-dynamic?)"
        )
    out: list[str] = []
    i = 0
    while i < len(lines):
        if i in replaced:
            last, new = replaced[i]
            out.extend(new)
            out.append(lines[last])
            i = last + 1
        else:
            out.append(lines[i])
            i += 1
    return _insert_before_last_brace("".join(out), funcs, stage), len(funcs)
