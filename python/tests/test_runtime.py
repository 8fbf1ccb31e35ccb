"""Native unit tests of the Python runtime's pure parts and of the sandbox
routing (with a fake host): `python3 -m unittest discover -s python/tests`.
"""

import errno
import glob  # noqa: F401  (preloaded by the runtime; imports stop at install)
import importlib
import math
import multiprocessing  # noqa: F401
import os
import sys
import tempfile
import time  # noqa: F401
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, '..', 'runtime'))

from wdiamond import collector, convertor, loader, metricset, sandbox  # noqa: E402
from wdiamond.collector import Collector, str_to_bool  # noqa: E402


class StrToBool(unittest.TestCase):
    def test_diamond_truth_values(self):
        for t in ('True', 'true', ' t ', 'YES', 'y'):
            self.assertIs(str_to_bool(t), True)
        for f in ('False', 'f', 'no', 'N', ''):
            self.assertIs(str_to_bool(f), False)
        self.assertIs(str_to_bool(True), True)
        self.assertEqual(str_to_bool(0), 0)
        with self.assertRaises(NotImplementedError):
            str_to_bool('maybe')


class Convertor(unittest.TestCase):
    def test_values_match_the_sdk(self):
        c = convertor.binary.convert
        self.assertEqual(c(49554212, 'kB', 'kilobyte'), 49554212.0)
        self.assertEqual(c(1, 'kB', 'byte'), 1024.0)
        self.assertEqual(c(1, 'byte', 'bit'), 8.0)
        self.assertEqual(c(1048576, 'byte', 'megabyte'), 1.0)
        self.assertEqual(c(2, 'gigabyte', 'megabit'), 16384.0)
        self.assertEqual(c(3, 'Kibit', 'bit'), 3072.0)
        with self.assertRaises(NotImplementedError):
            c(1, 'furlong', 'byte')

    def test_camelcase(self):
        self.assertEqual(convertor.camelcase_to_underscore('MemTotal'), 'mem_total')
        self.assertEqual(convertor.camelcase_to_underscore('HTTPRequests'), 'http_requests')


class Derivative(unittest.TestCase):
    def collector(self, interval=10):
        c = Collector(config={'interval': interval})
        return c

    def test_first_sample_is_zero_then_rate(self):
        c = self.collector()
        self.assertEqual(c.derivative('x', 100), 0)
        self.assertEqual(c.derivative('x', 150), 5.0)
        self.assertEqual(c.derivative('x', 150, time_delta=False), 0.0)
        self.assertEqual(c.derivative('x', 160, time_delta=False), 10.0)
        self.assertEqual(c.derivative('x', 200, interval=4), 10.0)

    def test_rollover_and_negative(self):
        c = self.collector()
        c.derivative('x', 2 ** 64 - 11)
        # Wrapped at max_value: (9 - (2**64 - 11 - (2**64 - 1))) / 10, exact.
        self.assertEqual(c.derivative('x', 9, max_value=2 ** 64 - 1), 1.9)
        c.derivative('y', 100)
        self.assertEqual(c.derivative('y', 50), 0)
        c.derivative('z', 100)
        self.assertEqual(c.derivative('z', 50, allow_negative=True), -5.0)

    def test_big_counters_are_exact(self):
        c = self.collector(interval=1)
        c.derivative('x', 2 ** 63 + 1)
        self.assertEqual(c.derivative('x', 2 ** 63 + 3), 2.0)

    def test_instances_are_separate(self):
        c = self.collector()
        c.derivative('x', 10, instance='a')
        self.assertEqual(c.derivative('x', 20), 0)
        self.assertEqual(c.derivative('x', 110, instance='a'), 10.0)

    def test_publish_counter_keeps_the_sample_as_raw_value(self):
        c = self.collector()
        c.publish_counter('x', 100)
        c.publish_counter('x', 200, precision=2)
        m = c.published[-1]
        self.assertEqual((m.value, m.raw_value, m.precision, m.counter), (10.0, 200.0, 2, True))

    def test_a_first_sample_is_not_published_unless_asked(self):
        # Diamond publishes 0 for a counter's first sample: a fake point at
        # every start. It is left out unless publish_first_rate is true.
        c = self.collector()
        c.publish('x', c.derivative('x', 100))
        c.publish_counter('y', 5)
        self.assertEqual(c.published, [])
        c.publish('x', c.derivative('x', 150))
        self.assertEqual([m.value for m in c.published], [5.0])
        d = Collector(config={'interval': 10, 'publish_first_rate': 'true'})
        d.publish('x', d.derivative('x', 100))
        d.publish_counter('y', 5)
        self.assertEqual([(m.value, m.raw_value) for m in d.published], [(0.0, None), (0.0, 5.0)])


