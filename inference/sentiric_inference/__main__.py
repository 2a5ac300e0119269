"""`python -m sentiric_inference` is `sentiric-llm`."""

import sys

from sentiric_inference.cli import main

sys.exit(main())
