"""The bundled demo weights (engines/weights/demo_*.safetensors), the default of
`--weights`. Light on purpose: `lgnm-live --help` reads it without loading torch."""

from __future__ import annotations

import math
from importlib import resources
from pathlib import Path

from realtime.common.types import EXPR_TYPES

# The bundled demo pairs by the frame rate they were trained at (CAS-like, SAMM-like).
DEMO_PREFIXES = {30.0: "demo_", 200.0: "demo200_"}


def default_weights(fps: float | None = None) -> list[Path]:
    """The bundled demo pair trained nearest to `fps` on a log scale (a 60 fps camera
    gets the 30 fps pair, a 100 fps one the 200 fps pair); the 30 fps pair when the rate
    is unknown."""
    folder = resources.files("engines") / "weights"
    trained = 30.0 if not fps or fps <= 0 else min(DEMO_PREFIXES, key=lambda f: abs(math.log(fps / f)))
    return [Path(str(folder / f"{DEMO_PREFIXES[trained]}{t}.safetensors")) for t in EXPR_TYPES]
