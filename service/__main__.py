"""`python -m service` is `aftercare`."""

import sys

from service.cli import main

sys.exit(main())
