import sys

from pg2_pipeline.cli import main

sys.exit(main())
