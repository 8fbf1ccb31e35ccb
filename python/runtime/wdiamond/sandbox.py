"""Routes Python's calls that reach outside the interpreter to the host.

A Diamond collector reads the host with ``open``, ``os.listdir``,
``os.path.exists``, ``os.access``, ``os.statvfs``, ``os.getloadavg``,
``multiprocessing.cpu_count``, ``subprocess`` and ``socket``. Inside the
sandbox there is no filesystem, no process and no network of the usual kind;
:func:`install` replaces those calls with ones that ask the host through
its granted imports (``files``, ``fs-stats``, ``process``, ``sockets``,
``host-info``), so the same fail-closed grants, caps and denials apply as
to any plugin. A denial is a ``PermissionError`` whose text names the grant
to add. What cannot work at all (threads, ``fork``, ``exec``) raises a
clear exception instead of failing somewhere deep inside the interpreter.

``host`` is any object with the methods of ``wdiamond.host.Host`` (the
component's adapter); the native tests pass a fake one.
"""

import builtins
import errno
import io
import os
import stat as _stat
import sys
import time
import types

# A wait the host always cuts to the run's deadline and the plugin's
# `command_timeout` / `socket_timeout` limits.
FOREVER_MS = 2 ** 31 - 1

_KIND_MODE = {
    'file': _stat.S_IFREG | 0o444,
    'directory': _stat.S_IFDIR | 0o555,
    'symlink': _stat.S_IFLNK | 0o777,
    'other': _stat.S_IFIFO | 0o444,
}

_real = {}
_saved = []  # (object, attribute, original) of every replacement


def _patch(obj, name, new):
    _saved.append((obj, name, getattr(obj, name, _MISSING)))
    setattr(obj, name, new)


_MISSING = object()


def _fspath(path):
    if isinstance(path, int):
        raise PermissionError(errno.EACCES, 'file descriptors are not available in the sandbox')
    path = os.fspath(path)
    if isinstance(path, bytes):
        path = path.decode('utf-8', 'surrogateescape')
    return path


def _absolute(path):
    path = _fspath(path)
    if not path.startswith('/'):
        path = '/' + path
    return os.path.normpath(path)


class _NamedBytesIO(io.BytesIO):
    def __init__(self, data, name, mode):
        io.BytesIO.__init__(self, data)
        self.name = name
        self.mode = mode


class statvfs_result(tuple):
    """``os.statvfs`` result: a tuple with Diamond's ``f_*`` fields."""

    _fields = ('f_bsize', 'f_frsize', 'f_blocks', 'f_bfree', 'f_bavail',
               'f_files', 'f_ffree', 'f_favail', 'f_flag', 'f_namemax')

    def __new__(cls, values):
        return tuple.__new__(cls, values)

    def __getattr__(self, name):
        try:
            return self[self._fields.index(name)]
        except ValueError:
            raise AttributeError(name)

    @property
    def f_fsid(self):
        return 0


class _DirEntry(object):
    __slots__ = ('name', 'path', '_kind', '_host')

    def __init__(self, directory, name, kind, host):
        self.name = name
        self.path = os.path.join(directory, name)
        self._kind = kind
        self._host = host

    def is_dir(self, follow_symlinks=True):
        if self._kind == 'symlink' and follow_symlinks:
            return os.path.isdir(self.path)
        return self._kind == 'directory'

    def is_file(self, follow_symlinks=True):
        if self._kind == 'symlink' and follow_symlinks:
            return os.path.isfile(self.path)
        return self._kind == 'file'

    def is_symlink(self):
        return self._kind == 'symlink'

    def is_junction(self):
        return False

    def stat(self, follow_symlinks=True):
        return os.stat(self.path)

    def inode(self):
        return 0

    def __fspath__(self):
        return self.path

    def __repr__(self):
        return '<DirEntry %r>' % self.name


class _ScandirIterator(object):
    def __init__(self, entries):
        self._it = iter(entries)

    def __iter__(self):
        return self

    def __next__(self):
        return next(self._it)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        self._it = iter(())


def _unavailable(what, instead):
    def refuse(*args, **kwargs):
        raise PermissionError(errno.EPERM, '%s is not available to a wdiamond collector: %s'
                              % (what, instead))
    refuse.__name__ = what.rsplit('.', 1)[-1]
    return refuse


_directories = []


def set_directories(directories):
    """The granted directories (preopened by the host): there ``open``
    is the real one, for reading and writing."""
    _directories[:] = [os.path.normpath(d) for d in directories]


