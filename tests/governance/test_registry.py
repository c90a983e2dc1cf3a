"""The registry and audit trail: tamper detection, concurrent writers, change control, on SQLite and on a
PostgreSQL server that these tests start and stop themselves (127.0.0.1, a free port)."""

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import pytest
import sqlalchemy as sa

from biotwin.governance import Registry, RegistryError
from support import ROOT, TEST_MODELS


def _pg_bin(name: str) -> str:
    found = shutil.which(name)
    if found:
        return found
    for candidate in sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"), reverse=True):
        return str(candidate)
    pytest.fail(f"PostgreSQL's {name} not found: `make setup` installs the Debian package postgresql")


@pytest.fixture(scope="module")
def postgres_url():
    """A throwaway PostgreSQL server on a loopback port; stopped (and its files removed) after the module.

    Its folder is a fresh one under the system's temporary directory (pytest's own are private to the
    user running the tests, and the server runs as the ``postgres`` user when that is root)."""
    home = Path(tempfile.mkdtemp(prefix="biotwin-pg-"))
    data = home / "data"
    data.mkdir()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    run_as = []
    if os.geteuid() == 0:  # initdb and postgres refuse to run as root: run them as the package's user
        shutil.chown(data, "postgres", "postgres")
        shutil.chown(home, "postgres", "postgres")
        run_as = ["runuser", "-u", "postgres", "--"]
    log = home / "server.log"
    subprocess.run(
        [*run_as, _pg_bin("initdb"), "-D", str(data), "-A", "trust", "-U", "biotwin"], check=True, capture_output=True
    )
    subprocess.run(
        [
            *run_as,
            _pg_bin("pg_ctl"),
            "-D",
            str(data),
            "-l",
            str(log),
            "-o",
            f"-p {port} -k {data} -c listen_addresses=127.0.0.1",
            "-w",
            "start",
        ],
        check=True,
        capture_output=True,
    )
    try:
        yield f"postgresql+psycopg://biotwin@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(
            [*run_as, _pg_bin("pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"], capture_output=True, check=False
        )
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(params=["sqlite", "postgresql"])
def location(request, tmp_path):
    if request.param == "sqlite":
        return tmp_path / "registry.sqlite"
    url = request.getfixturevalue("postgres_url")
    engine = sa.create_engine(url)
    with engine.begin() as conn:  # each test starts from an empty log
        conn.exec_driver_sql("DROP TABLE IF EXISTS audit_events")
    engine.dispose()
    return url


def _filled(location, n=6) -> Registry:
    reg = Registry(location)
    for i in range(n):
        reg.record("twin_run", "mab_fedbatch", {"run": i, "alarms": []}, user="operator")
    return reg


def _execute(reg, sql, **params):
    with reg.engine.begin() as conn:
        conn.execute(sa.text(sql), params)


def test_an_untouched_log_verifies(location):
    reg = _filled(location)
    assert reg.verify() == []
    events = reg.events()
    assert [e["seq"] for e in events] == list(range(1, 7)) and events[2]["payload"] == {"run": 2, "alarms": []}
    assert events[3]["prev_hash"] == events[2]["hash"]


def test_an_edited_record_is_named(location):
    reg = _filled(location)
    _execute(reg, "UPDATE audit_events SET payload = :p WHERE seq = 3", p='{"alarms":[],"run":99}')
    when = reg.events()[2]["time"]
    assert reg.verify() == [
        f"record 3 edited: its fields (twin_run, mab_fedbatch, {when}) no longer give its stored hash"
    ]


def test_a_rewritten_record_with_a_recomputed_hash_breaks_the_chain_after_it(location):
    from biotwin.governance.registry import event_hash

    reg = _filled(location)
    row = reg.events()[2]
    forged = {**row, "user": "intruder", "payload": '{"alarms":[],"run":2}'}
    _execute(reg, "UPDATE audit_events SET \"user\" = 'intruder', hash = :h WHERE seq = 3", h=event_hash(forged))
    problems = reg.verify()
    assert len(problems) == 1 and problems[0].startswith("record 4 does not follow record 3: record 3 was rewritten")


def test_a_deleted_record_is_named(location):
    reg = _filled(location)
    _execute(reg, "DELETE FROM audit_events WHERE seq = 4")
    assert reg.verify() == ["record 4 deleted: the sequence jumps from 3 to 5"]


def test_swapped_records_are_named(location):
    reg = _filled(location)
    a, b = reg.events()[1], reg.events()[2]  # seq 2 and 3: swap everything but the place
    for src, dst in ((a, 3), (b, 2)):
        _execute(
            reg,
            "UPDATE audit_events SET time = :t, payload = :p, prev_hash = :ph, hash = :h WHERE seq = :s",
            t=src["time"],
            p=sa_json(src["payload"]),
            ph=src["prev_hash"],
            h=src["hash"],
            s=dst,
        )
    problems = reg.verify()
    assert problems[:2] == [
        f"record 2 re-ordered: it holds the event written as record 3 (twin_run at {b['time']})",
        f"record 3 re-ordered: it holds the event written as record 2 (twin_run at {a['time']})",
    ]


