"""Unit tests of {{module}}.py's parsing, natively: `python3 -m unittest`."""

import os
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), 'wdiamond-python'))

from {{module}} import parse_uptime  # noqa: E402


class ParseUptime(unittest.TestCase):
    def test_two_numbers(self):
        self.assertEqual(parse_uptime('350735.47 234388.90\n'), (350735.47, 234388.90))

    def test_garbage_is_an_error(self):
        with self.assertRaises(ValueError):
            parse_uptime('')


if __name__ == '__main__':
    unittest.main()
