"""``subprocess`` inside the sandbox: commands run by the host's
``process.run`` import, so only commands the grants list run (a denial is
a ``PermissionError`` naming the grant to add), with the host's timeout and
output caps. A command runs to completion when it is started (there is no
streaming); ``Popen`` keeps the familiar shape for Diamond collectors.
"""

import errno
import io

from . import callers

host = None  # set by sandbox.install

PIPE = -1
STDOUT = -2
DEVNULL = -3

_SEARCH = ('/usr/bin', '/bin', '/usr/sbin', '/sbin', '/usr/local/bin', '/usr/local/sbin')


class SubprocessError(Exception):
    pass


class CalledProcessError(SubprocessError):
    def __init__(self, returncode, cmd, output=None, stderr=None):
        self.returncode = returncode
        self.cmd = cmd
        self.output = output
        self.stderr = stderr

    @property
    def stdout(self):
        return self.output

    def __str__(self):
        if self.returncode is not None and self.returncode < 0:
            return 'Command %r died with signal %d.' % (self.cmd, -self.returncode)
        return 'Command %r returned non-zero exit status %r.' % (self.cmd, self.returncode)


class TimeoutExpired(SubprocessError):
    def __init__(self, cmd, timeout, output=None, stderr=None):
        self.cmd = cmd
        self.timeout = timeout
        self.output = output
        self.stderr = stderr

    def __str__(self):
        return 'Command %r timed out after %s seconds' % (self.cmd, self.timeout)


class CompletedProcess(object):
    def __init__(self, args, returncode, stdout=None, stderr=None):
        self.args = args
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr

    def check_returncode(self):
        if self.returncode:
            raise CalledProcessError(self.returncode, self.args, self.stdout, self.stderr)

    def __repr__(self):
        return 'CompletedProcess(args=%r, returncode=%r)' % (self.args, self.returncode)


def _argv(args, shell):
    if shell:
        if not isinstance(args, str):
            args = ' '.join(args)
        return ['/bin/sh', '-c', args]
    if isinstance(args, (str, bytes)):
        args = [args]
    argv = [a.decode('utf-8', 'surrogateescape') if isinstance(a, bytes) else str(a)
            for a in args]
    if not argv:
        raise ValueError('an empty command')
    if '/' not in argv[0]:
        for d in _SEARCH:
            candidate = d + '/' + argv[0]
            try:
                host.metadata(candidate)
            except OSError:
                continue
            argv[0] = candidate
            break
        else:
            raise FileNotFoundError(errno.ENOENT, 'No such file or directory (commands are '
                                    'found only in %s; give an absolute path)'
                                    % ', '.join(_SEARCH), argv[0])
    return argv


def _timeout_ms(timeout):
    if timeout is None:
        return 2 ** 31 - 1
    return max(1, min(2 ** 31 - 1, int(timeout * 1000)))


def _text(text, universal_newlines, encoding, errors):
    """Whether output is text: as asked, else when Python 2 code asks (its
    ``str`` was both), else bytes."""
    if text is None and universal_newlines is None and encoding is None and errors is None:
        return 'python2' if callers.python2() else False
    return bool(text or universal_newlines or encoding or errors)


def _decode(data, text, encoding, errors):
    if data is None or not text:
        return data
    # For Python 2 code, bytes that are not UTF-8 are kept as surrogates:
    # its str took any bytes.
    errors = errors or ('surrogateescape' if text == 'python2' else 'strict')
    return data.decode(encoding or 'utf-8', errors).replace('\r\n', '\n')


def _execute(args, input, timeout, shell):
    """(returncode, stdout, stderr) of one command, run by the host."""
    if isinstance(input, str):
        input = input.encode('utf-8', 'surrogateescape')
    argv = _argv(args, shell)
    try:
        status, signal, out, err, truncated = host.run(argv, input or b'', _timeout_ms(timeout))
    except TimeoutError:
        raise TimeoutExpired(args, timeout)
    if status is not None:
        code = status
    elif signal is not None:
        code = -signal
    else:
        code = -1
    return code, out, err


