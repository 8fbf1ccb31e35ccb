"""Who is calling: Python 2 code (run through the bridge) or not. A socket
a Python 2 module opens speaks text, and a command it runs gives text, as
Python 2's ``str`` was both; the same calls from Python 3 code (a library
on the python path, ``http.client`` under ``urllib2``) keep bytes."""

import sys

# A name every Python 2 module's globals has (``py2.names``).
MARK = 'wdiamond_py2_div'


def python2(skip=('wdiamond.',)):
    """Whether the nearest caller outside the modules whose names start
    with one of ``skip`` is Python 2 code."""
    frame = sys._getframe(1)
    while frame is not None:
        name = frame.f_globals.get('__name__') or ''
        if not name.startswith(skip):
            return MARK in frame.f_globals
        frame = frame.f_back
    return False
