"""Greengrass entrypoint of com.plantwatch.Gateway: everything lives in the plantwatch package."""

import logging
import sys

from plantwatch.edge.greengrass import main

logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stdout)
sys.exit(main())
