"""Native tests of the Python 2 bridge's pure parts: the translation of
Python 2 source, its detection, and Python 2's names."""

import os
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, '..', 'runtime'))

import diamond  # noqa: E402,F401
from wdiamond.py2 import names, translate  # noqa: E402


def run(source):
    """The globals of Python 2 ``source`` after it ran."""
    namespace = {}
    names.install(namespace)
    exec(translate.translate(source, 'test.py'), namespace)
    return namespace


class Text(unittest.TestCase):
    def fix(self, source):
        return translate.fix_text(source)

    def test_print_statements(self):
        self.assertEqual(self.fix('print "a", b\n'), 'print("a", b)\n')
        self.assertEqual(self.fix('print\n'), 'print()\n')
        self.assertEqual(self.fix('print >>sys.stderr, "x %s" % y,\n'),
                         'print("x %s" % y, file=sys.stderr, end=\' \')\n')
        self.assertEqual(self.fix('if x: print x; y = 1\n'), 'if x: print(x); y = 1\n')
        # Already a call, or a name: left alone.
        self.assertEqual(self.fix('print("a")\n'), 'print("a")\n')
        self.assertEqual(self.fix('self.print = 1\n'), 'self.print = 1\n')

    def test_except_raise_exec(self):
        self.assertEqual(self.fix('try:\n  x\nexcept (A, B), e:\n  pass\n'),
                         'try:\n  x\nexcept (A, B) as e:\n  pass\n')
        self.assertEqual(self.fix('except Exception, e:\n'), 'except Exception as e:\n')
        self.assertEqual(self.fix('except (A, B):\n'), 'except (A, B):\n')
        self.assertEqual(self.fix('raise ValueError, "bad %d" % n\n'),
                         'raise ValueError("bad %d" % n)\n')
        self.assertEqual(self.fix('raise ValueError("a, b")\n'), 'raise ValueError("a, b")\n')
        self.assertEqual(self.fix('exec code in ns\n'), 'exec(code, ns)\n')

    def test_tokens(self):
        self.assertEqual(self.fix('x = 0755 + 10L + 0x1FL + 0 + 1.5\n'),
                         'x = 0o755 + 10 + 0x1F + 0 + 1.5\n')
        self.assertEqual(self.fix('if a <> b: y = `a`\n'), 'if a != b: y = repr(a)\n')
        self.assertEqual(self.fix("s = ur'x'\n"), "s = r'x'\n")
        # Strings and comments are not code.
        self.assertEqual(self.fix('s = "print x <> 0755"  # print y\n'),
                         's = "print x <> 0755"  # print y\n')
        self.assertEqual(self.fix('s = """\nprint x\n"""\n'), 's = """\nprint x\n"""\n')

    def test_tabs_count_to_eight(self):
        src = 'if x:\n        a = 1\n\tb = 2\n'
        self.assertEqual(self.fix(src), 'if x:\n        a = 1\n        b = 2\n')


class Meaning(unittest.TestCase):
    def test_integer_division_floors(self):
        g = run('a = 7 / 2\nb = 7.0 / 2\nc = -7 / 2\nd = 9\nd /= 2\ne = [8]\ne[0] /= 3\n')
        self.assertEqual((g['a'], g['b'], g['c'], g['d'], g['e']), (3, 3.5, -4, 4, [2]))
        g = run('from __future__ import division\na = 7 / 2\n')
        self.assertEqual(g['a'], 3.5)

    def test_dicts_as_python_2(self):
        g = run('d = {"a": 1}\n'
                'items = [k for k, v in d.iteritems()]\n'
                'has = d.has_key("a")\n'
                'keys = d.keys()\n'
                'keys.sort()\n'
                'both = d.items() + [("b", 2)]\n')
        self.assertEqual((g['items'], g['has'], g['keys'], g['both']),
                         (['a'], True, ['a'], [('a', 1), ('b', 2)]))

    def test_builtins(self):
        g = run('a = long("12") + 1\n'
                'b = isinstance("x", basestring)\n'
                'c = map(str, xrange(3))\n'
                'd = sorted([3, 1, 2], cmp=lambda x, y: cmp(y, x))\n'
                'e = reduce(lambda x, y: x + y, range(4))\n'
                'f = "text".decode("utf-8")\n'
                'g = unicode(5)\n')
        self.assertEqual([g[k] for k in 'abcdefg'],
                         [13, True, ['0', '1', '2'], [3, 2, 1], 6, 'text', '5'])

    def test_class_scope_helpers_are_not_mangled(self):
        g = run('class C(object):\n'
                '    def f(self):\n'
                '        return 9 / 2\n'
                'x = C().f()\n')
        self.assertEqual(g['x'], 4)

    def test_syntax_errors_keep_their_line(self):
        with self.assertRaises(SyntaxError) as e:
            translate.translate('x = 1\n\ny = (\n', 'bad.py')
        self.assertEqual(e.exception.filename, 'bad.py')