class Publish(unittest.TestCase):
    def test_values_and_checks(self):
        from decimal import Decimal
        c = Collector()
        c.publish('a', 1)
        c.publish('b', Decimal('28.98'))
        c.publish('c', '2.6')
        c.publish('d', '2.6', precision=1)
        self.assertEqual([m.value for m in c.published], [1.0, 28.98, 3.0, 2.6])
        with self.assertRaises(ValueError):
            c.publish('e', 'many')
        with self.assertRaises(ValueError):
            c.publish('e', None)
        with self.assertRaises(ValueError):
            c.publish('e', 1, precision=256)
        with self.assertRaises(ValueError):
            c.publish('e', 1, metric_type='HISTOGRAM')

    def test_max_metrics_stops_a_run_early(self):
        c = Collector()
        c.max_metrics = 3
        for i in range(3):
            c.publish('m%d' % i, i)
        with self.assertRaises(OverflowError) as e:
            c.publish('m3', 3)
        self.assertIn('max_metrics', str(e.exception))

    def test_metric_set_columns(self):
        c = Collector()
        c.publish_gauge('one', 1.5, 2)
        c.publish('two', 2, instance='vm1', timestamp=1700000000)
        c.publish('three', 3, instance='vm1', raw_value=7)
        c.publish('four', 4, instance='vm2', metric_type='COUNTER')
        cols = metricset.encode(c.published)
        self.assertEqual(cols['names'], b'onetwothreefour')
        self.assertEqual(cols['name_ends'], [3, 6, 11, 15])
        self.assertEqual(cols['precisions'], bytes([2, 0, 0, 0]))
        self.assertEqual(cols['counters'], bytes([0, 0, 0, 1]))
        self.assertEqual(cols['timestamps'], [0, 1700000000, 0, 0])
        self.assertEqual(cols['instance_ids'], [0, 1, 1, 2])
        self.assertEqual(cols['instances'], ['vm1', 'vm2'])
        self.assertTrue(math.isnan(cols['raw_values'][0]))
        self.assertEqual(cols['raw_values'][2], 7.0)
        self.assertEqual(cols['series'], [])


SCRIPT = '''
"""A test collector.

More text."""
import diamond.collector

class TestCollector(diamond.collector.Collector):
    WDIAMOND_CAPABILITIES = [('read-files', '/proc/x')]
    def get_default_config_help(self):
        h = super(TestCollector, self).get_default_config_help()
        h.update({'flag': 'A flag'})
        return h
    def get_default_config(self):
        c = super(TestCollector, self).get_default_config()
        c.update({'path': 'test', 'flag': 'False', 'n': 3, 'f': 0.5, 'list': ['a', 'b'],
                  'on': True})
        return c
    def collect(self):
        self.publish('n', self.config['n'])
        1 / int(self.config['n'] != 0)
'''


