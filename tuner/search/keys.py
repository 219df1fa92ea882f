"""The names under which a study keeps what the tuner knows, stated once.

A trial's user attributes hold its candidate, its outcome and how it was admitted; the study's
hold the workload it belongs to and its search space. Studies written by earlier versions use the
same names, so they still load.
"""

from __future__ import annotations

from optuna.trial import TrialState

from tuner.core import defaults

#: Trial states after which a trial holds its final attributes.
FINISHED = (TrialState.COMPLETE, TrialState.FAIL, TrialState.PRUNED)

# -- trial user attributes -------------------------------------------------------------------

#: The process running the trial: ``{"host", "pid", "started"}`` (:mod:`tuner.search.storage`).
WORKER_ATTR = "worker"
#: The candidate's key (``Candidate.key()``): the result cache's key.
KEY_ATTR = "candidate_key"
#: The candidate, as ``Candidate.to_dict()``.
CANDIDATE_ATTR = "candidate"
#: The outcome, as ``Outcome.to_dict()``: the cache, the report and the resume path read it back.
OUTCOME_ATTR = "outcome"
#: Whether the outcome came from the cache instead of a measurement.
CACHED_ATTR = "cached"
#: Why the candidate failed (copies of the outcome's fields, for browsing a study).
FAILURE_KIND_ATTR = "failure_kind"
FAILURE_REASON_ATTR = "failure_reason"
#: An admitted trial's verdict (:class:`tuner.search.claims.Admission`).
CLAIM_ATTR = "claim"
#: A trial that found the budget already taken (it ran nothing).
SURPLUS_ATTR = "surplus"
#: The trial whose measurement of the same candidate this one waited for.
WAITED_FOR_ATTR = "waited_for"
#: Why a trial ran nothing: the sampler put it where every candidate so far failed.
AVOIDED_ATTR = "avoided"
#: Why a trial was queued rather than sampled (a backend's default, an unseen candidate).
ENQUEUED_ATTR = "enqueued"

# -- study user and system attributes --------------------------------------------------------

#: The search space (``SpaceContext.to_dict()``); written last, it marks the study as set up.
SPACE_ATTR = "space"
#: The workload's fingerprint: one study holds one workload.
FINGERPRINT_ATTR = "fingerprint"
#: Where the workload came from, and its name (for messages).
SOURCE_ATTR = "workload_source"
NAME_ATTR = "workload_name"
#: Backends left out of the space because they cannot take the model: ``{backend: why}``.
REFUSED_ATTR = "refused_backends"
#: How many distinct candidates the space holds.
SPACE_SIZE_ATTR = "space_size"
#: The accuracy rule the study's trials were judged by (``AccuracyRule.spec``).
ACCURACY_ATTR = "accuracy"
#: The rule of a study created before the rule was kept: o2's was elementwise then (o1's is unchanged).
LEGACY_ACCURACY: dict[str, str] = {**defaults.ACCURACY, "o2": "elementwise:0.05,0.05"}
#: Eager's objective, measured when the study started.
BASELINE_ATTR = "baseline_s"
#: The number of the trial whose candidate ``tune`` last emitted (the winner of its finalists),
#: which need not be the trial with the best objective.
EMITTED_ATTR = "emitted_trial"
#: Study system attribute: the process setting a new study up (the others wait for it).
SETUP_CLAIM_ATTR = "tuner:setup_claim"