def install(host):
    """Replaces the interpreter's file, process, socket, thread and clock
    calls with the host's (see the module docs). Idempotent."""
    if _real:
        return
    _real['open'] = builtins.open
    _real['os.open'] = getattr(os, 'open', None)

    set_directories(getattr(host, 'directories', None) or [])

    def _granted_directory(path):
        return any(path == d or path.startswith(d.rstrip('/') + '/') for d in _directories)

    def _open(file, mode='r', buffering=-1, encoding=None, errors=None,
              newline=None, closefd=True, opener=None):
        if isinstance(file, int):
            return _real['open'](file, mode, buffering, encoding, errors, newline, closefd, opener)
        name = _fspath(file)
        if _granted_directory(_absolute(name)):
            # A granted directory is a real one (preopened by the host).
            return _real['open'](name, mode, buffering, encoding, errors, newline, closefd, opener)
        if any(c in mode for c in 'wax+'):
            raise PermissionError(
                errno.EACCES,
                'writing is not granted here: a collector writes only under a directory of '
                'its grants.directories', name)
        data = host.read_file(_absolute(name))
        raw = _NamedBytesIO(data, name, mode)
        if 'b' in mode:
            return raw
        text = io.TextIOWrapper(raw, encoding=encoding or 'utf-8', errors=errors,
                                newline=newline)
        text.mode = mode
        return text

    _patch(builtins, 'open', _open)
    _patch(io, 'open', _open)

    # Under a granted directory every call is the real one (the host
    # preopened it): one rule for open, stat, access and listing.
    for name in ('stat', 'lstat', 'listdir', 'scandir', 'access'):
        _real['os.' + name] = getattr(os, name, None)

    def _own(path):
        return (not isinstance(path, int) and _real['os.stat'] is not None
                and _granted_directory(_absolute(_fspath(path))))

    def _stat_of(path, dir_fd=None, follow_symlinks=True):
        if _own(path):
            return _real['os.stat'](_fspath(path), follow_symlinks=follow_symlinks)
        kind, size, device, modified = host.metadata(_absolute(path))
        mode = _KIND_MODE.get(kind, _KIND_MODE['other'])
        return os.stat_result((mode, 0, device, 1, 0, 0, size, modified, modified, modified))

    def _listdir(path='.'):
        if _own(path):
            return _real['os.listdir'](_fspath(path))
        return [name for name, _ in host.list_dir(_absolute(path))]

    def _scandir(path='.'):
        if _own(path):
            return _real['os.scandir'](_fspath(path))
        directory = _fspath(path)
        return _ScandirIterator([_DirEntry(directory, n, k, host)
                                 for n, k in host.list_dir(_absolute(directory))])

    def _access(path, mode, dir_fd=None, effective_ids=False, follow_symlinks=True):
        if _own(path):
            return _real['os.access'](_fspath(path), mode)
        try:
            kind = host.metadata(_absolute(path))[0]
        except (OSError, ValueError):
            return False
        if mode & os.W_OK:
            return False
        return kind is not None

    def _statvfs(path):
        return statvfs_result(host.statvfs(_absolute(path)))

    def _getloadavg():
        fields = host.read_file('/proc/loadavg').split()
        if len(fields) < 3:
            raise OSError(errno.EINVAL, 'Load averages are unobtainable')
        return tuple(float(f) for f in fields[:3])

    def _system(command):
        import subprocess
        return subprocess.call(command, shell=True)

    def _popen(cmd, mode='r', buffering=-1):
        import subprocess
        if mode not in ('r', 'rb'):
            raise PermissionError(errno.EPERM, 'os.popen: only reading a command is available')
        out = subprocess.run(cmd, shell=True, stdout=subprocess.PIPE, text=False).stdout
        return io.BytesIO(out) if 'b' in mode else io.StringIO(out.decode('utf-8', 'replace'))

    def _lstat_of(path, dir_fd=None):
        if _own(path):
            return _real['os.lstat'](_fspath(path))
        return _stat_of(path)

    _patch(os, 'stat', _stat_of)
    _patch(os, 'lstat', _lstat_of)
    _patch(os, 'listdir', _listdir)
    _patch(os, 'scandir', _scandir)
    _patch(os, 'access', _access)
    _patch(os, 'statvfs', _statvfs)
    _patch(os, 'statvfs_result', statvfs_result)
    _patch(os, 'getloadavg', _getloadavg)
    _patch(os, 'cpu_count', lambda: host.cpu_count())
    _patch(os, 'system', _system)
    # Linux's dev_t encoding (WASI's os lacks these pure functions).
    if not hasattr(os, 'major'):
        _patch(os, 'major', lambda dev: ((dev >> 8) & 0xfff) | ((dev >> 32) & ~0xfff))
        _patch(os, 'minor', lambda dev: (dev & 0xff) | ((dev >> 12) & ~0xff))
        _patch(os, 'makedev', lambda major, minor: (
            ((major & 0xfff) << 8) | ((major & ~0xfff) << 32) |
            (minor & 0xff) | ((minor & ~0xff) << 12)))
    _patch(os, 'popen', _popen)
    for name in ('fork', 'forkpty', 'execv', 'execve', 'execl', 'execle', 'execlp',
                 'execlpe', 'execvp', 'execvpe', 'spawnv', 'spawnve', 'spawnl',
                 'spawnle', 'posix_spawn', 'posix_spawnp', 'kill', 'killpg'):
        _patch(os, name, _unavailable('os.' + name, 'run a granted command with subprocess'))
    for name in ('remove', 'unlink', 'rmdir', 'rename', 'replace', 'mkdir', 'makedirs',
                 'chmod', 'chown', 'symlink', 'link', 'truncate'):
        real = getattr(os, name, None)
        _patch(os, name, _guarded_write(real, 'os.' + name))

    # Tracebacks and warnings read source lines through linecache, which
    # would ask the host for stdlib files (and count denials): only what
    # is already cached (the script, see loader.load) is shown.
    import linecache
    _patch(linecache, 'checkcache', lambda filename=None: None)
    _patch(linecache, 'updatecache', lambda filename, module_globals=None: [])

    _patch(time, 'time', lambda: host.now())
    _patch(time, 'time_ns', lambda: int(host.now() * 1e9))

    from . import subprocess_shim, socket_shim
    subprocess_shim.host = host
    socket_shim.host = host
    _patch_module('subprocess', subprocess_shim)
    _patch_module('socket', socket_shim)
    mp = types.ModuleType('multiprocessing')
    mp.__doc__ = 'wdiamond: only cpu_count; processes are not available in the sandbox.'
    mp.cpu_count = lambda: host.cpu_count()
    mp.Process = _unavailable('multiprocessing.Process', 'a collector runs in one sandboxed instance')
    mp.Pool = _unavailable('multiprocessing.Pool', 'a collector runs in one sandboxed instance')
    _patch_module('multiprocessing', mp)
    _no_threads()
    _no_file_imports()