class Loader(unittest.TestCase):
    def setUp(self):
        sys.path.insert(0, os.path.join(HERE, '..', 'runtime'))

    def test_describe_leaves_the_host_keys_out(self):
        cls = loader.load(SCRIPT, '/t/test.py')
        name, version, summary, options, asks = loader.describe(cls, '/t/test.py')
        self.assertEqual(name, 'test')
        self.assertEqual(summary, 'A test collector.')
        self.assertEqual(options, [
            ('flag', ('text', 'False'), 'A flag'),
            ('n', ('integer', 3), ''),
            ('f', ('float', 0.5), ''),
            ('list', ('text-list', ['a', 'b']), ''),
            ('on', ('boolean', True), ''),
        ])
        self.assertEqual(asks, [('read-files', '/proc/x')])

    def test_an_error_names_the_script_line(self):
        cls = loader.load(SCRIPT, '/t/test.py')
        c = loader.configure(cls, {'n': 0, 'interval': 10.0})
        try:
            loader.run(c)
            self.fail('no error')
        except ZeroDivisionError as e:
            text = loader.error_text(e, '/t/test.py')
        self.assertIn('ZeroDivisionError', text)
        self.assertIn('/t/test.py:20 in collect', text)
        c = loader.configure(cls, {'n': 1})
        self.assertEqual([m.name for m in loader.run(c)], ['n'])

    def test_bad_scripts(self):
        with self.assertRaises(loader.ScriptError) as e:
            loader.load('def broken(:\n', '/t/bad.py')
        self.assertIn('/t/bad.py:1', str(e.exception))
        with self.assertRaises(loader.ScriptError) as e:
            loader.load('x = 1\n', '/t/none.py')
        self.assertIn('defines no collector', str(e.exception))
        two = ('import diamond.collector\n'
               'class A(diamond.collector.Collector): pass\n'
               'class B(diamond.collector.Collector): pass\n')
        with self.assertRaises(loader.ScriptError) as e:
            loader.load(two, '/t/two.py')
        self.assertIn('2 collector classes (A, B)', str(e.exception))
        # A base class of the script's own is not counted.
        based = ('import diamond.collector\n'
                 'class Base(diamond.collector.Collector): pass\n'
                 'class Real(Base): pass\n')
        self.assertEqual(loader.load(based, '/t/based.py').__name__, 'Real')
        with self.assertRaises(loader.ScriptError) as e:
            loader.load('raise RuntimeError("at import")\n', '/t/raises.py')
        self.assertIn('RuntimeError: at import (at /t/raises.py:1', str(e.exception))

    def test_measure_collector_time(self):
        cls = loader.load(SCRIPT, '/t/test.py')
        c = loader.configure(cls, {'n': 1, 'measure_collector_time': 'True'})
        self.assertEqual([m.name for m in loader.run(c)], ['n', 'collector_time_ms'])


class FakeConnection(object):
    def __init__(self, log):
        self.log = log
        self.replies = [b'hello ', b'world\n', b'']

    def send(self, data, timeout_ms):
        self.log.append(('send', data))
        return len(data)

    def receive(self, max_bytes, timeout_ms):
        return self.replies.pop(0) if self.replies else b''

    def set_keepalive(self, s):
        pass

    def close(self):
        self.log.append(('close',))


