import sys

from advfit.data.prepare import main

sys.exit(main())
