"""Parameter values on which every candidate failed, and the unseen picks that leave them."""

from __future__ import annotations

from optuna.distributions import BaseDistribution, CategoricalDistribution
from optuna.trial import FrozenTrial, TrialState, create_trial

from tuner.search.failing import MIN_TRIALS, avoid_failing, failing_values
from tuner.search.keys import OUTCOME_ATTR

DIST: dict[str, BaseDistribution] = {"mode": CategoricalDistribution(("static", "dynamic")),
                                     "v": CategoricalDistribution((0, 1, 2, 3, 4))}


def trial(mode: str, v: int, failed: bool) -> FrozenTrial:
    outcome = {"failure_kind": "build" if failed else None}
    return create_trial(state=TrialState.PRUNED if failed else TrialState.COMPLETE, value=None if failed else 1.0,
                        params={"mode": mode, "v": v}, distributions=DIST, user_attrs={OUTCOME_ATTR: outcome})


def test_a_value_fails_only_when_every_one_of_enough_trials_with_it_failed() -> None:
    trials = [trial("dynamic", v, True) for v in range(MIN_TRIALS)] + [trial("static", 3, False),
                                                                      trial("static", 4, True)]
    assert failing_values(trials) == {("mode", '"dynamic"')}
    assert failing_values(trials[: MIN_TRIALS - 1]) == set()  # too few to tell
    # One success with the value clears it.
    assert failing_values([*trials, trial("dynamic", 4, False)]) == set()


def test_the_trial_being_told_counts_before_the_study_has_it() -> None:
    # A trial is finished in the storage only after its objective returns: its own failure, the
    # one that makes the value failing, is handed over beside the stored trials.
    stored = [trial("dynamic", v, True) for v in range(MIN_TRIALS - 1)]
    assert failing_values(stored) == set()
    assert failing_values(stored, [({"mode": "dynamic", "v": 4}, True)]) == {("mode", '"dynamic"')}
    assert failing_values(stored, [({"mode": "dynamic", "v": 4}, False)]) == set()
    # A repeat of a stored candidate is not a new one.
    assert failing_values(stored, [({"mode": "dynamic", "v": 0}, True)]) == set()


def test_unseen_picks_leave_failing_values_until_nothing_else_is_left() -> None:
    trials = [trial("dynamic", v, True) for v in range(MIN_TRIALS)] + [trial("static", 0, False)]
    unseen = [{"mode": "dynamic", "v": 4}, {"mode": "static", "v": 4}]
    assert avoid_failing(unseen, trials) == [{"mode": "static", "v": 4}]
    assert avoid_failing(unseen[:1], trials) == unseen[:1]  # exhaustive in the end


def test_repeats_of_one_candidate_count_once_and_kills_or_missing_outcomes_not_at_all() -> None:
    # TPE repeating one failing candidate says nothing of the other candidates with its values.
    assert failing_values([trial("dynamic", 0, True)] * MIN_TRIALS) == set()
    killed = create_trial(state=TrialState.FAIL, params={"mode": "static", "v": 3}, distributions=DIST,
                          user_attrs={OUTCOME_ATTR: {"failure_kind": "killed"}})
    no_outcome = create_trial(state=TrialState.FAIL, params={"mode": "static", "v": 4}, distributions=DIST)
    failed = [trial("static", v, True) for v in range(MIN_TRIALS - 1)]
    # A kill (from outside) is not a failure of the candidate, nor a success: still too few to tell.
    assert failing_values([*failed, killed]) == set()
    assert failing_values([*failed, no_outcome]) == set()
    assert failing_values([*failed, trial("static", 4, True)]) == {("mode", '"static"')}
    # A candidate that ran once is not failing, though another of its trials failed.
    flaky = [trial("dynamic", v, True) for v in range(MIN_TRIALS)] + [trial("dynamic", 0, False)]
    assert ("mode", '"dynamic"') not in failing_values(flaky)


SHARED: dict[str, BaseDistribution] = {"backend": CategoricalDistribution(("eager", "torchscript")),
                                       "torch/cuda_graph": CategoricalDistribution((False, True)),
                                       "torchscript/freeze": CategoricalDistribution((False, True)),
                                       "torchscript/fuser": CategoricalDistribution(("none", "fuser1"))}


def graphed(backend: str, failed: bool, freeze: bool = False, fuser: str = "none", graph: bool = True) -> FrozenTrial:
    params: dict[str, object] = {"backend": backend, "torch/cuda_graph": graph}
    if backend == "torchscript":
        params.update({"torchscript/freeze": freeze, "torchscript/fuser": fuser})
    return create_trial(state=TrialState.PRUNED if failed else TrialState.COMPLETE, value=None if failed else 1.0,
                        params=params, distributions={k: SHARED[k] for k in params},
                        user_attrs={OUTCOME_ATTR: {"failure_kind": "run" if failed else None}})


def test_a_value_that_backends_share_fails_per_backend() -> None:
    # Eager captures in CUDA graphs, TorchScript traces of the model never do (GPT-2 on an H100).
    trials = [graphed("eager", False), graphed("torchscript", True, False, "none"),
              graphed("torchscript", True, True, "none"), graphed("torchscript", True, False, "fuser1"),
              graphed("torchscript", False, graph=False)]
    assert failing_values(trials) == {("torchscript:torch/cuda_graph", "true")}
    kept = avoid_failing([{"backend": "torchscript", "torch/cuda_graph": True, "torchscript/freeze": True,
                           "torchscript/fuser": "fuser1"},
                          {"backend": "torchscript", "torch/cuda_graph": False, "torchscript/freeze": True,
                           "torchscript/fuser": "fuser1"},
                          {"backend": "eager", "torch/cuda_graph": True}], trials)
    assert [p["backend"] for p in kept] == ["torchscript", "eager"] and kept[0]["torch/cuda_graph"] is False
