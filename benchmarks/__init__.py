"""Side-by-side benchmarks of cellrobust against the tools users would pick instead.

Run from the repository root: ``python -m benchmarks setup`` (peer environments) and
``python -m benchmarks run [SUITE...] [--smoke]``. This package lives outside ``cellrobust``
and imports only the standard library at import time, so peer environments (which do not
have cellrobust installed) can run its worker code.
"""

SUITES = ("unet", "convergence", "inference", "metrics", "artefacts", "baselines", "study")
