"""flowbus - write a flowbus plugin in Python as a class (docs/python-sdk.md).

    #!/usr/bin/python3
    from flowbus import Task, run

    class Greet(Task):
        INPUTS = ["NAME"]
        OUTPUTS = ["GREETING"]
        def execute(self, inputs):
            return {"GREETING": "Hello, %s!" % inputs["NAME"]}

    run(Greet)

Pure Python on Debian's python3-paho-mqtt (1.6). The modules, one concern
each: _env (the FLOWBUS_* environment), _bus (the paho connection),
_permissions (the Attica check and the run's cache), _plugin (the Task
class: attributes, manifest, params), _task (the state protocol that runs
it), _cli (--describe, --help, --version).
"""

__version__ = "0.1.0"  # the flowbus release (CMakeLists.txt, project VERSION)

from ._errors import (EXIT_DENIED, EXIT_FAILED, EXIT_LOST, EXIT_OK, EXIT_SETUP, Denied, Failed,
                      FlowbusError, Lost, SetupError)
from ._plugin import Task
from ._task import run

__all__ = ["Task", "run", "FlowbusError", "Failed", "Denied", "SetupError", "Lost",
           "EXIT_OK", "EXIT_FAILED", "EXIT_SETUP", "EXIT_LOST", "EXIT_DENIED", "__version__"]
