"""``python -m tda_ray.cli``."""

import sys

from tda_ray.cli import main

sys.exit(main())
