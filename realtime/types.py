"""Old path of the shared records, kept for users' code: they live in
`realtime.common.types` (the bottom layer). Nothing inside the project imports this
module (tests/test_layers.py)."""

from realtime.common.types import (
                                   DEFAULT_LANDMARK_FILTER,
                                   EXPR_TYPES,
                                   AlignedFace,
                                   ExprType,
                                   FlowSettings,
                                   FrameRecord,
                                   FrameScore,
                                   Interval,
                                   LandmarkFilter,
                                   ScoreSample,
                                   SpotEvent,
                                   StreamStatus,
                                   check_type,
)

__all__ = ["DEFAULT_LANDMARK_FILTER", "EXPR_TYPES", "AlignedFace", "ExprType", "FlowSettings", "FrameRecord", "FrameScore",
           "Interval",
           "LandmarkFilter", "ScoreSample", "SpotEvent", "StreamStatus", "check_type"]