class FakeHost(object):
    """Grants /proc/** and /usr/bin/true; everything else is denied."""

    directories = ['/var/lib/t']
    files = {'/proc/loadavg': b'0.50 0.25 0.10 2/99 123\n', '/proc/x': b'a\nb\n'}

    def __init__(self):
        self.calls = []

    def _check(self, path):
        if not path.startswith('/proc'):
            raise PermissionError(errno.EACCES, 'reading %s is not granted: add "%s" to '
                                  '[collectors.t.grants] files' % (path, path), path)

    def read_file(self, path):
        self.calls.append(('read', path))
        self._check(path)
        if path not in self.files:
            raise FileNotFoundError(errno.ENOENT, 'No such file or directory', path)
        return self.files[path]

    def list_dir(self, path):
        self._check(path)
        if path != '/proc':
            raise FileNotFoundError(errno.ENOENT, 'No such file or directory', path)
        return [('loadavg', 'file'), ('x', 'file'), ('sys', 'directory')]

    def metadata(self, path):
        if path == '/usr/bin/true':
            return 'file', 0, 1, 0
        self._check(path)
        if path in self.files:
            return 'file', len(self.files[path]), 1, 1700000000
        if path in ('/proc', '/proc/sys'):
            return 'directory', 0, 1, 0
        raise FileNotFoundError(errno.ENOENT, 'No such file or directory', path)

    def statvfs(self, path):
        self._check(path)
        return (4096, 4096, 100, 50, 40, 10, 5, 4, 0, 255)

    def run(self, argv, stdin, timeout_ms):
        self.calls.append(('run', argv, stdin))
        if argv[0] != '/usr/bin/true':
            raise PermissionError(errno.EACCES, 'running %s is not granted' % argv[0], argv[0])
        if argv[1:] == ['fail']:
            return 3, None, b'', b'bad\n', False
        if argv[1:] == ['hang']:
            raise TimeoutError(errno.ETIMEDOUT, 'timed out', argv[0])
        return 0, None, b'out:' + stdin, b'err', False

    def connect(self, protocol, address, timeout_ms):
        self.calls.append(('connect', protocol, address))
        if address != '127.0.0.1:11211':
            raise PermissionError(errno.EACCES, 'connecting to %s is not granted' % address)
        return FakeConnection(self.calls)

    def hostname(self):
        return 'testhost'

    def cpu_count(self):
        return 4

    def now(self):
        return 1700000000.0

    def interval(self):
        return 10.0

    def log(self, level, message):
        self.calls.append(('log', level, message))


