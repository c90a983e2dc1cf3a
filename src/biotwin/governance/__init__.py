"""Decision-grade evidence: validation protocols and reports, a registry with an audit trail, change control.

- :mod:`~biotwin.governance.protocol`: the validation protocol (intended use, tier, data, criteria)
- :mod:`~biotwin.governance.validation`: :func:`validate` and the HTML/JSON report
- :mod:`~biotwin.governance.drift`: :func:`drift`, a new batch tested against the validated model
- :mod:`~biotwin.governance.registry`: :class:`Registry`, an append-only hash-chained audit log in
  SQLite or PostgreSQL (SQLAlchemy), model status, approvals and retirements
"""

from biotwin.governance.drift import DriftError, drift
from biotwin.governance.protocol import Protocol, ProtocolError, read_protocol
from biotwin.governance.registry import Registry, RegistryError
from biotwin.governance.validation import ValidationRecord, validate, write_report

__all__ = [
    "DriftError",
    "Protocol",
    "ProtocolError",
    "Registry",
    "RegistryError",
    "ValidationRecord",
    "drift",
    "read_protocol",
    "validate",
    "write_report",
]
