"""Python 2's module names over their Python 3 homes, registered in
``sys.modules`` for a Python 2 script: thin modules, every call going to
the same (sandboxed) ``socket``, ``subprocess`` and ``open`` as any
script's. What Python 2 returned as ``str`` (a response body, a socket's
data, a command's output) is text here.
"""

import builtins
import configparser
import functools
import html.parser
import http.client
import io
import itertools
import json
import os
import queue
import re
import string
import sys
import types
import urllib
import urllib.error
import urllib.parse
import urllib.request
import xml.etree.ElementTree

_installed = False


def _text(data):
    if isinstance(data, bytes):
        return data.decode('utf-8', 'surrogateescape')
    return data


def _bytes(data):
    if isinstance(data, str):
        return data.encode('utf-8', 'surrogateescape')
    return data


class TextResponse(object):
    """An HTTP response whose body reads as text (Python 2's ``str``)."""

    def __init__(self, response):
        self._response = response

    def read(self, *args):
        return _text(self._response.read(*args))

    def readline(self, *args):
        return _text(self._response.readline(*args))

    def readlines(self, *args):
        return [_text(line) for line in self._response.readlines(*args)]

    def __iter__(self):
        for line in self._response:
            yield _text(line)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __getattr__(self, name):
        return getattr(self._response, name)


class Request(urllib.request.Request):
    """``urllib2.Request``: a text body is sent as UTF-8."""

    def __init__(self, url, data=None, headers={}, *args, **kwargs):
        urllib.request.Request.__init__(self, url, _bytes(data), headers, *args, **kwargs)

    def add_data(self, data):
        self.data = _bytes(data)

    def has_data(self):
        return self.data is not None

    def get_data(self):
        return self.data


def urlopen(url, data=None, *args, **kwargs):
    """``urllib2.urlopen``: the response body as text."""
    return TextResponse(urllib.request.urlopen(url, _bytes(data), *args, **kwargs))


class _Opener(object):
    def __init__(self, opener):
        self._opener = opener

    def open(self, url, data=None, *args, **kwargs):
        return TextResponse(self._opener.open(url, _bytes(data), *args, **kwargs))

    def __getattr__(self, name):
        return getattr(self._opener, name)


def build_opener(*handlers):
    return _Opener(urllib.request.build_opener(*handlers))


def install_opener(opener):
    urllib.request.install_opener(getattr(opener, '_opener', opener))


class HTTPConnection(http.client.HTTPConnection):
    def getresponse(self):
        return TextResponse(http.client.HTTPConnection.getresponse(self))


if hasattr(http.client, 'HTTPSConnection'):  # not in this build: no ssl
    class HTTPSConnection(http.client.HTTPSConnection):
        def getresponse(self):
            return TextResponse(http.client.HTTPSConnection.getresponse(self))


def _module(name, doc, values):
    m = types.ModuleType(name, doc)
    for k, v in values.items():
        setattr(m, k, v)
    return m


def _public(module):
    return {k: getattr(module, k) for k in dir(module) if not k.startswith('__')}


def _string_io(buf=''):
    return io.StringIO(_text(buf))


def _getstatusoutput(cmd):
    import subprocess
    code, out = subprocess.getstatusoutput(cmd)
    # Python 2's status is the wait status: the exit code in the high byte.
    return (code << 8) if code >= 0 else -code, out


class LooseVersion(object):
    """``distutils.version.LooseVersion``: numbers compared as numbers."""

    def __init__(self, text=None):
        self.vstring = text
        self.version = [int(p) if p.isdigit() else p
                        for p in __import__('re').split(r'(\d+|[a-z]+|\.)', text or '')
                        if p and p != '.']

    def _key(self, other):
        if isinstance(other, str):
            other = LooseVersion(other)
        return other.version

    def __eq__(self, other):
        return self.version == self._key(other)

    def __lt__(self, other):
        return self.version < self._key(other)

    def __le__(self, other):
        return self.version <= self._key(other)

    def __gt__(self, other):
        return self.version > self._key(other)

    def __ge__(self, other):
        return self.version >= self._key(other)

    def __str__(self):
        return self.vstring or ''


def _getuser():
    return os.environ.get('USER') or os.environ.get('LOGNAME') or 'wdiamond'


def _getpass(prompt='Password: ', stream=None):
    raise EOFError('no terminal in the sandbox: give the password in the configuration')


def _lenient(function):
    """A ``re`` function that, as Python 2 did, takes an unknown escape
    (``\\M``) as the letter itself."""
    def call(pattern, *args, **kwargs):
        try:
            return function(pattern, *args, **kwargs)
        except re.error as e:
            if not isinstance(pattern, str) or 'bad escape' not in str(e):
                raise
            plain = re.sub(r'\\([A-Za-z])', _unescape, pattern)
            return function(plain, *args, **kwargs)
    call.__name__ = function.__name__
    return call


def _unescape(m):
    letter = m.group(1)
    # The escapes Python 3 knows stay; the others become the letter.
    return m.group(0) if letter in 'AbBdDsSwWZafnrtvxuUN0123456789gP' else letter


