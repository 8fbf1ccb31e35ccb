"""Runs the Python runtime's native tests and ends with a cargo-style
summary line (``test result: python. N passed; M failed``) for
scripts/test's total. Exits 1 when a test failed or none ran."""

import os
import sys
import unittest

suite = unittest.defaultTestLoader.discover(os.path.dirname(os.path.abspath(__file__)))
result = unittest.TextTestRunner(verbosity=1).run(suite)
failed = len(result.failures) + len(result.errors) + len(result.unexpectedSuccesses)
print('test result: python. %d passed; %d failed'
      % (result.testsRun - failed, failed if result.testsRun else 1))
sys.exit(0 if result.testsRun and not failed else 1)
