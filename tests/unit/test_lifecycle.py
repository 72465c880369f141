"""The lifecycle's table, its decisions, and its agreement with the SQL that writes states."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from vodarchiver import lifecycle
from vodarchiver.db.queries import queries
from vodarchiver.lifecycle import Action, Event, RetryPolicy, VodFacts, VodState

ROOT = Path(__file__).resolve().parents[2]
S = VodState
NOW = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)

# What the issue asks of each action, written out independently of the table.
EXPECTED: dict[Action, set[VodState]] = {
    Action.CANCEL: {S.LIVE, S.QUEUED, S.WAITING_FOR_DISK, S.DOWNLOADING, S.DOWNLOADED,
                    S.WAITING_FOR_AUTH, S.UPLOADING, S.FAILED_RETRYABLE, S.FAILED_PERMANENT},
    Action.SKIP: {S.LIVE, S.QUEUED, S.WAITING_FOR_DISK, S.DOWNLOADING, S.DOWNLOADED,
                  S.WAITING_FOR_AUTH, S.UPLOADING, S.FAILED_RETRYABLE, S.FAILED_PERMANENT},
    Action.RESTORE: {S.CANCELED, S.SKIPPED, S.FAILED_PERMANENT, S.SKIPPED_RESTRICTED, S.GONE},
    Action.RETRY: {S.FAILED_RETRYABLE, S.WAITING_FOR_DISK},
    Action.REPROCESS: {S.UPLOADED, S.DOWNLOADED, S.WAITING_FOR_AUTH, S.FAILED_RETRYABLE,
                       S.FAILED_PERMANENT, S.CANCELED, S.SKIPPED},
    Action.PRIORITY: set(S) - {S.PLACEHOLDER},
}  # fmt: skip


@pytest.mark.parametrize("action", list(Action))
@pytest.mark.parametrize("state", list(VodState))
def test_each_action_is_allowed_exactly_where_the_issue_says(
    action: Action, state: VodState
) -> None:
    """Every action from every state: allowed where expected (given favourable facts), refused elsewhere."""
    facts = VodFacts(state, on_twitch=True, retry_pending=True)
    allowed = lifecycle.find(action.event, facts) is not None
    assert allowed == (state in EXPECTED[action])
    if not allowed:
        assert lifecycle.refusal(action, facts)


def test_guards_choose_where_a_restore_goes_and_when_it_is_refused() -> None:
    """A kept file restores to downloaded, else queued; a gone VOD only while Twitch lists it; retry only when not yet due."""
    kept = lifecycle.find(Event.RESTORE, VodFacts(S.CANCELED, file_kept=True))
    no_file = lifecycle.find(Event.RESTORE, VodFacts(S.CANCELED))
    assert kept is not None
    assert no_file is not None
    assert (kept.target, no_file.target) == (S.DOWNLOADED, S.QUEUED)
    assert lifecycle.find(Event.RESTORE, VodFacts(S.GONE, on_twitch=False)) is None
    assert "Helix" in lifecycle.refusal(Action.RESTORE, VodFacts(S.GONE))
    assert lifecycle.find(Event.RETRY, VodFacts(S.FAILED_RETRYABLE, retry_pending=False)) is None
    assert lifecycle.allowed_actions(VodFacts(S.UPLOADED)) == [Action.REPROCESS, Action.PRIORITY]


def test_facts_come_from_the_row() -> None:
    """file_kept needs a verified download and a path; retry_pending a future next_attempt_at."""
    row = {"state": "failed_retryable", "download_state": "downloaded", "file_path": "/x.mp4",
           "next_attempt_at": NOW + timedelta(minutes=5)}  # fmt: skip
    facts = VodFacts.from_row(row, NOW)
    assert (facts.file_kept, facts.retry_pending) == (True, True)
    facts = VodFacts.from_row({**row, "file_path": None, "next_attempt_at": NOW}, NOW)
    assert (facts.file_kept, facts.retry_pending) == (False, False)


def test_retry_decisions_back_off_then_give_up() -> None:
    """Failures back off exponentially up to the cap, give up at max_attempts, and at once when permanent."""
    policy = RetryPolicy(max_attempts=3, backoff_base_s=10, backoff_max_s=15)
    first = lifecycle.retry_decision("download", 0, "503", permanent=False, policy=policy)
    assert first.event is Event.DOWNLOAD_FAILED
    assert 0 < first.delay_s <= 15
    last = lifecycle.retry_decision("upload", 2, "503", permanent=False, policy=policy)
    assert last.event is Event.UPLOAD_GAVE_UP
    assert last.reason == "gave up after 3 attempts: 503"
    refused = lifecycle.retry_decision("upload", 0, "invalidTitle", permanent=True, policy=policy)
    assert (refused.event, refused.reason) == (Event.UPLOAD_GAVE_UP, "invalidTitle")
    record = lifecycle.record(lifecycle.transition_for(first.event, S.DOWNLOADING), S.DOWNLOADING,
                              now=NOW, delay_s=first.delay_s)  # fmt: skip
    assert (record.target, record.failure) == (S.FAILED_RETRYABLE, True)
    assert record.next_attempt_at == NOW + timedelta(seconds=first.delay_s)


def test_every_transition_target_and_source_is_a_state_the_migrations_allow() -> None:
    """The table names no state the CHECK constraint of the latest migration setting it would refuse."""
    latest = [m for m in _migrations() if "vods_state_check CHECK" in m][-1]
    allowed = set(re.findall(r"'(\w+)'", latest.split("vods_state_check CHECK")[1].split(";")[0]))
    for t in lifecycle.TRANSITIONS:
        assert {s.value for s in t.source} <= allowed
        assert t.target is None or t.target.value in allowed


def test_architecture_draws_the_lifecycle_from_the_table() -> None:
    """ARCHITECTURE.md's state diagram is exactly the one the table generates."""
    doc = (ROOT / "ARCHITECTURE.md").read_text()
    assert f"```mermaid\n{lifecycle.mermaid()}\n```" in doc