def _base64_text(function, bytes_in=True):
    """A ``base64`` function as Python 2 code calls it: text in, text out
    (Python 3 callers keep bytes: they are told apart by the caller)."""
    from .. import callers

    @functools.wraps(function)
    def call(data, *args, **kwargs):
        python2 = callers.python2()
        if python2 and bytes_in and isinstance(data, str):
            data = data.encode('utf-8', 'surrogateescape')
        out = function(data, *args, **kwargs)
        if python2 and isinstance(out, bytes):
            return out.decode('utf-8', 'surrogateescape')
        return out
    return call


def _modules():
    """Name -> module of everything registered."""
    urllib2 = _module('urllib2', 'Python 2 urllib2 over urllib.request', dict(
        _public(urllib.request), **_public(urllib.error)))
    urllib2.urlopen = urlopen
    urllib2.Request = Request
    urllib2.build_opener = build_opener
    urllib2.install_opener = install_opener
    urllib2.quote = urllib.parse.quote
    urllib2.unquote = urllib.parse.unquote
    httplib = _module('httplib', 'Python 2 httplib over http.client', _public(http.client))
    httplib.HTTPConnection = HTTPConnection
    if hasattr(http.client, 'HTTPSConnection'):
        httplib.HTTPSConnection = HTTPSConnection
    string_io = _module('StringIO', 'Python 2 StringIO', {'StringIO': _string_io})
    c_string_io = _module('cStringIO', 'Python 2 cStringIO', {'StringIO': _string_io})
    config_parser = _module('ConfigParser', 'Python 2 ConfigParser', _public(configparser))
    config_parser.SafeConfigParser = configparser.ConfigParser
    commands = _module('commands', 'Python 2 commands', {
        'getoutput': lambda cmd: _getstatusoutput(cmd)[1],
        'getstatusoutput': _getstatusoutput})
    found = {
        'urllib2': urllib2,
        'urlparse': _module('urlparse', 'Python 2 urlparse', _public(urllib.parse)),
        'httplib': httplib,
        'Queue': queue,
        'StringIO': string_io,
        'cStringIO': c_string_io,
        'ConfigParser': config_parser,
        'HTMLParser': _module('HTMLParser', 'Python 2 HTMLParser', _public(html.parser)),
        '__builtin__': builtins,
        'commands': commands,
        'simplejson': json,
        'cElementTree': xml.etree.ElementTree,
        'xml.etree.cElementTree': xml.etree.ElementTree,

    }
    for name, home in (('cPickle', 'pickle'), ('xmlrpclib', 'xmlrpc.client')):
        module = sys.modules.get(home)
        if module is not None:
            found[name] = module
    return found


def missing():
    """Modules Python 3 has but this build of it lacks (no terminal, no
    distutils), for every script: name -> module."""
    version = _module('distutils.version', 'distutils.version', {
        'LooseVersion': LooseVersion, 'StrictVersion': LooseVersion})
    return {
        'getpass': _module('getpass', 'getpass', {'getuser': _getuser, 'getpass': _getpass}),
        'distutils': _module('distutils', 'distutils', {'version': version}),
        'distutils.version': version,
    }


def install_missing():
    """Registers :func:`missing`'s modules where the build has none."""
    for name, module in missing().items():
        sys.modules.setdefault(name, module)


def install():
    """Registers the modules (once) and Python 2's additions to Python 3
    modules that keep their name."""
    global _installed
    if _installed:
        return
    _installed = True
    for name, module in _modules().items():
        sys.modules.setdefault(name, module)
    xml.etree.cElementTree = xml.etree.ElementTree
    for k, v in (('quote', urllib.parse.quote), ('quote_plus', urllib.parse.quote_plus),
                 ('unquote', urllib.parse.unquote), ('unquote_plus', urllib.parse.unquote_plus),
                 ('urlencode', urllib.parse.urlencode), ('urlopen', urlopen)):
        setattr(urllib, k, v)
    for k, v in (('izip', zip), ('imap', map), ('ifilter', filter),
                 ('izip_longest', itertools.zip_longest),
                 ('ifilterfalse', itertools.filterfalse)):
        setattr(itertools, k, v)
    for k, v in (('letters', string.ascii_letters), ('lowercase', string.ascii_lowercase),
                 ('uppercase', string.ascii_uppercase), ('maketrans', str.maketrans),
                 ('atoi', int), ('atof', float), ('atol', int),
                 ('join', lambda words, sep=' ': sep.join(words)),
                 ('split', lambda s, sep=None, n=-1: s.split(sep, n)),
                 ('strip', lambda s, chars=None: s.strip(chars)),
                 ('replace', lambda s, a, b, n=-1: s.replace(a, b, n)),
                 ('lower', str.lower), ('upper', str.upper)):
        setattr(string, k, v)
    for name in ('compile', 'match', 'search', 'sub', 'subn', 'split', 'findall',
                 'finditer', 'fullmatch'):
        setattr(re, name, _lenient(getattr(re, name)))
    import base64
    for name in ('b64encode', 'b64decode', 'standard_b64encode', 'standard_b64decode',
                 'urlsafe_b64encode', 'urlsafe_b64decode', 'b32encode', 'b32decode',
                 'b16encode', 'b16decode', 'encodebytes', 'decodebytes'):
        setattr(base64, name, _base64_text(getattr(base64, name)))
    base64.encodestring = base64.encodebytes
    base64.decodestring = base64.decodebytes
    sys.maxint = sys.maxsize
    os.getcwdu = os.getcwd
