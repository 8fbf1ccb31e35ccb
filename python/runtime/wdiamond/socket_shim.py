"""``socket`` inside the sandbox: connections opened by the host's
``sockets`` import, so only peers the grants list (``grants.connect``:
``tcp:host:port``, ``udp:host:port``, ``unix:/path``) are reached, with the
host's timeouts and read caps. Name resolution happens in the host when it
connects; there is no listening, no raw socket and no ``select``.
"""

import errno
import io

from . import callers

host = None  # set by sandbox.install



def _out(data, text):
    """What goes out: a Python 2 caller's text as UTF-8 (bytes it read
    that were not UTF-8 kept as surrogates, so they go back unchanged)."""
    if isinstance(data, str) and text:
        return data.encode('utf-8', 'surrogateescape')
    return bytes(data)

AF_UNIX = 1
AF_INET = 2
AF_INET6 = 10
SOCK_STREAM = 1
SOCK_DGRAM = 2
SOL_SOCKET = 1
SO_KEEPALIVE = 9
SO_REUSEADDR = 2
IPPROTO_TCP = 6
IPPROTO_UDP = 17
TCP_NODELAY = 1
SHUT_RD, SHUT_WR, SHUT_RDWR = 0, 1, 2
try:
    # The same sentinel as the real module's: http.client and urllib.request
    # took it as a default argument before the sandbox replaced `socket`.
    from socket import _GLOBAL_DEFAULT_TIMEOUT
except ImportError:  # natively, in tests, without it
    _GLOBAL_DEFAULT_TIMEOUT = object()

error = OSError
timeout = TimeoutError


class herror(OSError):
    pass


class gaierror(OSError):
    pass


_default_timeout = None


def getdefaulttimeout():
    return _default_timeout


def setdefaulttimeout(t):
    global _default_timeout
    _default_timeout = t


def gethostname():
    """The host name the agent resolved for this collector."""
    return host.hostname()


def getfqdn(name=''):
    return name or host.hostname()


def gethostbyname(name):
    """``name`` itself: the host resolves names when it connects."""
    return name


def getaddrinfo(hostname, port, family=0, type=0, proto=0, flags=0):
    family = family or AF_INET
    type = type or SOCK_STREAM
    return [(family, type, proto, '', (hostname, port))]


def _ms(seconds):
    if seconds is None:
        return 2 ** 31 - 1
    return max(1, min(2 ** 31 - 1, int(seconds * 1000)))


class _Reader(io.RawIOBase):
    def __init__(self, sock):
        self._sock = sock

    def readable(self):
        return True

    def writable(self):
        return True

    def readinto(self, buf):
        data = self._sock._recv(len(buf))
        buf[:len(data)] = data
        return len(data)

    def write(self, data):
        self._sock.sendall(bytes(data))
        return len(data)


class socket(object):
    """A client socket whose connection the host opens (``connect``)."""

    def __init__(self, family=AF_INET, type=SOCK_STREAM, proto=0, fileno=None):
        if fileno is not None:
            raise PermissionError(errno.EPERM, 'sockets from file descriptors are not available')
        if type not in (SOCK_STREAM, SOCK_DGRAM):
            raise PermissionError(errno.EPERM, 'only stream and datagram sockets are available')
        self.family = family
        self.type = type
        self.proto = proto
        self._timeout = _default_timeout
        self._conn = None
        self._keepalive = False
        # Opened by Python 2 code: `recv` gives text and `send` takes it.
        self._text = callers.python2()

    # -- connection ----------------------------------------------------

    def _protocol(self):
        if self.family == AF_UNIX:
            return 'unix'
        return 'udp' if self.type == SOCK_DGRAM else 'tcp'

    def connect(self, address):
        if self._conn is not None:
            raise OSError(errno.EISCONN, 'already connected')
        if self.family == AF_UNIX:
            target = address.decode() if isinstance(address, bytes) else str(address)
        else:
            hostname, port = address[0], address[1]
            if ':' in hostname and not hostname.startswith('['):
                hostname = '[' + hostname + ']'
            target = '%s:%d' % (hostname, int(port))
        self._conn = host.connect(self._protocol(), target, _ms(self._timeout))
        if self._keepalive:
            self._conn.set_keepalive(60)

    def connect_ex(self, address):
        try:
            self.connect(address)
            return 0
        except OSError as e:
            return e.errno or errno.ECONNREFUSED

    def _connected(self):
        if self._conn is None:
            raise OSError(errno.ENOTCONN, 'the socket is not connected')
        return self._conn

    def send(self, data, flags=0):
        return self._connected().send(_out(data, self._text), _ms(self._timeout))

    def sendall(self, data, flags=0):
        self.send(data)

    def sendto(self, data, flags_or_address, address=None):
        if address is None:
            address = flags_or_address
        if self._conn is None:
            self.connect(address)
        return self.send(data)

    def _recv(self, bufsize):
        return self._connected().receive(max(0, int(bufsize)), _ms(self._timeout))

    def recv(self, bufsize, flags=0):
        data = self._recv(bufsize)
        return data.decode('utf-8', 'surrogateescape') if self._text else data

    def recv_into(self, buf, nbytes=0, flags=0):
        data = self._recv(nbytes or len(buf))
        buf[:len(data)] = data
        return len(data)

    def recvfrom(self, bufsize, flags=0):
        return self.recv(bufsize), None

    def makefile(self, mode='r', buffering=None, encoding=None, errors=None, newline=None):
        raw = _Reader(self)
        buffered = io.BufferedRWPair(raw, raw) if 'w' in mode else io.BufferedReader(raw)
        if 'b' in mode:
            return buffered
        return io.TextIOWrapper(buffered, encoding=encoding or 'utf-8', errors=errors,
                                newline=newline)

    # -- options -------------------------------------------------------

    def settimeout(self, value):
        self._timeout = value

    def gettimeout(self):
        return self._timeout

    def setblocking(self, flag):
        self._timeout = None if flag else 0.0

    def setsockopt(self, level, option, value, *rest):
        if level == SOL_SOCKET and option == SO_KEEPALIVE:
            self._keepalive = bool(value)
            if self._conn is not None and self._keepalive:
                self._conn.set_keepalive(60)

    def getsockopt(self, level, option, buflen=None):
        return 0

    def fileno(self):
        return -1

    def bind(self, address):
        raise PermissionError(errno.EPERM, 'a collector cannot bind or listen')

    listen = accept = bind

    def shutdown(self, how):
        pass

    def close(self):
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass


SocketType = socket


def create_connection(address, timeout=_GLOBAL_DEFAULT_TIMEOUT, source_address=None, **other):
    """A connected TCP socket (``socket.create_connection``)."""
    s = socket(AF_INET, SOCK_STREAM)
    if timeout is None or isinstance(timeout, (int, float)):
        s.settimeout(timeout)
    s.connect(address)
    return s
