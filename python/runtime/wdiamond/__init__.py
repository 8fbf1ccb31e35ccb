"""wdiamond's Python collector runtime: Diamond's collector API on the
wdiamond plugin contract.

A collector script subclasses :class:`wdiamond.collector.Collector` (or
``diamond.collector.Collector``: the ``diamond`` package is the same code
under Diamond's own name), and runs inside the agent's sandboxed CPython
component. Its reads of the host (``open``, ``os.listdir``, ``os.statvfs``,
``subprocess``, ``socket``) go through the host's granted imports.

Layout:
    collector.py  the Collector base class, ``str_to_bool`` (pure)
    convertor.py  Diamond's binary unit convertor (pure)
    metricset.py  published metrics -> the contract's columns (pure)
    sandbox.py    routes Python's file, process and socket calls to a host
    loader.py     loads a collector script and finds its class
"""
