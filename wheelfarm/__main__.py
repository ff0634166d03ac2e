import sys

from wheelfarm.cli import main

sys.exit(main())
