"""Options that take several values after one flag, as a shell expands a glob.

Click gives each occurrence of an option one value, so ``--mag e1.nii e2.nii`` would leave
``e2.nii`` as a stray argument. `MultiValueCommand` rewrites the command line before Click
parses it: every bare token after such a flag gets the flag repeated in front of it, so
``--mag a b --phase c d`` parses exactly like ``--mag a --mag b --phase c --phase d``, and the
repeated-flag form keeps working unchanged.
"""

from __future__ import annotations

from collections.abc import Iterable

import typer
from typer.core import TyperCommand

__all__ = ["MultiValueCommand", "ReconCommand", "expand_multi_value_options"]


def expand_multi_value_options(args: Iterable[str], names: Iterable[str]) -> list[str]:
    """Repeat an option of `names` before each bare token that follows it.

    A bare token is one not starting with ``-``; the first option-like token ends the run, and
    ``--`` ends option processing altogether (everything after it is left as is).
    """
    names = frozenset(names)
    tokens = list(args)
    expanded: list[str] = []
    current: str | None = None
    pending = False  # the flag's own first value is the next token
    for index, token in enumerate(tokens):
        if token == "--":
            expanded.extend(tokens[index:])
            break
        if token.startswith("-"):
            flag = token.split("=", 1)[0]
            current = flag if flag in names else None
            pending = current is not None and "=" not in token
        elif current is not None and not pending:
            expanded.append(current)
        else:
            pending = False
        expanded.append(token)
    return expanded


class MultiValueCommand(TyperCommand):
    """A Typer command whose `multi_value_options` accept several values after one flag."""

    multi_value_options: tuple[str, ...] = ()

    def parse_args(self, ctx: typer.Context, args: list[str]) -> list[str]:
        return super().parse_args(ctx, expand_multi_value_options(args, self.multi_value_options))


class ReconCommand(MultiValueCommand):
    """`recon`: echo files and echo times may follow their flag as a list."""

    multi_value_options = ("--mag", "--phase", "--te-ms")
