"""``diamond.collector``: see ``wdiamond.collector``."""
from wdiamond.collector import Collector, ProcessCollector, str_to_bool  # noqa: F401
