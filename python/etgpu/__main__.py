"""`python -m etgpu ...` is the `etgpu` command."""

import sys

from etgpu.cli import main

sys.exit(main())
