import sys

from biotwin.cli import main

sys.exit(main())
