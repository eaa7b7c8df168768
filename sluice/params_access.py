"""``access``: roles that shape what ``sluice sql``, ``sluice shell`` and the Python API show (sluice/access.py).

No roles (the default) means full access. A role names the tables it sees and the columns it must not
see (``deny_columns``: left out of every view) or may see only hashed (``mask_columns``: SHA-256 of
the value). A column is named bare (every table that has it) or as ``table.column``.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from sluice.params_base import Section

RoleName = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_-]*$")]


class RoleParams(Section):
    tables: list[str] | None = None  # None: every table; [] none
    deny_columns: list[str] = Field(default_factory=list)
    mask_columns: list[str] = Field(default_factory=list)


class AccessParams(Section):
    roles: dict[RoleName, RoleParams] = Field(default_factory=dict)
