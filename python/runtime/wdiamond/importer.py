"""Imports of ``.py`` modules and packages from the script's python path:
its own directory (a sibling script: Diamond's ``cephstats`` imports
``ceph``), then its section's ``python_path`` (a ``site-packages``, an
unpacked wheel). Every file is read with ``open``, so through the host's
grants (the agent grants ``DIR/**/*.py`` of each directory, nothing else)
and its read caps; a module in Python 2 goes through the bridge like the
script. A compiled extension (``.so``) is refused with an ImportError that
names it: only pure Python runs in the sandbox.
"""

import importlib.abc
import importlib.util
import os
import sys

from . import py2

# Largest module source read, bytes (the host caps every read too).
MAX_SOURCE = 4 << 20
_EXTENSIONS = ('.so', '.pyd')


class SourceFinder(importlib.abc.MetaPathFinder):
    """Finds ``NAME.py`` or ``NAME/__init__.py`` in the python path (for a
    submodule, in its package's directory)."""

    def __init__(self, dirs):
        self.dirs = [d for d in dirs if d]

    def find_spec(self, fullname, path=None, target=None):
        name = fullname.rpartition('.')[2]
        for d in (list(path) if path else self.dirs):
            for candidate, package in ((os.path.join(d, name, '__init__.py'), True),
                                       (os.path.join(d, name + '.py'), False)):
                source = _read(candidate)
                if source is None:
                    continue
                # The script's own directory holds scripts like it; the
                # others, libraries that may be written for both Pythons.
                own = bool(self.dirs) and d == self.dirs[0] and not path
                loader = SourceLoader(candidate, source, syntax_only=not own)
                spec = importlib.util.spec_from_loader(fullname, loader, origin=candidate,
                                                       is_package=package)
                if package:
                    spec.submodule_search_locations = [os.path.dirname(candidate)]
                spec.has_location = True
                return spec
            compiled = _extension(d, name)
            if compiled:
                raise ImportError('%s is a compiled extension (%s): the sandbox runs only '
                                  'pure-Python modules' % (fullname, compiled), name=fullname)
        return None


class SourceLoader(importlib.abc.Loader):
    """Executes a module's source, through the bridge when it is Python 2."""

    def __init__(self, filename, source, syntax_only=False):
        self.filename = filename
        self.source = source
        self.syntax_only = syntax_only

    def create_module(self, spec):
        return None

    def exec_module(self, module):
        module.__file__ = self.filename
        python2, tree = py2.translate.detect(self.source, self.syntax_only)
        if python2:
            code = py2.translate.translate(self.source, self.filename)
            py2.prepare(module)
        else:
            code = compile(tree if tree is not None else self.source, self.filename, 'exec')
        exec(code, module.__dict__)


def _read(path):
    """A module's source, or None when there is none (or it may not be
    read: the denial is the host's, counted and logged)."""
    try:
        with open(path, 'rb') as f:
            data = f.read(MAX_SOURCE + 1)
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError, PermissionError):
        return None
    except OSError:
        return None
    if len(data) > MAX_SOURCE:
        raise ImportError('%s is larger than %d bytes' % (path, MAX_SOURCE))
    return data.decode('utf-8', 'replace')


def _extension(directory, name):
    """The file name of a compiled extension ``name`` in ``directory``."""
    try:
        entries = os.listdir(directory)
    except OSError:
        return None
    for entry in entries:
        if entry.startswith(name + '.') and entry.endswith(_EXTENSIONS):
            return entry
    return None


def install(dirs):
    """Imports look in ``dirs`` after the built-in and pre-imported
    modules."""
    for f in sys.meta_path:
        if isinstance(f, SourceFinder):
            f.dirs = [d for d in dirs if d]
            return
    sys.meta_path.append(SourceFinder(dirs))
