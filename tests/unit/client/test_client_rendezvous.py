"""Rendezvous hashing: even spread, and only the keys of a leaving endpoint move."""

from __future__ import annotations

from collections import Counter

from sentiric_inference.client.rendezvous import rank

ENDPOINTS = [f"10.0.0.{n}:16071" for n in range(1, 6)]
SESSIONS = [f"call-{n}" for n in range(2000)]


def _owners(endpoints: list[str]) -> dict[str, str]:
    return {s: rank(s, endpoints)[0] for s in SESSIONS}


def test_rank_is_a_stable_permutation() -> None:
    ranked = rank("call-7", ENDPOINTS)
    assert sorted(ranked) == sorted(ENDPOINTS)
    assert rank("call-7", list(reversed(ENDPOINTS))) == ranked


def test_sessions_spread_evenly() -> None:
    counts = Counter(_owners(ENDPOINTS).values())
    assert set(counts) == set(ENDPOINTS)
    # 400 expected each; a uniform hash stays well within +-20% over 2000 keys.
    assert all(320 <= n <= 480 for n in counts.values()), counts


def test_an_endpoint_leaving_moves_only_its_sessions_to_their_runner_up() -> None:
    before = _owners(ENDPOINTS)
    gone = ENDPOINTS[2]
    after = _owners([e for e in ENDPOINTS if e != gone])
    moved = {s for s in SESSIONS if before[s] != after[s]}
    assert moved == {s for s in SESSIONS if before[s] == gone}
    assert all(after[s] == rank(s, ENDPOINTS)[1] for s in moved)


def test_an_endpoint_joining_takes_only_sessions_it_now_wins() -> None:
    before = _owners(ENDPOINTS)
    new = "10.0.0.9:16071"
    after = _owners([*ENDPOINTS, new])
    moved = {s for s in SESSIONS if before[s] != after[s]}
    assert moved and all(after[s] == new for s in moved)
    # About a sixth of the sessions, no more.
    assert len(moved) < len(SESSIONS) * 0.25
