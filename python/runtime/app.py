"""The Python runtime component: the ``collector`` export of the contract,
driving the collector script the agent hands over (``config.get`` of the
reserved key ``wdiamond:script``; its file name in ``wdiamond:script-name``).

The interpreter is pre-initialised when the component is built: every
module a script may import must be imported here, since the standard
library is not on any filesystem at run time (``PRELOADED``).
"""

# The standard library a collector script may import (pre-initialised).
PRELOADED = (
    'abc argparse array ast base64 binascii bisect calendar codecs collections '
    'collections.abc configparser contextlib copy csv dataclasses datetime decimal '
    'difflib encodings.ascii encodings.idna encodings.latin_1 enum errno fnmatch fractions '
    'functools glob gzip hashlib heapq hmac '
    'html html.parser http http.client io ipaddress itertools json keyword locale '
    'logging logging.handlers math numbers operator os os.path pathlib platform '
    'pickle posixpath pprint queue random re shlex shutil signal string struct stat statistics '
    'textwrap threading time timeit traceback types typing unicodedata urllib '
    'urllib.error urllib.parse urllib.request uuid warnings weakref xml xml.etree.ElementTree '
    'xml.dom.minidom xmlrpc xmlrpc.client zlib'
).split()

import importlib
import sys

MISSING = []
for _name in PRELOADED:
    try:
        importlib.import_module(_name)
    except Exception as _e:  # not in this build of CPython
        MISSING.append(_name)

from componentize_py_types import Err  # noqa: E402
from wit_world import exports  # noqa: E402
from wit_world.imports import config as host_config, host_info, types  # noqa: E402

from wdiamond import host as _host, importer, loader, metricset, sandbox  # noqa: E402
import wdiamond.collector  # noqa: E402,F401
import wdiamond.convertor  # noqa: E402,F401
import diamond.collector  # noqa: E402,F401
import diamond.convertor  # noqa: E402,F401
import diamond.error  # noqa: E402,F401
import diamond.metric  # noqa: E402,F401

HOST = _host.Host()
sandbox.install(HOST)
# Modules that bound `socket`/`subprocess` before the sandbox replaced them
# (http.client, urllib.request, xmlrpc.client…) get the sandbox's: their
# connections and commands then go to the host's grants like the script's
# own. (A reload cannot do it: there is no filesystem to read them from.)
_SHIMS = {_n: sys.modules[_n] for _n in ('socket', 'subprocess')}
for _module in list(sys.modules.values()):
    if getattr(_module, '__name__', '').startswith('wdiamond'):
        continue
    for _n, _shim in _SHIMS.items():
        _old = getattr(_module, _n, None)
        if _old is not _shim and getattr(_old, '__name__', None) == _n and \
                type(_old) is type(sys):
            setattr(_module, _n, _shim)

# What `describe` returns when the script cannot be loaded: the agent shows
# the summary after this marker as the configuration error.
ERROR_MARK = 'wdiamond-python: '

_CAPABILITY = {
    'read-files': types.Capability_ReadFiles,
    'filesystem-stats': types.Capability_FilesystemStats,
    'run-command': types.Capability_RunCommand,
    'connect': types.Capability_Connect,
    'write-directory': types.Capability_WriteDirectory,
}
_VALUE = {
    'text': types.ConfigValue_Text,
    'integer': types.ConfigValue_Integer,
    'float': types.ConfigValue_Float,
    'boolean': types.ConfigValue_Boolean,
    'text-list': types.ConfigValue_TextList,
}


class _State(object):
    loaded = False
    cls = None
    error = None
    filename = '<script>'
    collector = None


STATE = _State()


def _text(key):
    v = host_config.get(key)
    return v.value if isinstance(v, types.ConfigValue_Text) else None


def _load():
    """Loads the script once per instance; remembers why it failed."""
    if STATE.loaded:
        return
    STATE.loaded = True
    loader.route_logging(HOST)
    dirs = host_config.get('wdiamond:directories')
    HOST.directories = list(dirs.value) if isinstance(dirs, types.ConfigValue_TextList) else []
    sandbox.set_directories(HOST.directories)
    path = host_config.get('wdiamond:python-path')
    importer.install(list(path.value) if isinstance(path, types.ConfigValue_TextList) else [])
    source = _text('wdiamond:script')
    STATE.filename = _text('wdiamond:script-name') or '<script>'
    if source is None:
        STATE.error = ('this is the Python runtime: a collector names its script with '
                       '`component = "FILE.py"`')
        return
    try:
        STATE.cls = loader.load(source, STATE.filename)
    except loader.ScriptError as e:
        STATE.error = str(e)


class Collector(exports.Collector):
    def describe(self):
        _load()
        if STATE.error is None:
            try:
                name, version, summary, options, asks = loader.describe(STATE.cls, STATE.filename)
                return types.Description(
                    name=name, version=version, summary=summary,
                    options=[types.ConfigOption(key=k, default=_VALUE[t](v), help=h)
                             for k, (t, v), h in options],
                    capabilities=[_CAPABILITY[k](v) for k, v in asks])
            except MemoryError:
                raise
            except loader.ScriptError as e:
                STATE.error = str(e)
            except BaseException as e:
                STATE.error = '%s: describing the collector failed: %s' % (
                    STATE.filename, loader.error_text(e, STATE.filename))
        return types.Description(name='', version='', summary=ERROR_MARK + STATE.error,
                                 options=[], capabilities=[])

    def configure(self, config):
        _load()
        if STATE.error is not None:
            raise Err(STATE.error)
        merged = {e.key: e.value.value for e in config}
        try:
            STATE.collector = loader.configure(STATE.cls, merged)
            STATE.collector.max_metrics = host_info.get_limits().max_metrics
        except MemoryError:
            raise
        except BaseException as e:
            raise Err('%s: the collector rejected its configuration: %s'
                      % (STATE.filename, loader.error_text(e, STATE.filename)))

    def collect(self):
        if STATE.collector is None:
            raise Err(STATE.error or 'collect before configure')
        try:
            published = loader.run(STATE.collector)
            return types.MetricSet(**metricset.encode(published))
        except MemoryError:
            raise
        except BaseException as e:
            raise Err(loader.error_text(e, STATE.filename))

