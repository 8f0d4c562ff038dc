"""Stop rules, by hand: which seeds each rule freezes, in what order, with which reason and step."""

from __future__ import annotations

import numpy as np

from compgen_jax.stopping import PatienceStop, SeedStops, ThresholdStop

RULES = (ThresholdStop("type_0", 0.9), PatienceStop("train_inferred", 0.9, patience_epochs=2))


def test_rules_in_order_with_reasons_steps_and_patience() -> None:
    stops = SeedStops.fresh(len(RULES), 4)
    active, diverged = np.ones(4, bool), np.array([False, False, False, True])
    # epoch 1: seed 0 reaches type_0 (rule i); seeds 1 and 2 memorise (patience starts at 1).
    scores = {"type_0": np.array([0.95, 0.1, 0.2, 0.0]),
              "train_inferred": np.array([1.0, 0.95, 0.99, 0.0])}
    active = stops.update(RULES, scores, np.full(4, 1), np.full(4, 10), active, diverged)
    assert active.tolist() == [False, True, True, True]
    assert stops.reason.tolist() == ["type_0", "", "", "diverged"]
    assert stops.patience_from[1].tolist() == [-1, 1, 1, -1]  # seed 0 stopped by rule i first
    assert stops.stop_step.tolist() == [10, -1, -1, 10]  # a diverged seed: its steps so far
    # epoch 3: waited 2 epochs, not more than 2: nobody stops; epoch 4: seeds 1 and 2 stop.
    scores = {"type_0": np.array([0.95, 0.5, 0.5, 0.0]),
              "train_inferred": np.array([1.0, 1.0, 1.0, 0.0])}
    active = stops.update(RULES, scores, np.full(4, 3), np.full(4, 30), active, diverged)
    assert active.tolist() == [False, True, True, True]
    active = stops.update(RULES, scores, np.full(4, 4), np.full(4, 40), active, diverged)
    assert active.tolist() == [False, False, False, True]
    assert stops.reason.tolist() == ["type_0", "patience", "patience", "diverged"]
    step, reason = stops.final(np.array([10, 40, 40, 10]))
    assert step.tolist() == [10, 40, 40, 40] and reason.tolist() == [
        "type_0", "patience", "patience", "diverged"]


def test_a_diverged_seed_is_stopped_as_diverged_whatever_its_scores() -> None:
    """Its frozen (pre-divergence) parameters may still score above a threshold: the reason is
    `diverged`, and no rule's patience starts for it."""
    stops = SeedStops.fresh(len(RULES), 2)
    scores = {"type_0": np.array([0.95, 0.95]), "train_inferred": np.array([1.0, 1.0])}
    active = stops.update(RULES, scores, np.full(2, 1), np.array([7, 10]), np.ones(2, bool),
                          np.array([True, False]))
    assert stops.reason.tolist() == ["diverged", "type_0"]
    assert stops.patience_from.tolist() == [[-1, -1], [-1, -1]]
    assert stops.final(np.array([7, 10]))[1].tolist() == ["diverged", "type_0"]
    assert active.tolist() == [True, False]  # a diverged lane stays frozen by `diverged`


def test_a_rule_whose_score_is_absent_never_fires_and_bookkeeping_round_trips() -> None:
    stops = SeedStops.fresh(len(RULES), 2)
    active = stops.update(RULES, {"test": np.array([1.0, 1.0])}, np.zeros(2, int),
                          np.full(2, 5), np.ones(2, bool), np.zeros(2, bool))
    assert active.all() and (stops.reason == "").all()
    again = SeedStops.from_meta(stops.meta())
    assert again.patience_from.shape == (2, 2) and again.reason.tolist() == ["", ""]
    none = SeedStops.from_meta(SeedStops.fresh(0, 3).meta())
    assert none.patience_from.shape == (0, 3)
