"""The model registry: an append-only, hash-chained audit log in a real database (SQLAlchemy).

Every event -- a model version registered, a calibration, a validation, a twin run, an approval, a
retirement, a drift check -- is one row of the table ``audit_events``::

    seq | time (UTC, ISO 8601) | user | kind | model | model_hash | payload (JSON) | prev_hash | hash

``hash`` is the SHA-256 of the row's other fields (canonical JSON) including ``prev_hash``, the hash of
the row before it, so each row seals the whole history up to it. :meth:`Registry.verify` recomputes
the chain and names every record that was edited, deleted, inserted or re-ordered; nothing in
biotwin updates or deletes a row.

The database is an embedded SQLite file by default (created on first use, in a folder the user
chooses) or any SQLAlchemy URL, e.g. ``postgresql+psycopg://user@host:5432/db`` for a team server.
Appending takes the database's write lock before reading the last row (SQLite ``BEGIN IMMEDIATE``,
PostgreSQL ``LOCK TABLE ... IN EXCLUSIVE MODE``), so concurrent writers from several processes
serialize and the chain stays linear; ``seq`` is also the primary key, so two rows can never share a
place.

Change control: :meth:`Registry.status` compares a model folder's current content hash with the one
its last approval was given for, and says *requalification required* when the folder changed, a
calibration was recorded or a new batch drifted (:func:`biotwin.governance.drift`) after the approval;
:meth:`Registry.approve` refuses a tier that no passing validation of the current version supports;
:meth:`Registry.retire` withdraws a model from decision use.
"""

from __future__ import annotations

import getpass
import hashlib
import json
import math
import os
from datetime import UTC, datetime
from pathlib import Path

from biotwin.core.errors import BiotwinError

#: event kinds the registry records, and what each means
EVENT_KINDS = {
    "model_registered": "a model version (folder content hash) entered the registry",
    "calibration": "parameters estimated from data (inputs and result hashed)",
    "validation": "a validation protocol evaluated; payload: passed, supported_tier, criteria",
    "approval": "a reviewer approved the model version for a decision tier",
    "retirement": "the model version may no longer be used for decisions",
    "twin_run": "a live-twin run (replay or OPC UA) and its alarms",
    "drift": "a new batch compared with the validation residuals",
}
DEFAULT_FILE = "biotwin-registry.sqlite"
FIELDS = ("seq", "time", "user", "kind", "model", "model_hash", "payload", "prev_hash")
GENESIS = "0" * 64


class RegistryError(BiotwinError):
    """A registry that cannot be opened, an event that cannot be recorded, an approval refused."""


def _canonical(obj) -> str:
    def clean(x):
        if isinstance(x, float) and not math.isfinite(x):
            return repr(x)  # JSON has no NaN/inf; keep them readable and hashable
        if isinstance(x, dict):
            return {str(k): clean(v) for k, v in x.items()}
        if isinstance(x, (list, tuple)):
            return [clean(v) for v in x]
        return x

    return json.dumps(clean(obj), sort_keys=True, separators=(",", ":"), default=str)


def event_hash(row: dict) -> str:
    """SHA-256 of an event's fields (everything but ``hash``), as hex."""
    return hashlib.sha256(_canonical({k: row[k] for k in FIELDS}).encode()).hexdigest()


def _url(location) -> str:
    if location is None:
        location = os.environ.get("BIOTWIN_REGISTRY") or DEFAULT_FILE
    text = str(location)
    if "://" in text:
        return text
    path = Path(text)
    if path.is_dir():
        path = path / DEFAULT_FILE
    if not path.parent.is_dir():
        raise RegistryError(
            f"registry {text!r}: folder {path.parent} does not exist; create it or give an existing folder, "
            "a .sqlite file in one, or a SQLAlchemy URL (postgresql+psycopg://user@host:port/db)"
        )
    return f"sqlite:///{path.resolve()}"


