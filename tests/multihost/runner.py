"""runner - runs one multi-host test module for CTest.

    python3 runner.py MODULE

Like `python3 -m unittest -v MODULE`, except that a module whose every test
was skipped exits 77, which CTest (SKIP_RETURN_CODE) reports as "Skipped"
with the reasons in its output, instead of a pass that proved nothing: on a
machine without network namespaces, or before `flowbus agent` exists.
"""

import sys
import unittest


def main():
    module = sys.argv[1]
    suite = unittest.defaultTestLoader.loadTestsFromName(module)
    result = unittest.TextTestRunner(verbosity=2).run(suite)
    if not result.wasSuccessful():
        return 1
    if result.testsRun == 0 or len(result.skipped) == result.testsRun:
        reasons = sorted({reason for _, reason in result.skipped})
        print(f"{module}: skipped: {'; '.join(reasons) or 'no tests'}")
        return 77
    return 0


if __name__ == "__main__":
    sys.exit(main())
