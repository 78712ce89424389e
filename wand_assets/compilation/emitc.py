"""The C module that ``iree-compile --output-format=vm-c`` (EmitC) writes, made compilable by GCC.

The pinned compiler names each C function after its VM function, prefixed with the module name
(``module_``). The StableHLO that ``iree-import-tf`` writes exports one getter per weight, named after
the SavedModel variable (``global$vars.__sm_node68__model._layers.2._kernel$get``), so the C has
identifiers with ``.`` and ``$`` in them, which no C compiler accepts (``.``) or the standard does not
allow (``$``). :func:`sanitize_identifiers` renames them (each ``.`` and ``$`` becomes ``_``); the
export *names*, the string literals the runtime resolves functions by, stay as they are.

It fails with :class:`EmitCError` rather than write C whose names could collide.
"""

from __future__ import annotations

import re

C_MODULE_NAME = "model_emitc.h"  # beside model.vmfb in an EmitC target's compiled_model entry
CREATE_FUNCTION = "module_create"  # the generated constructor the firmware calls

# A string or character literal (kept as it is) or a module-level identifier (one that may need renaming).
_TOKEN = re.compile(r'"(?:[^"\\\n]|\\.)*"|\'(?:[^\'\\\n]|\\.)*\'|(?<![A-Za-z0-9_$.])(?P<ident>module_[A-Za-z0-9_$.]*)')
_INVALID = re.compile(r"[.$]")
_IDENTIFIER = re.compile(r"(?<![A-Za-z0-9_$])[A-Za-z_][A-Za-z0-9_]*")


class EmitCError(ValueError):
    """The generated C is not what :func:`sanitize_identifiers` was written for (see the message)."""


def sanitize_identifiers(text: str) -> tuple[str, int]:
    """``text`` with every ``module_…`` identifier outside string literals made a C identifier
    (``.``/``$`` → ``_``). Returns the new text and the number of distinct identifiers renamed."""
    if f"{CREATE_FUNCTION}(" not in text or "#if defined(EMITC_IMPLEMENTATION)" not in text:
        raise EmitCError(f"not an EmitC module of module 'module': no {CREATE_FUNCTION}( or EMITC_IMPLEMENTATION section")
    renames: dict[str, str] = {}
    for match in _TOKEN.finditer(text):
        ident = match.group("ident")
        if ident and _INVALID.search(ident):
            renames[ident] = _INVALID.sub("_", ident)
    if not renames:
        return text, 0
    targets: dict[str, str] = {}
    for old, new in renames.items():
        if new in targets and targets[new] != old:
            raise EmitCError(f"two identifiers would both become {new!r}: {targets[new]!r} and {old!r}")
        targets[new] = old
    existing = set(_IDENTIFIER.findall(text))
    clashes = sorted(set(targets) & existing)
    if clashes:
        raise EmitCError(f"renamed identifiers would clash with existing ones: {', '.join(clashes[:3])}")

    def replace(match: re.Match[str]) -> str:
        ident = match.group("ident")
        return renames.get(ident, ident) if ident else match.group(0)

    return _TOKEN.sub(replace, text), len(renames)