class Registry:
    """An audit log and model registry in a SQLAlchemy database.

    Parameters
    ----------
    location : str or path, optional
        A SQLAlchemy URL, a ``.sqlite`` file or a folder (the file ``biotwin-registry.sqlite`` in it).
        Default: ``$BIOTWIN_REGISTRY``, else ``biotwin-registry.sqlite`` in the working folder.
    """

    def __init__(self, location=None):
        try:
            import sqlalchemy as sa
        except ImportError as exc:  # pragma: no cover - a dependency of biotwin
            raise RegistryError("the registry needs SQLAlchemy: pip install 'sqlalchemy>=2'") from exc
        self.url = _url(location)
        self._sa = sa
        try:
            url = sa.engine.make_url(self.url)
        except sa.exc.ArgumentError as exc:
            raise RegistryError(f"registry URL {self.url!r} is not a SQLAlchemy URL ({exc})") from None
        self.dialect = url.get_backend_name()
        if self.dialect not in ("sqlite", "postgresql"):
            raise RegistryError(
                f"registry URL {self.url!r}: database {self.dialect!r} is not supported; use sqlite or postgresql"
            )
        kwargs = {"connect_args": {"timeout": 60}} if self.dialect == "sqlite" else {"pool_pre_ping": True}
        try:
            self.engine = sa.create_engine(url, **kwargs)
        except (ImportError, sa.exc.ArgumentError, sa.exc.NoSuchModuleError) as exc:  # a missing driver, a bad URL
            raise RegistryError(f"registry {self.url!r} cannot be opened: {exc}") from None
        if self.dialect == "sqlite":
            self._sqlite_locking()
        meta = sa.MetaData()
        self.table = sa.Table(
            "audit_events",
            meta,
            sa.Column("seq", sa.Integer, primary_key=True, autoincrement=False),
            sa.Column("time", sa.String(40), nullable=False),
            sa.Column("user", sa.String(200), nullable=False),
            sa.Column("kind", sa.String(40), nullable=False),
            sa.Column("model", sa.String(400)),
            sa.Column("model_hash", sa.String(64)),
            sa.Column("payload", sa.Text, nullable=False),
            sa.Column("prev_hash", sa.String(64), nullable=False),
            sa.Column("hash", sa.String(64), nullable=False),
        )
        try:
            meta.create_all(self.engine)
        except sa.exc.OperationalError as exc:
            raise RegistryError(f"registry {self.url!r} cannot be reached: {exc.orig}") from None

    def _sqlite_locking(self):
        """SQLite: let SQLAlchemy, not pysqlite, open transactions, and open them with the write lock."""
        sa = self._sa

        @sa.event.listens_for(self.engine, "connect")
        def _connect(dbapi_connection, _record):
            dbapi_connection.isolation_level = None

        @sa.event.listens_for(self.engine, "begin")
        def _begin(conn):
            conn.exec_driver_sql("BEGIN IMMEDIATE")

    # -- writing ------------------------------------------------------------------------------------
    def record(self, kind: str, model=None, payload: dict | None = None, user: str | None = None) -> dict:
        """Append one event and return it (with its ``seq`` and ``hash``).

        Parameters
        ----------
        kind : str
            One of :data:`EVENT_KINDS`.
        model : biotwin.Model, path or str, optional
            The model the event is about: a loaded model or folder (its content hash is recorded), or a
            name.
        payload : dict, optional
            What happened (JSON-serializable): inputs' hashes, figures, decisions.
        user : str, optional
            Who; default the operating-system user.
        """
        if kind not in EVENT_KINDS:
            raise RegistryError(f"unknown event kind {kind!r}; kinds: {', '.join(EVENT_KINDS)}")
        name, model_hash = _model_identity(model)
        payload_text = _canonical(payload or {})
        sa = self._sa
        with self.engine.begin() as conn:
            if self.dialect == "postgresql":
                conn.exec_driver_sql("LOCK TABLE audit_events IN EXCLUSIVE MODE")
            last = conn.execute(
                sa.select(self.table.c.seq, self.table.c.hash).order_by(self.table.c.seq.desc()).limit(1)
            ).first()
            row = {
                "seq": (last.seq + 1) if last else 1,
                "time": datetime.now(UTC).isoformat(timespec="microseconds"),
                "user": user or _os_user(),
                "kind": kind,
                "model": name,
                "model_hash": model_hash,
                "payload": payload_text,
                "prev_hash": last.hash if last else GENESIS,
            }
            row["hash"] = event_hash(row)
            conn.execute(self.table.insert().values(**row))
        return _decoded(row)

    # -- reading ------------------------------------------------------------------------------------
    def events(self, model: str | None = None, kind: str | None = None) -> list[dict]:
        """Every event in order (optionally of one model name and/or kind), payloads decoded."""
        sa = self._sa
        query = sa.select(self.table).order_by(self.table.c.seq)
        if model is not None:
            name = model if isinstance(model, str) and not Path(model).is_dir() else _model_identity(model)[0]
            query = query.where(self.table.c.model == name)
        if kind is not None:
            query = query.where(self.table.c.kind == kind)
        with self.engine.connect() as conn:
            return [_decoded(dict(r._mapping)) for r in conn.execute(query)]

    def verify(self) -> list[str]:
        """Recompute the hash chain; return one message per problem (an empty list: the log is intact).

        Names each record that was edited (its fields no longer give its hash), deleted (a gap in the
        sequence), inserted or re-ordered (it does not follow the record before it).
        """
        sa = self._sa
        with self.engine.connect() as conn:
            rows = [dict(r._mapping) for r in conn.execute(sa.select(self.table).order_by(self.table.c.seq))]
        problems = []
        by_hash = {r["hash"]: r for r in rows}
        prev_hash, expected = GENESIS, 1
        for r in rows:
            if r["seq"] > expected:
                missing = f"{expected}" if r["seq"] == expected + 1 else f"{expected}-{r['seq'] - 1}"
                problems.append(f"record {missing} deleted: the sequence jumps from {expected - 1} to {r['seq']}")
            own = event_hash(r) == r["hash"]
            if not own:
                moved = _hash_at_other_seq(r, rows)
                if moved is not None:
                    problems.append(
                        f"record {r['seq']} re-ordered: it holds the event written as record {moved} "
                        f"({r['kind']} at {r['time']})"
                    )
                else:
                    problems.append(
                        f"record {r['seq']} edited: its fields ({r['kind']}, {r['model']}, {r['time']}) no longer "
                        "give its stored hash"
                    )
            elif r["prev_hash"] != prev_hash and r["seq"] == expected:
                origin = by_hash.get(r["prev_hash"])
                where = f" (it follows record {origin['seq']})" if origin else ""
                problems.append(
                    f"record {r['seq']} does not follow record {r['seq'] - 1}{where}: record {r['seq'] - 1} was "
                    "rewritten, or records were inserted or re-ordered"
                )
            prev_hash, expected = r["hash"], r["seq"] + 1
        return problems

    # -- change control -----------------------------------------------------------------------------
    def register(self, model, user: str | None = None) -> dict:
        """Record the model's current version once (no new event when that version is already known)."""
        name, model_hash = _model_identity(model)
        for e in self.events(model=name, kind="model_registered"):
            if e["model_hash"] == model_hash:
                return e
        return self.record("model_registered", model, {"folder": str(getattr(model, "folder", model))}, user)

    def status(self, model) -> dict:
        """The model's standing: ``state`` is ``not approved``, ``approved``, ``requalification required``
        or ``retired``, with ``reason``, the approved ``tier`` and the current ``model_hash``."""
        name, model_hash = _model_identity(model)
        events = self.events(model=name)
        decisions = [e for e in events if e["kind"] in ("approval", "retirement")]
        if not decisions:
            return {"model": name, "state": "not approved", "tier": None, "model_hash": model_hash, "reason": ""}
        last = decisions[-1]
        if last["kind"] == "retirement":
            return {
                "model": name,
                "state": "retired",
                "tier": None,
                "model_hash": model_hash,
                "reason": f"retired by {last['user']} at {last['time']}: {last['payload'].get('reason', '')}",
            }
        tier = last["payload"]["tier"]
        out = {"model": name, "tier": tier, "model_hash": model_hash, "approved": last}
        if last["model_hash"] != model_hash:
            return {
                **out,
                "state": "requalification required",
                "reason": f"the model folder changed since its approval (record {last['seq']}, {last['time']}): "
                f"content hash {last['model_hash'][:12]} then, {model_hash[:12]} now",
            }
        later = [e for e in events if e["kind"] == "calibration" and e["seq"] > last["seq"]]
        if later:
            return {
                **out,
                "state": "requalification required",
                "reason": f"a calibration was recorded after the approval (record {later[-1]['seq']}, {later[-1]['time']})",
            }
        drifted = [e for e in events if e["kind"] == "drift" and e["seq"] > last["seq"] and e["payload"].get("flagged")]
        if drifted:
            e = drifted[-1]
            return {
                **out,
                "state": "requalification required",
                "reason": f"batch {Path(str(e['payload'].get('batch', '?'))).name} drifted from the validated model "
                f"(record {e['seq']}, {e['time']}): {e['payload'].get('reason', '')}",
            }
        return {**out, "state": "approved", "reason": f"approved for tier {tier} by {last['user']} at {last['time']}"}

    def approve(self, model, tier: int, reason: str, user: str | None = None) -> dict:
        """Record a reviewer's approval of the model's current version for decision tier ``tier``.

        Refused unless a validation of this very version passed and supports at least that tier.
        """
        if not isinstance(tier, int) or not 1 <= tier <= 6:
            raise RegistryError(
                f"tier {tier!r}: a decision tier is an integer 1-6 (1 exploratory ... 6 release-relevant)"
            )
        if not reason or not str(reason).strip():
            raise RegistryError("an approval needs a reason (what was reviewed and why it suffices)")
        name, model_hash = _model_identity(model)
        passing = [
            e
            for e in self.events(model=name, kind="validation")
            if e["model_hash"] == model_hash
            and e["payload"].get("passed")
            and e["payload"].get("supported_tier", 0) >= tier
        ]
        if not passing:
            best = [
                e["payload"].get("supported_tier", 0)
                for e in self.events(model=name, kind="validation")
                if e["model_hash"] == model_hash
            ]
            raise RegistryError(
                f"cannot approve {name} for tier {tier}: no passing validation of this version "
                f"(content hash {model_hash[:12]}) supports tier {tier}"
                + (
                    f"; its validations support at most tier {max(best)}"
                    if best
                    else "; it has no validation: run biotwin validate"
                )
            )
        return self.record(
            "approval", model, {"tier": tier, "reason": str(reason), "validation_record": passing[-1]["seq"]}, user
        )

    def retire(self, model, reason: str, user: str | None = None) -> dict:
        """Record that the model's current version may no longer be used for decisions.

        A later approval (after a new validation) brings it back; the retirement stays on record.
        """
        if not reason or not str(reason).strip():
            raise RegistryError("a retirement needs a reason (why the model may no longer be used)")
        name, _ = _model_identity(model)
        decisions = [e for e in self.events(model=name) if e["kind"] in ("approval", "retirement")]
        if decisions and decisions[-1]["kind"] == "retirement":
            raise RegistryError(f"{name} is already retired (record {decisions[-1]['seq']})")
        return self.record("retirement", model, {"reason": str(reason)}, user)


def _os_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no login name (a container without a passwd entry)
        return f"uid {os.getuid()}"


def _model_identity(model) -> tuple[str | None, str | None]:
    """(name, content hash) of a loaded model or a model folder; (name, None) for a bare name."""
    from biotwin.core.model import Model, folder_sha256

    if model is None:
        return None, None
    if isinstance(model, Model):
        return model.name, folder_sha256(model.folder)
    path = Path(str(model))
    if path.is_dir() and (path / "model.py").is_file():
        return path.resolve().name, folder_sha256(path)
    from biotwin.core.model import load_model

    try:
        loaded = load_model(str(model))
    except BiotwinError:
        return str(model), None  # a name the registry knows only from its records
    return loaded.name, folder_sha256(loaded.folder)


def _decoded(row: dict) -> dict:
    out = dict(row)
    out["payload"] = json.loads(row["payload"]) if isinstance(row["payload"], str) else row["payload"]
    return out


def _hash_at_other_seq(row: dict, rows: list[dict]) -> int | None:
    """The sequence number at which this row's fields give its stored hash, if another one does."""
    for other in rows:
        if other["seq"] != row["seq"] and event_hash({**row, "seq": other["seq"]}) == row["hash"]:
            return other["seq"]
    return None
