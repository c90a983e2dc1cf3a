import sys

from biotwin.tools.cli import main

sys.exit(main())
