"""The transaction tables are total, consistent, and the docs are generated from them."""

from __future__ import annotations

import pathlib
import re

import pytest

from sipwire.core._txn_tables import (
    MACHINES,
    TIMER_INPUTS,
    TIMER_STARTS,
    TU_INPUTS,
    Action,
    Ignore,
    Input,
    Machine,
    Misuse,
    State,
    TimerConfig,
    Transition,
    render_all,
)

DOCS = pathlib.Path(__file__).resolve().parents[1] / "docs" / "transactions.md"
ids = [m.name for m in MACHINES]


@pytest.mark.parametrize("machine", MACHINES, ids=ids)
def test_table_is_total(machine: Machine) -> None:
    expected = {(s, i) for s in machine.states for i in machine.inputs}
    assert set(machine.table) == expected


@pytest.mark.parametrize("machine", MACHINES, ids=ids)
def test_only_tu_inputs_can_be_misuse(machine: Machine) -> None:
    for (state, inp), entry in machine.table.items():
        if isinstance(entry, Misuse):
            assert inp in TU_INPUTS, f"{state.value}/{inp.value} from the network is misuse"


@pytest.mark.parametrize("machine", MACHINES, ids=ids)
def test_every_state_is_reachable_and_can_terminate(machine: Machine) -> None:
    edges: dict[State, set[State]] = {s: set() for s in machine.states}
    for (state, _), entry in machine.table.items():
        if isinstance(entry, Transition):
            assert entry.next_state in machine.states
            edges[state].add(entry.next_state)

    def reach(start: State) -> set[State]:
        seen, todo = {start}, [start]
        while todo:
            for nxt in edges[todo.pop()]:
                if nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
        return seen

    assert reach(State.INITIAL) == set(machine.states)
    for state in machine.states:
        assert State.TERMINATED in reach(state), f"{state.value} cannot terminate"
    assert not edges[State.TERMINATED]


@pytest.mark.parametrize("machine", MACHINES, ids=ids)
def test_a_started_timer_is_handled_in_the_state_it_starts_in(machine: Machine) -> None:
    """Otherwise the layer would cancel it at once (timers a state ignores are dropped)."""
    for (state, inp), entry in machine.table.items():
        if not isinstance(entry, Transition):
            continue
        for action in entry.actions:
            timer = TIMER_STARTS.get(action)
            if timer is None:
                continue
            assert timer in machine.inputs, f"{action} starts a foreign timer"
            target = machine.table[(entry.next_state, timer)]
            assert isinstance(target, Transition), (
                f"{state.value}/{inp.value} starts {timer.value} but "
                f"{entry.next_state.value} ignores it"
            )


@pytest.mark.parametrize("machine", MACHINES, ids=ids)
def test_every_timer_input_of_a_machine_is_started_somewhere(machine: Machine) -> None:
    started = {
        TIMER_STARTS[a]
        for e in machine.table.values()
        if isinstance(e, Transition)
        for a in e.actions
        if a in TIMER_STARTS
    }
    assert started == {i for i in machine.inputs if i in TIMER_INPUTS}


def test_figures_key_transitions() -> None:
    """Spot checks against the RFC figures (a typo in a table fails here)."""
    by_name = {m.name: m for m in MACHINES}
    ic = by_name["INVITE client transaction"]
    assert ic.table[(State.CALLING, Input.RESP_2XX)] == Transition(
        (Action.PASS_TO_TU, Action.START_M), State.ACCEPTED
    )
    assert ic.table[(State.PROCEEDING, Input.RESP_300_699)] == Transition(
        (Action.PASS_TO_TU, Action.SEND_ACK, Action.START_D), State.COMPLETED
    )
    isv = by_name["INVITE server transaction"]
    assert isv.table[(State.ACCEPTED, Input.ACK)] == Transition((Action.ACK_TO_TU,), State.ACCEPTED)
    assert isinstance(isv.table[(State.ACCEPTED, Input.REQUEST)], Ignore)
    assert isv.table[(State.COMPLETED, Input.TRANSPORT_ERROR)].next_state is State.COMPLETED  # type: ignore[union-attr]
    nc = by_name["non-INVITE client transaction"]
    assert nc.table[(State.PROCEEDING, Input.TIMER_E)] == Transition(
        (Action.SEND_REQUEST, Action.E_AT_T2), State.PROCEEDING
    )


def test_timer_durations_follow_rfc3261_table_4() -> None:
    cfg = TimerConfig()
    assert (cfg.t1, cfg.t2, cfg.t4, cfg.timer_c, cfg.trying_delay) == (0.5, 4.0, 5.0, 180.0, 0.2)
    unreliable = {t: cfg.duration(t, reliable=False) for t in TIMER_INPUTS}
    reliable = {t: cfg.duration(t, reliable=True) for t in TIMER_INPUTS}
    assert unreliable[Input.TIMER_A] == unreliable[Input.TIMER_E] == 0.5
    assert unreliable[Input.TIMER_G] == 0.5
    for t in (Input.TIMER_B, Input.TIMER_F, Input.TIMER_H, Input.TIMER_J):
        assert unreliable[t] == 32.0
    for t in (Input.TIMER_L, Input.TIMER_M, Input.TIMER_CANCEL):
        assert unreliable[t] == reliable[t] == 32.0
    assert unreliable[Input.TIMER_D] == 32.0  # RFC 6026 §8.4: at least 32 s
    assert unreliable[Input.TIMER_I] == unreliable[Input.TIMER_K] == 5.0
    for t in (Input.TIMER_A, Input.TIMER_E, Input.TIMER_G):
        assert reliable[t] is None  # not started
    for t in (Input.TIMER_D, Input.TIMER_I, Input.TIMER_J, Input.TIMER_K):
        assert reliable[t] == 0.0
    assert reliable[Input.TIMER_B] == reliable[Input.TIMER_F] == reliable[Input.TIMER_H] == 32.0
    with pytest.raises(ValueError):
        cfg.duration(Input.ACK, reliable=False)


def test_timer_config_is_frozen_and_validated() -> None:
    cfg = TimerConfig(t1=0.1)
    assert cfg.duration(Input.TIMER_B, reliable=False) == pytest.approx(6.4)
    with pytest.raises(AttributeError):
        cfg.t1 = 1.0  # type: ignore[misc]
    with pytest.raises(ValueError):
        TimerConfig(t1=0.0)
    with pytest.raises(ValueError):
        TimerConfig(t2=-1.0)


def test_docs_are_generated_from_the_tables() -> None:
    text = DOCS.read_text(encoding="utf-8")
    match = re.search(r"<!-- BEGIN GENERATED[^>]*-->\n(.*?)<!-- END GENERATED -->", text, re.DOTALL)
    assert match, "docs/transactions.md lacks the generated block"
    assert match.group(1) == render_all(), (
        "docs/transactions.md is stale: regenerate with python -m sipwire.core._txn_tables"
    )


def test_public_names_exist() -> None:
    import sipwire.core.transaction as module

    for name in module.__all__:
        assert hasattr(module, name), name
