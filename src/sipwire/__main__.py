import sys

from sipwire.cli import main

sys.exit(main())
