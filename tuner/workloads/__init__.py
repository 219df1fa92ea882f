"""Loading what the user gives: models (factories, TorchScript, ``.pt2``, TF graphs), test data, the demo.

Imports :mod:`tuner.core` and :mod:`tuner.runtime` (the reference outputs run the model).
"""

from tuner.workloads.loading import DEMO_FACTORY, load_model, load_workload, make_workload
from tuner.workloads.samples import as_samples, load_test_data

__all__ = ["DEMO_FACTORY", "as_samples", "load_model", "load_test_data", "load_workload", "make_workload"]
