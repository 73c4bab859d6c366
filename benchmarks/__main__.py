"""`python -m benchmarks [--quick]`: see `benchmarks.harness`."""

import sys

from benchmarks.harness import main

sys.exit(main())