# --- the SQL agrees with the table -------------------------------------------------------------

_LITERAL = re.compile(r"(?<![\w])state\s*(?:=|<>|:=)\s*'(\w+)'")
_IN_LIST = re.compile(r"(?<![\w])state\s+(?:NOT\s+)?IN\s*\(([^)]*)\)", re.IGNORECASE)
_WRITES = re.compile(r"(?:\bSET\b|,|:=)\s*(?:NEW\.)?state\s*(?::=|=)", re.IGNORECASE)
# Other tables have a `state` of their own (chat_replays, youtube_extras): a VOD's state is
# written by a statement on `vods`, or by a trigger function (`NEW.state`).
_ON_VODS = re.compile(r"\b(?:UPDATE|INSERT\s+INTO)\s+vods\b|\bNEW\.state\b", re.IGNORECASE)
_SET_LITERAL = re.compile(r"(?:\bSET\b|,|\bNEW\.)\s*state\s*(?::=|=)\s*'(\w+)'", re.IGNORECASE)


def _migrations() -> list[str]:
    """The text of every migration, in order of number."""
    return [p.read_text() for p in sorted((ROOT / "migrations").glob("*.sql"))]


def _statements() -> dict[str, str]:
    """Every named statement of vodarchiver/db/*.sql, and the migrations' trigger functions."""
    found = {}
    for path in sorted((ROOT / "vodarchiver" / "db").glob("*.sql")):
        raw = path.read_text()
        for block in re.split(r"^-- name: ", raw, flags=re.MULTILINE)[1:]:
            name, _, text = block.partition("\n")
            found[name.strip()] = text
    assert set(found) == set(queries()), "the .sql files parsed differently from the loader"
    for migration in _migrations():
        for block in migration.split("-- transition: ")[1:]:
            header, _, rest = block.partition("\n")
            if "(actor sql)" in header:  # a trigger: the runbook's UPDATE, carried out by SQL
                events = header.split("(actor sql)")[0].strip()
                found[f"trigger {events}"] = f"-- transition: {events}\n" + rest.split("$$;")[0]
    assert any(n.startswith("trigger") for n in found), "the parser found no trigger function"
    return found


def _events(text: str) -> list[Event]:
    match = re.search(r"-- transition: ([\w, ]+)", text)
    return [Event(e.strip()) for e in match.group(1).split(",")] if match else []


def _mentioned(text: str) -> frozenset[VodState]:
    code = "\n".join(line.split("--")[0] for line in text.splitlines())
    names = set(_LITERAL.findall(code))
    for group in _IN_LIST.findall(code):
        names |= set(re.findall(r"'(\w+)'", group))
    return lifecycle.states(names)


def test_every_statement_that_writes_a_state_names_its_transitions() -> None:
    """A statement assigning `state` carries `-- transition:` naming events of the table."""
    writers = {name for name, text in _statements().items()
               if _WRITES.search(text) and _ON_VODS.search(text)}  # fmt: skip
    assert writers, "the parser found no state-writing statement"
    for name in writers:
        assert _events(_statements()[name]), f"{name} writes a state without a transition header"


@pytest.mark.parametrize("name", [n for n, t in _statements().items() if _events(t)])
def test_the_states_a_statement_reads_and_writes_are_those_of_its_transitions(name: str) -> None:
    """Literal states in a transition statement are sources or targets of its events; a literal it
    sets is a target; a claim's WHERE takes exactly the states the table lets the stage claim."""
    text = _statements()[name]
    events = _events(text)
    sources = frozenset().union(*(lifecycle.sources(e) for e in events))
    targets = frozenset().union(*(lifecycle.targets(e) for e in events))
    assert _mentioned(text) <= sources | targets, name
    assert lifecycle.states(_SET_LITERAL.findall(text)) <= targets, name
    if events in ([Event.DOWNLOAD_CLAIMED], [Event.UPLOAD_CLAIMED]):
        taken = _mentioned(text.split("WHERE", 1)[1])
        assert taken == sources, (name, sorted(taken ^ sources))
    if name.startswith("trigger"):  # the runbook's recipe reprocesses from the table's states
        taken = lifecycle.states(re.findall(r"'(\w+)'", _IN_LIST.findall(text)[0]))
        assert taken == sources, (name, sorted(taken ^ sources))
