import sys

from spanledger.cli.main import main

sys.exit(main())