class Detection(unittest.TestCase):
    def test_python_2_markers(self):
        for src in ('print "x"\n', 'import urllib2\n', 'x = d.iteritems()\n',
                    'for i in xrange(3): pass\n', 'n = long(3)\n',
                    'try:\n  pass\nexcept Exception, e:\n  pass\n',
                    'from StringIO import StringIO\n', '# wdiamond: python2\nx = 1\n'):
            self.assertTrue(translate.is_python2(src), src)

    def test_python_3_stays(self):
        for src in ('print("x")\n', 'import urllib.request\n', 'x = 7 / 2\n',
                    'try:\n  pass\nexcept (ValueError, TypeError):\n  pass\n',
                    '# wdiamond: python3\nn = long(3)\n'):
            self.assertFalse(translate.is_python2(src), src)

    def test_every_token_comes_back(self):
        src = 'a = "x\\"y" + \'z\'  # c\nb = (1,\n     2)\\\n  + 3\n'
        self.assertEqual(''.join(t for _, t in translate.scan(src)), src)


if __name__ == '__main__':
    unittest.main()


class Modules(unittest.TestCase):
    def test_base64_speaks_text_to_python_2_only(self):
        from wdiamond.py2 import modules
        import base64
        modules.install()
        g = run('import base64\nx = base64.b64encode("guest:guest")\n'
                'y = base64.b64decode(x)\nz = base64.encodestring("a")\n')
        self.assertEqual((g['x'], g['y'], g['z']), ('Z3Vlc3Q6Z3Vlc3Q=', 'guest:guest', 'YQ==\n'))
        # Python 3 code keeps bytes.
        self.assertEqual(base64.b64encode(b'a'), b'YQ==')


class SecondTry(unittest.TestCase):
    def test_a_script_that_fails_as_python_3_runs_as_python_2(self):
        from wdiamond import loader
        # Python 3 parses it and finds no Python 2 name; it fails there.
        src = ('import diamond.collector\n'
               'ORDER = sorted([2, 1], cmp=lambda a, b: a - b)\n'
               'class NumaCollector(diamond.collector.Collector):\n'
               '    def collect(self):\n'
               '        self.publish("x", 7 / 2)\n')
        self.assertFalse(translate.is_python2(src))
        cls = loader.load(src, 'numa.py')
        self.assertEqual(cls.__name__, 'NumaCollector')
        # Marked Python 3: no second try, the first error stands.
        with self.assertRaises(loader.ScriptError) as e:
            loader.load('# wdiamond: python3\n' + src, 'numa.py')
        self.assertIn("'cmp' is an invalid keyword", str(e.exception))


class TableOptions(unittest.TestCase):
    def test_a_table_arrives_as_the_dict_diamond_gave(self):
        from wdiamond import loader
        cls = loader.load(
            'import diamond.collector\n'
            'class PortCollector(diamond.collector.Collector):\n'
            '    def get_default_config(self):\n'
            '        c = super(PortCollector, self).get_default_config()\n'
            '        c.update({"path": "port", "port": {}, "xenfix": None})\n'
            '        return c\n', 'port.py')
        options = dict((k, v) for k, v, _ in loader.describe(cls, 'port.py')[3])
        self.assertEqual(options['port'], ('text', '{}'))
        c = loader.configure(cls, {'port': '{"ssh": {"number": "22"}}', 'xenfix': ''})
        self.assertEqual(c.config['port'], {'ssh': {'number': '22'}})
        self.assertIsNone(c.config['xenfix'])
        with self.assertRaises(ValueError) as e:
            loader.configure(cls, {'port': '[1, 2]'})
        self.assertIn('is a table of options', str(e.exception))


class FilesystemPath(unittest.TestCase):
    def test_a_directory_as_path_stays_the_scripts_and_the_file_names_the_metrics(self):
        # Diamond's cpuacct_cgroup: `path` is the directory it walks.
        from wdiamond import loader
        cls = loader.load(
            'import diamond.collector\n'
            'class CpuAcctCgroupCollector(diamond.collector.Collector):\n'
            '    def get_default_config(self):\n'
            '        c = super(CpuAcctCgroupCollector, self).get_default_config()\n'
            '        c.update({"path": "/sys/fs/cgroup/cpuacct/"})\n'
            '        return c\n', '/c/cpuacct_cgroup/cpuacct_cgroup.py')
        name = loader.describe(cls, '/c/cpuacct_cgroup/cpuacct_cgroup.py')[0]
        self.assertEqual(name, 'cpuacct_cgroup')
        c = loader.configure(cls, {'path': 'cpuacct_cgroup'})
        self.assertEqual(c.config['path'], '/sys/fs/cgroup/cpuacct/')
        # A metric path (dotted, or '.') is the agent's as before.
        for path in ('aws.s3', '.', 'cpu'):
            self.assertFalse(loader._not_a_metric_path(path), path)
