"""`python -m emotion_perception` runs the command-line interface."""

import sys

from emotion_perception.cli import main

sys.exit(main())
