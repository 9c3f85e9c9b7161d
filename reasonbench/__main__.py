import sys

from reasonbench.cli.main import main

sys.exit(main())
