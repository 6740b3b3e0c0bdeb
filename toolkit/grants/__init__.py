"""Grants: consent given in advance, signed by the machine's owner (docs/grants.md).

Usage::

    from toolkit.grants import Grant, issue, load
    from toolkit.grants.check import check_grant
    from toolkit.grants.ledger import Ledger

    grant = issue(signer, issuer="owner@example.com", technician="alice@example.com",
                  procedures=[], scopes=["diagnostics"], hosts=["web-01"], ticket="T-1",
                  not_before=start, not_after=end, uses=1)
    path.write_bytes(grant.to_bytes())
    issuer = check_grant(load(path), trust=..., technician_key=..., ...,
                         ledger=Ledger.default())   # raises GrantRefused

The check and the ledger load on first use (they import the consent errors,
and the consent handshake imports this package).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from toolkit.grants.model import (
    MAX_GRANT_BYTES,
    NAMESPACE,
    Grant,
    GrantedProcedure,
    GrantError,
    issue,
    load,
)

if TYPE_CHECKING:
    from toolkit.grants.check import REFUSALS, GrantRefused, check_grant
    from toolkit.grants.ledger import HistoryEntry, Ledger, LedgerError, Use

_LAZY = {
    "REFUSALS": "toolkit.grants.check",
    "GrantRefused": "toolkit.grants.check",
    "check_grant": "toolkit.grants.check",
    "HistoryEntry": "toolkit.grants.ledger",
    "Ledger": "toolkit.grants.ledger",
    "LedgerError": "toolkit.grants.ledger",
    "Use": "toolkit.grants.ledger",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


__all__ = [
    "MAX_GRANT_BYTES",
    "NAMESPACE",
    "REFUSALS",
    "Grant",
    "GrantError",
    "GrantRefused",
    "GrantedProcedure",
    "HistoryEntry",
    "Ledger",
    "LedgerError",
    "Use",
    "check_grant",
    "issue",
    "load",
]
