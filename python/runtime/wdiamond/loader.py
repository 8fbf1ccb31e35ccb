"""Loads a collector script and drives its collector, without touching the
host (pure; the component's ``app`` wraps it in the contract's types).

- :func:`load` executes the script's source as a module and finds its one
  collector class (a subclass of ``Collector`` defined in the script).
- :func:`describe` gives the contract's description as plain values: the
  default path, the script's options (Diamond's host keys left out: the
  agent owns them), their help, and what it asks to be granted.
- :func:`run` makes one collection and returns the published metrics.
- :func:`error_text` turns an exception into one line that names the
  script's file and line.
"""

import json
import linecache
import logging
import os
import re
import sys
import time
import traceback
import types

from . import py2
from .collector import HOST_KEYS, Collector, ProcessCollector

# Longest error text handed to the host.
MAX_ERROR = 2000

# Capabilities a script may ask for in `WDIAMOND_CAPABILITIES`.
CAPABILITIES = ('read-files', 'filesystem-stats', 'run-command', 'connect', 'write-directory')


class ScriptError(Exception):
    """The script cannot be used; the text says why, with its file and line."""

    # Whether executing it as Python 2 may succeed where Python 3 failed.
    retry = False


def error_text(exc, filename=None):
    """``Type: message (at FILE:LINE in FUNCTION)``, cut to ``MAX_ERROR``."""
    where = ''
    if isinstance(exc, SyntaxError) and exc.lineno:
        where = ' (at %s:%d)' % (exc.filename or filename, exc.lineno)
        text = '%s: %s' % (type(exc).__name__, exc.msg)
    else:
        text = '%s: %s' % (type(exc).__name__, exc) if str(exc) else type(exc).__name__
        frames = traceback.StackSummary.extract(traceback.walk_tb(exc.__traceback__),
                                                lookup_lines=False)
        mine = [f for f in frames if filename is None or f.filename == filename]
        if mine:
            f = mine[-1]
            where = ' (at %s:%d in %s)' % (f.filename, f.lineno, f.name)
    text = text + where
    if len(text) > MAX_ERROR:
        text = text[:MAX_ERROR - 3] + '...'
    return text


def load(source, filename):
    """The collector class of a script (its source text). Python 2 code
    (:func:`py2.translate.is_python2`) runs through the bridge; a script
    taken for Python 3 that fails while it is executed (a regex only Python
    2 accepted, a Python 2 name) is given a second try as Python 2, unless a
    ``# wdiamond: python3`` comment says otherwise."""
    python2, tree = py2.translate.detect(source)
    py2.modules.install_missing()
    # Its lines for tracebacks, without reading the file again (mtime None:
    # never checked against the disk).
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    try:
        module = _execute(source, filename, python2, tree)
    except ScriptError as first:
        if python2 or not first.retry or py2.translate.marked(source):
            raise
        try:
            module = _execute(source, filename, True, None)
        except ScriptError:
            raise first
    return _collector_of(module, filename)


def _execute(source, filename, python2, tree):
    """The script's module, executed (as Python 2 when ``python2``; else
    from ``tree``, its Python 3 syntax tree, when detection made one)."""
    module = types.ModuleType('wdiamond_script')
    module.__file__ = filename
    try:
        if python2:
            code = py2.translate.translate(source, filename)
        else:
            code = compile(tree if tree is not None else source, filename, 'exec')
    except SyntaxError as e:
        raise ScriptError(error_text(e, filename))
    if python2:
        py2.prepare(module)
    sys.modules['wdiamond_script'] = module
    try:
        exec(code, module.__dict__)
    except ScriptError:
        raise
    except BaseException as e:
        if isinstance(e, MemoryError):
            raise
        error = ScriptError('%s: running the script failed: %s' % (filename, error_text(e, filename)))
        # Worth a try as Python 2: not a stop, a cap, or a missing module.
        error.retry = isinstance(e, Exception) and not isinstance(e, ImportError)
        raise error
    return module


def _collector_of(module, filename):
    """The one collector class the script defines."""
    found = [v for v in module.__dict__.values()
             if isinstance(v, type) and issubclass(v, Collector)
             and v not in (Collector, ProcessCollector)
             and v.__module__ == 'wdiamond_script']
    # A base class the script defines for its collectors is not a collector.
    leaves = [c for c in found if not any(o is not c and issubclass(o, c) for o in found)]
    if not leaves:
        raise ScriptError('%s defines no collector: a class that subclasses '
                          'diamond.collector.Collector (or wdiamond.collector.Collector)'
                          % filename)
    if len(leaves) > 1:
        raise ScriptError('%s defines %d collector classes (%s): keep one per script'
                          % (filename, len(leaves), ', '.join(sorted(c.__name__ for c in leaves))))
    return leaves[0]


def _value(v):
    """An option default as (type, value): the contract's config-value."""
    if isinstance(v, bool):
        return 'boolean', v
    if isinstance(v, int):
        return 'integer', v
    if isinstance(v, float):
        return 'float', v
    if isinstance(v, (list, tuple)):
        return 'text-list', [str(x) for x in v]
    if isinstance(v, dict):
        # Diamond's configobj sub-section: a TOML table, given as JSON.
        return 'text', json.dumps(v, default=str)
    if v is None:
        return 'text', ''
    return 'text', str(v)


