"""Recommendations: implicit ALS on play counts, licence-masked candidates, live feedback, eval.

Only this package knows how listener and track ids map to matrix rows and columns.
"""

from dj.recommend.base import BaseRecommender
from dj.recommend.evaluate import run_eval, run_recommend
from dj.recommend.feedback import FEEDBACK_KINDS
from dj.recommend.interactions import InteractionsError, read_interactions
from dj.recommend.live import LiveRecommender, load_model
from dj.recommend.model import StationModel
from dj.recommend.params import tuned_config
from dj.recommend.popularity import PopularityModel
from dj.recommend.threads import pin_blas_threads

__all__ = [
    "FEEDBACK_KINDS", "BaseRecommender", "InteractionsError", "LiveRecommender", "PopularityModel",
    "StationModel", "load_model", "pin_blas_threads", "read_interactions", "run_eval",
    "run_recommend", "tuned_config",
]
