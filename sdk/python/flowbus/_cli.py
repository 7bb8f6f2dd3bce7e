"""A plugin's command line: --describe, --help, --version, as tasks/common/plugin_cli.c does it.

Every plugin executable answers these three without a broker and exits 0;
any other argument prints the usage on stderr and exits 2. Without
arguments the plugin runs as a task.
"""

import json
import os
import sys

from ._errors import EXIT_OK, EXIT_SETUP


def handle_args(cls, argv):
    """Returns if the plugin should run as a task; otherwise prints and exits."""
    from . import __version__
    if len(argv) < 2:
        return
    name = cls.plugin_name()
    usage = "usage: flowbus-%s [--describe | --help | --version]\n" % name
    args = argv[1:]
    if args == ["--describe"]:
        sys.stdout.write(json.dumps(cls.manifest(), separators=(",", ":")) + "\n")
    elif args in (["--help"], ["-h"]):
        text = usage + (cls.description() + "\n" if cls.description() else "")
        m = cls.manifest()
        if m["inputs"] or m["outputs"]:
            text += "Inputs: %s. Outputs: %s.\n" % (", ".join(m["inputs"]) or "none",
                                                    ", ".join(m["outputs"]) or "none")
        for pname, spec in m["params"].items():
            text += "  param %s (%s, default %s)%s\n" % (
                pname, spec["type"], json.dumps(spec["default"]),
                ": " + spec["description"] if spec["description"] else "")
        if m["permissions"]:
            text += "Needs the permissions %s when auth is in use.\n" % ", ".join(m["permissions"])
        sys.stdout.write(text)
    elif args == ["--version"]:
        sys.stdout.write("flowbus-%s %s\n" % (name, cls.VERSION or __version__))
    else:
        sys.stderr.write(usage + "flowbus-%s is started by flowbus with its task in FLOWBUS_* "
                         "variables.\n" % name)
        sys.stdout.flush()
        os._exit(EXIT_SETUP)
    sys.stdout.flush()
    os._exit(EXIT_OK)
