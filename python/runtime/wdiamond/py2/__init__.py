"""The Python 2 bridge: Diamond's collectors, written for Python 2, run as
they are. :mod:`.translate` turns the script's source into Python 3 code
with Python 2's meaning, :mod:`.names` gives it Python 2's builtins, and
:mod:`.modules` registers Python 2's module names over their Python 3
homes (``urllib2``, ``httplib``, ``StringIO``…), each routed through the
same sandbox as everything else: the bridge adds no way out.
"""

from . import modules, names, translate  # noqa: F401


def prepare(module):
    """Makes ``module`` (the script's, before it runs) a Python 2 one: its
    builtins, Python 2's modules importable, text on sockets and pipes."""
    names.install(module.__dict__)
    modules.install()
