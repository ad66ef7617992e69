"""Griffe extension for the docs build: render the Sphinx roles of mlcalc's docstrings as inline code.

The docstrings are Google style with Sphinx cross-reference roles (``:class:`MLCalculator```,
``:func:`~mlcalc.workflows.optimize```). mkdocstrings does not resolve those roles; this turns each into
plain inline code (the last dotted component where the role says ``~``), so the API pages show
``MLCalculator`` rather than ``:class:`MLCalculator```.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

_ROLE = re.compile(r":(?:py:)?(?:class|func|meth|mod|attr|data|exc|obj|const):`(~?)([^`]+)`")


def _plain(match: re.Match[str]) -> str:
    target = match.group(2)
    if match.group(1):
        target = target.rsplit(".", 1)[-1]
    return f"`{target}`"


def strip_roles(text: str) -> str:
    """``:class:`~a.b.C``` -> ```C```; ``:func:`f``` -> ```f```."""
    return _ROLE.sub(_plain, text)


class SphinxRoles(griffe.Extension):
    """Rewrites each docstring once, when griffe loads its object."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = strip_roles(obj.docstring.value)