# What the agent takes as a collector's metric path (Diamond's `path`).
_METRIC_PATH = re.compile(r'\.|[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*\Z')


def _not_a_metric_path(default):
    """A script's default ``path`` that is not a metric path: Diamond's
    cpuacct_cgroup uses the key for the directory it walks (and Diamond
    published under it, slashes and all)."""
    return isinstance(default, str) and bool(default) and not _METRIC_PATH.match(default)


def describe(cls, filename):
    """(name, version, summary, options, capabilities) of a collector
    class; options are (key, (type, default), help)."""
    instance = cls()
    defaults = instance.get_default_config() or {}
    help = instance.get_default_config_help() or {}
    name = str(defaults.get('path') or cls.__name__)
    if _not_a_metric_path(defaults.get('path')):
        # Published under the script's file name; `path` keeps its default
        # for the script (see configure).
        name = os.path.splitext(os.path.basename(filename))[0]
    module = sys.modules.get('wdiamond_script')
    version = str(getattr(cls, 'VERSION', None) or getattr(module, '__version__', None) or '0')
    doc = (cls.__doc__ or (module.__doc__ if module else None) or '').strip()
    paragraph = doc.split('\n\n')[0] if doc else ''
    summary = ' '.join(paragraph.split()) or '%s (%s)' % (cls.__name__, filename)
    if len(summary) > 400:
        summary = summary[:397] + '...'
    # `byte_unit` is the host's key, but a script's own default beats the
    # host's generic one (network's ['bit', 'byte']), as in Diamond.
    base_unit = Collector.get_default_config(instance).get('byte_unit')
    options = [(str(k), _value(v), str(help.get(k, '')))
               for k, v in defaults.items()
               if k not in HOST_KEYS or (k == 'byte_unit' and v != base_unit)]
    asks = []
    for item in getattr(cls, 'WDIAMOND_CAPABILITIES', None) or ():
        kind, value = item
        if kind not in CAPABILITIES:
            raise ScriptError('%s: WDIAMOND_CAPABILITIES: unknown capability %r (known: %s)'
                              % (filename, kind, ', '.join(CAPABILITIES)))
        asks.append((kind, str(value)))
    return name, version, summary, options, asks


def _defaults(cls):
    """The class's default configuration, without running its ``__init__``
    (and ``process_config``) a second time; a ``get_default_config`` that
    needs them gets them."""
    try:
        return cls.__new__(cls).get_default_config() or {}
    except Exception:
        return cls().get_default_config() or {}


def configure(cls, config):
    """A collector instance with ``config`` (dict of the merged keys). An
    option the script defaults to ``None`` stays ``None`` unless the
    operator gave it a value (the host's text for it is empty): scripts test
    ``is None`` (Diamond's cpu ``xenfix``)."""
    defaults = _defaults(cls)
    config = dict(config)
    if _not_a_metric_path(defaults.get('path')):
        config['path'] = defaults['path']
    for k, v in defaults.items():
        if v is None and config.get(k) == '':
            config[k] = None
        elif isinstance(v, dict) and isinstance(config.get(k), str):
            # A sub-section (a TOML table) arrives as JSON text.
            try:
                value = json.loads(config[k]) if config[k].strip() else {}
            except ValueError as e:
                raise ValueError('`%s` is a table of options (in TOML: [collectors.NAME.%s.'
                                 'ITEM]): %s' % (k, k, e))
            if not isinstance(value, dict):
                raise ValueError('`%s` is a table of options, not %r' % (k, value))
            config[k] = value
    return cls(config=config)


def run(collector):
    """One collection; the published metrics. Adds Diamond's
    ``collector_time_ms`` when ``measure_collector_time`` is set."""
    collector.published = []
    start = time.time()
    collector.collect()
    if collector.config.get('measure_collector_time'):
        collector.publish('collector_time_ms', int((time.time() - start) * 1000))
    published, collector.published = collector.published, []
    return published


class HostLogHandler(logging.Handler):
    """Sends ``self.log`` records to the host's log (which caps them)."""

    LEVELS = ((logging.ERROR, 'error'), (logging.WARNING, 'warn'), (logging.INFO, 'info'))

    def __init__(self, host):
        logging.Handler.__init__(self, logging.DEBUG)
        self.host = host

    def emit(self, record):
        level = 'debug'
        for threshold, name in self.LEVELS:
            if record.levelno >= threshold:
                level = name
                break
        try:
            message = record.getMessage()
        except Exception as e:
            message = '%r %r (%s)' % (record.msg, record.args, e)
        if record.exc_info and record.exc_info[1] is not None:
            message = message + ': ' + error_text(record.exc_info[1])
        self.host.log(level, message[:MAX_ERROR])


def route_logging(host):
    """Every logger's records go to the host's log."""
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    root.addHandler(HostLogHandler(host))
    root.setLevel(logging.DEBUG)
    logging.getLogger('diamond').setLevel(logging.DEBUG)