def sa_json(payload):
    from biotwin.governance.registry import _canonical

    return _canonical(payload)


def test_two_processes_append_concurrently_without_losing_or_forking(location, tmp_path):
    """Two writers, 200 events each, at the same time: 400 events, one linear chain."""
    script = textwrap.dedent(
        """
        import sys
        from biotwin.governance import Registry
        reg = Registry(sys.argv[1])
        for i in range(200):
            reg.record("drift", "mab_fedbatch", {"writer": sys.argv[2], "i": i}, user=sys.argv[2])
        """
    )
    Registry(location)  # create the table once, before the race
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", script, str(location), who], cwd=ROOT, stderr=subprocess.PIPE, text=True
        )
        for who in ("a", "b")
    ]
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
    reg = Registry(location)
    events = reg.events()
    assert len(events) == 400 and [e["seq"] for e in events] == list(range(1, 401))
    for who in ("a", "b"):
        assert sorted(e["payload"]["i"] for e in events if e["user"] == who) == list(range(200))
    assert reg.verify() == []


def test_changing_an_approved_model_requires_requalification(tmp_path):
    """Touching parameters.yaml of an approved model turns it to 'requalification required'; restoring the
    bytes turns it back. Approval needs a passing validation of the very version."""
    folder = tmp_path / "monod_switch"
    shutil.copytree(TEST_MODELS / "monod_switch", folder)
    reg = Registry(tmp_path)
    with pytest.raises(RegistryError, match="it has no validation: run biotwin validate"):
        reg.approve(folder, 2, "looks fine")
    reg.record("validation", folder, {"passed": True, "supported_tier": 2}, user="qa")
    reg.approve(folder, 2, "held-out batch inside its bands", user="reviewer")
    assert reg.status(folder)["state"] == "approved"
    params = folder / "parameters.yaml"
    original = params.read_bytes()
    params.write_bytes(original.replace(b"value: 0.5", b"value: 0.55", 1))
    status = reg.status(folder)
    assert status["state"] == "requalification required" and "changed since its approval" in status["reason"]
    with pytest.raises(RegistryError, match="no passing validation of this version"):
        reg.approve(folder, 2, "same as before")
    params.write_bytes(original)
    assert reg.status(folder)["state"] == "approved"
    reg.record("calibration", folder, {"estimate": ["mu_max"]}, user="qa")
    assert reg.status(folder)["state"] == "requalification required"
    assert reg.verify() == []


@pytest.mark.parametrize(
    "location, message",
    [
        ("/no/such/folder/registry.sqlite", "folder /no/such/folder does not exist"),
        ("mysql://u@h/db", "database 'mysql' is not supported"),
        ("postgresql+psycopg://nobody@127.0.0.1:1/none", "cannot be reached"),
    ],
)
def test_bad_registry_locations_are_named(location, message):
    with pytest.raises(RegistryError, match=message):
        Registry(location)


def test_unknown_event_kinds_and_bad_approvals_write_nothing(tmp_path):
    reg = Registry(tmp_path)
    with pytest.raises(RegistryError, match="unknown event kind 'calibrated'"):
        reg.record("calibrated", "m", {})
    with pytest.raises(RegistryError, match="integer 1-6"):
        reg.approve("m", 7, "x")
    with pytest.raises(RegistryError, match="needs a reason"):
        reg.approve("m", 2, " ")
    assert reg.events() == []


def test_retirement_withdraws_a_model_until_a_new_approval(tmp_path):
    """A retired model reports 'retired' with the reason; retiring twice or without a reason is refused;
    a later approval (of a validated version) brings it back, and the retirement stays on record."""
    folder = tmp_path / "monod_switch"
    shutil.copytree(TEST_MODELS / "monod_switch", folder)
    reg = Registry(tmp_path)
    reg.record("validation", folder, {"passed": True, "supported_tier": 2}, user="qa")
    reg.approve(folder, 2, "held-out batch inside its bands", user="reviewer")
    with pytest.raises(RegistryError, match="needs a reason"):
        reg.retire(folder, "")
    reg.retire(folder, "the process moved to a new cell line", user="qa")
    status = reg.status(folder)
    assert status["state"] == "retired" and "new cell line" in status["reason"]
    with pytest.raises(RegistryError, match="already retired"):
        reg.retire(folder, "again")
    reg.approve(folder, 2, "re-reviewed for the old line", user="reviewer")
    assert reg.status(folder)["state"] == "approved"
    assert [e["kind"] for e in reg.events()] == ["validation", "approval", "retirement", "approval"]
    assert reg.verify() == []