class Sandbox(unittest.TestCase):
    def setUp(self):
        self.host = FakeHost()
        sandbox.install(self.host)

    def tearDown(self):
        sandbox.uninstall()

    def test_files_go_through_the_host(self):
        with open('/proc/loadavg') as f:
            self.assertEqual(f.read(), '0.50 0.25 0.10 2/99 123\n')
        self.assertEqual(list(open('/proc/x')), ['a\n', 'b\n'])
        self.assertEqual(open('/proc/x', 'rb').read(), b'a\nb\n')
        with self.assertRaises(PermissionError) as e:
            open('/etc/shadow')
        self.assertIn('add "/etc/shadow"', str(e.exception))
        # A granted directory is the real filesystem (preopened by the host).
        with self.assertRaises(FileNotFoundError):
            open('/var/lib/t/state')
        self.assertNotIn(('read', '/var/lib/t/state'), self.host.calls)
        with self.assertRaises(FileNotFoundError):
            open('/proc/nope')
        with self.assertRaises(PermissionError) as e:
            open('/nonexistent-dir/out', 'w')
        self.assertIn('grants.directories', str(e.exception))

    def test_os_calls(self):
        self.assertTrue(os.path.exists('/proc/loadavg'))
        self.assertFalse(os.path.exists('/proc/nope'))
        self.assertFalse(os.path.exists('/etc/shadow'))
        self.assertTrue(os.path.isdir('/proc'))
        self.assertTrue(os.access('/proc/x', os.R_OK))
        self.assertFalse(os.access('/proc/x', os.W_OK))
        self.assertEqual(sorted(os.listdir('/proc')), ['loadavg', 'sys', 'x'])
        with os.scandir('/proc') as it:
            dirs = [e.name for e in it if e.is_dir()]
        self.assertEqual(dirs, ['sys'])
        import glob
        self.assertEqual(sorted(glob.glob('/proc/*a*')), ['/proc/loadavg'])
        v = os.statvfs('/proc')
        self.assertEqual((v.f_bsize, v.f_blocks, v.f_bavail, v[9]), (4096, 100, 40, 255))
        self.assertEqual(os.getloadavg(), (0.5, 0.25, 0.1))
        self.assertEqual(os.cpu_count(), 4)
        import multiprocessing
        self.assertEqual(multiprocessing.cpu_count(), 4)
        import time
        self.assertEqual(time.time(), 1700000000.0)
        with self.assertRaises(PermissionError) as e:
            os.fork()
        self.assertIn('subprocess', str(e.exception))

    def test_a_granted_directory_is_real_for_every_call(self):
        # open worked there while os.stat was sent to the host and denied.
        d = tempfile.mkdtemp()
        sandbox.set_directories([d])
        path = os.path.join(d, 'state')
        with open(path, 'w') as f:
            f.write('x')
        self.assertEqual(os.stat(path).st_size, 1)
        self.assertEqual(os.lstat(path).st_size, 1)
        self.assertTrue(os.path.isfile(path))
        self.assertTrue(os.access(path, os.W_OK))
        self.assertEqual(os.listdir(d), ['state'])
        with os.scandir(d) as it:
            self.assertEqual([e.name for e in it], ['state'])
        self.assertFalse([c for c in self.host.calls if d in str(c)], self.host.calls)

    def test_modules_are_never_imported_from_files(self):
        # A script writes a module into its granted directory and imports
        # it on its next run: the pin covers the script, not what it wrote.
        d = tempfile.mkdtemp()
        sandbox.set_directories([d])
        with open(os.path.join(d, 'planted_mod.py'), 'w') as f:
            f.write('PLANTED = 1\n')
        sys.path.insert(0, d)
        with self.assertRaises(ImportError):
            import planted_mod  # noqa: F401
        with self.assertRaises(ImportError):
            importlib.import_module('planted_mod')
        self.assertNotIn('planted_mod', sys.modules)

    def test_subprocess(self):
        import subprocess
        self.assertEqual(subprocess.check_output(['true', 'x'], input=b'in'), b'out:in')
        self.assertEqual(self.host.calls[-1], ('run', ['/usr/bin/true', 'x'], b'in'))
        with self.assertRaises(subprocess.CalledProcessError) as e:
            subprocess.check_output(['/usr/bin/true', 'fail'])
        self.assertEqual(e.exception.returncode, 3)
        with self.assertRaises(subprocess.TimeoutExpired):
            subprocess.run(['/usr/bin/true', 'hang'], timeout=1)
        with self.assertRaises(PermissionError):
            subprocess.call(['/bin/rm', '-rf', '/'])
        p = subprocess.Popen(['/usr/bin/true'], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             universal_newlines=True)
        self.assertEqual(p.communicate(), ('out:', 'err'))
        self.assertEqual(p.returncode, 0)
        with self.assertRaises(PermissionError):
            subprocess.run('/usr/bin/true', shell=True)
        self.assertEqual(self.host.calls[-1][1], ['/bin/sh', '-c', '/usr/bin/true'])

    def test_socket(self):
        import socket
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.settimeout(2)
        s.connect(('127.0.0.1', 11211))
        s.sendall(b'stats\r\n')
        f = s.makefile('r')
        self.assertEqual(f.readline(), 'hello world\n')
        s.close()
        self.assertIn(('send', b'stats\r\n'), self.host.calls)
        with self.assertRaises(PermissionError):
            socket.create_connection(('10.0.0.1', 80))
        self.assertEqual(socket.gethostname(), 'testhost')

    def test_threads_are_refused_clearly(self):
        import threading
        with self.assertRaises(PermissionError) as e:
            threading.Thread(target=lambda: None).start()
        self.assertIn('threads are not available', str(e.exception))

    def test_logging_reaches_the_host(self):
        import logging
        loader.route_logging(self.host)
        try:
            logging.getLogger('diamond').warning('disk %s is %d%% full', 'sda', 91)
            try:
                raise KeyError('k')
            except KeyError:
                logging.getLogger('diamond').exception('failed')
        finally:
            logging.getLogger().handlers.clear()
        logs = [c for c in self.host.calls if c[0] == 'log']
        self.assertEqual(logs[0], ('log', 'warn', 'disk sda is 91% full'))
        self.assertEqual(logs[1][1], 'error')
        self.assertIn("failed: KeyError: 'k'", logs[1][2])


if __name__ == '__main__':
    unittest.main()
