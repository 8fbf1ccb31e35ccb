"""``diamond.collector``: see ``wdiamond.collector``."""
from wdiamond.collector import (  # noqa: F401
    MAX_COUNTER, Collector, ProcessCollector, get_hostname, str_to_bool)
