import sys

from gomaml.cli import main

sys.exit(main())