def _patch_module(name, module):
    _saved.append((sys.modules, name, sys.modules.get(name, _MISSING)))
    sys.modules[name] = module


def uninstall():
    """Puts back everything :func:`install` replaced (for native tests)."""
    while _saved:
        obj, name, old = _saved.pop()
        if obj is sys.modules:
            if old is _MISSING:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = old
        elif old is _MISSING:
            delattr(obj, name)
        else:
            setattr(obj, name, old)
    _real.clear()


def _guarded_write(real, what):
    def call(*args, **kwargs):
        if real is None:
            raise PermissionError(errno.EPERM, '%s is not available in the sandbox' % what)
        try:
            return real(*args, **kwargs)
        except OSError as e:
            raise PermissionError(
                errno.EACCES,
                '%s: not granted (a collector changes files only under a directory of its '
                'grants.directories): %s' % (what, e))
    return call


def _no_file_imports():
    """Imports come only from what the runtime holds (the preloaded
    standard library, builtins, frozen modules), never from files: a
    script may write under its grants.directories, and a module it wrote
    there must not run on its next run (the pin covers the script, not
    what it writes). The host refuses module files there too."""
    import importlib.machinery
    finders = [f for f in sys.meta_path if f is not importlib.machinery.PathFinder]
    _patch(sys, 'meta_path', finders)
    _patch(sys, 'path_hooks', [])
    _patch(sys, 'path', [])
    _patch(sys, 'path_importer_cache', {})


def _no_threads():
    message = ('threads are not available to a wdiamond collector: each run is one call '
               'into one sandboxed instance; do the work in collect()')
    try:
        import threading
        _patch(threading.Thread, 'start', _unavailable('threading.Thread.start', message))
    except ImportError:
        pass
    try:
        import _thread
        _patch(_thread, 'start_new_thread', _unavailable('_thread.start_new_thread', message))
    except ImportError:
        pass
