"""pyprobe - a plugin on the Python SDK for tests/sdk/test_python_sdk.py.

What it does is chosen by the param "mode":
    upper     the first input in upper case into every output (the default)
    fail      raises ValueError("boom: <first input>")
    failcode  raises Failed("chosen", 5)
    leak      logs the secret input and AUTH_TOKEN (self.log), then fails
              with them in the message
    secretout returns the secret input as an output
    spam      logs "line 1" ... "line <count>" (self.log), then upper as above
    silent    upper as above, without the log line of each activation (floods)
In reactive mode an input value "fail" fails that activation.
The test runs it with /usr/bin/python3 and PYTHONPATH=<build>/share/flowbus/python.
"""

import os

from flowbus import Failed, Task, run


class Probe(Task):
    """A test plugin on the Python SDK"""

    NAME = "pyprobe"
    CATEGORY = "test"
    INPUTS = ["TEXT"]
    OUTPUTS = ["OUT"]
    PARAMS = {
        "mode": {"type": "string", "default": "upper", "description": "what to do"},
        "count": 3,
    }
    REQUIRED_PERMISSIONS = ["can_probe"]

    def execute(self, inputs):
        mode = self.params["mode"]
        first = inputs.get(self.input_names[0], "") if self.input_names else ""
        if mode == "fail" or first == "fail":
            raise ValueError("boom: %s" % first)
        if mode == "failcode":
            raise Failed("chosen", 5)
        secrets = [os.environ.get(s, "") for s in os.environ.get("FLOWBUS_SECRETS", "").split(",") if s]
        if mode == "leak":
            for s in secrets + [os.environ.get("AUTH_TOKEN", "")]:
                self.log("the secret is %s" % s)
            raise RuntimeError("failing with %s" % " ".join(secrets))
        if mode == "secretout":
            return {o: secrets[0] for o in self.output_names}
        if mode == "spam":
            for i in range(1, self.params["count"] + 1):
                self.log("line %d" % i)
        elif mode != "silent":
            self.log("activation %d trigger %s" % (self.activation, self.trigger))
        return {o: (first or "").upper() for o in self.output_names}


run(Probe)