def run(args, stdin=None, input=None, stdout=None, stderr=None, capture_output=False,
        shell=False, cwd=None, timeout=None, check=False, encoding=None, errors=None,
        text=None, env=None, universal_newlines=None, **other):
    """Runs a command and waits for it (``subprocess.run``)."""
    if capture_output:
        stdout = stderr = PIPE
    text = _text(text, universal_newlines, encoding, errors)
    code, out, err = _execute(args, input, timeout, shell)
    if stderr == STDOUT:
        out = out + err
    out = _decode(out, text, encoding, errors) if stdout == PIPE else None
    err = _decode(err, text, encoding, errors) if stderr == PIPE else None
    done = CompletedProcess(args, code, out, err)
    if check:
        done.check_returncode()
    return done


def call(args, **kwargs):
    """The exit status of a command."""
    kwargs.pop('stdout', None)
    kwargs.pop('stderr', None)
    return run(args, **kwargs).returncode


def check_call(args, **kwargs):
    """Runs a command; raises ``CalledProcessError`` if it fails."""
    kwargs.pop('stdout', None)
    kwargs.pop('stderr', None)
    run(args, check=True, **kwargs)
    return 0


def check_output(args, **kwargs):
    """A command's standard output; raises ``CalledProcessError`` if it fails."""
    kwargs['stdout'] = PIPE
    return run(args, check=True, **kwargs).stdout


def getstatusoutput(cmd):
    done = run(cmd, shell=True, stdout=PIPE, stderr=STDOUT, text=True)
    out = done.stdout[:-1] if done.stdout.endswith('\n') else done.stdout
    return done.returncode, out


def getoutput(cmd):
    return getstatusoutput(cmd)[1]


class Popen(object):
    """A command the host runs to completion on ``communicate``/``wait``
    (or at once, when it takes no input)."""

    def __init__(self, args, bufsize=-1, executable=None, stdin=None, stdout=None,
                 stderr=None, preexec_fn=None, close_fds=True, shell=False, cwd=None,
                 env=None, universal_newlines=None, startupinfo=None, creationflags=0,
                 restore_signals=True, start_new_session=False, pass_fds=(),
                 encoding=None, errors=None, text=None, **other):
        if preexec_fn is not None:
            raise PermissionError(errno.EPERM, 'preexec_fn is not available in the sandbox')
        self.args = args
        self._shell = shell
        self._pipes = (stdin, stdout, stderr)
        self._text = _text(text, universal_newlines, encoding, errors)
        self._encoding = encoding
        self._errors = errors
        self.returncode = None
        self.pid = 0
        self.stdin = io.BytesIO() if stdin == PIPE else None
        self.stdout = None
        self.stderr = None
        self._out = self._err = None
        if stdin != PIPE:
            self._run(None, None)

    def _run(self, input, timeout):
        if self.returncode is not None:
            return
        if input is None and self.stdin is not None:
            input = self.stdin.getvalue()
        code, out, err = _execute(self.args, input, timeout, self._shell)
        _, stdout, stderr = self._pipes
        if stderr == STDOUT:
            out = out + err
        self._out = _decode(out, self._text, self._encoding, self._errors) if stdout == PIPE else None
        self._err = _decode(err, self._text, self._encoding, self._errors) if stderr == PIPE else None
        wrap = io.StringIO if self._text else io.BytesIO
        self.stdout = wrap(self._out) if self._out is not None else None
        self.stderr = wrap(self._err) if self._err is not None else None
        self.returncode = code

    def communicate(self, input=None, timeout=None):
        self._run(input, timeout)
        return self._out, self._err

    def wait(self, timeout=None):
        self._run(None, timeout)
        return self.returncode

    def poll(self):
        return self.returncode

    def kill(self):
        pass

    def terminate(self):
        pass

    def send_signal(self, sig):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.wait()
