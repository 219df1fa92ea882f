"""MLflow: a study's parent run and one child run per trial, and the check of a tracking URI.

Imports only :mod:`tuner.core` (it logs records; the study reaches it as an object).
"""

from tuner.tracking.tracker import Tracker
from tuner.tracking.uri import check_tracking_uri

__all__ = ["Tracker", "check_tracking_uri"]
