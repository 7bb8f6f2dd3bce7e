"""The class a plugin subclasses: its attributes, its manifest and its params.

Task describes a plugin (NAME, DESCRIPTION, CATEGORY, INPUTS, OUTPUTS,
PARAMS, REQUIRES_AUTH, REQUIRED_PERMISSIONS, VERSION) and holds its
execute(); _task.py runs it as a task process. manifest() is the --describe
object in the shape of the C built-ins (docs/protocol.md, "The manifest").
"""

import json
import os
import sys

from ._errors import Failed

PARAM_TYPES = {
    "string": (str,),
    "number": (int, float),
    "integer": (int,),
    "boolean": (bool,),
    "array": (list,),
    "object": (dict,),
}

class Task:
    """Subclass this; set the attributes below and define execute().

    NAME                  plugin name without "flowbus-" (default: from the executable's name)
    DESCRIPTION           one line for --describe and --help (default: the class's docstring)
    CATEGORY              optional, for palettes ("storage", "system", ...)
    INPUTS, OUTPUTS       the default variable names a workflow usually declares
    PARAMS                {"name": {"type": "string", "default": "/", "description": "..."}}
                          or {"name": default}; types: string, number, integer, boolean, array, object
    REQUIRES_AUTH         True: no AUTH_TOKEN means "denied", whatever the workflow says
    REQUIRED_PERMISSIONS  names the token must be granted (checked once a token is given)
    VERSION               for --version (default: the SDK's version)

    While execute() runs: self.params (PARAMS' defaults overridden by the
    workflow's params), self.task (the task's name), self.run_id,
    self.activation (1, 2, ... in reactive mode; 1 in one-shot mode),
    self.trigger (the input that fired the activation, or None), self.reactive,
    self.input_names and self.output_names (the workflow's lists for this task).
    """

    NAME = None
    DESCRIPTION = None
    CATEGORY = None
    INPUTS = []
    OUTPUTS = []
    PARAMS = {}
    REQUIRES_AUTH = False
    REQUIRED_PERMISSIONS = []
    VERSION = None

    def execute(self, inputs):
        """Does the work on inputs (name -> text); returns a dict of outputs (name -> value).

        Raise an exception (Failed to pick the exit code) to fail.
        """
        raise NotImplementedError("%s does not define execute(self, inputs)" % type(self).__name__)

    def log(self, message):
        """Publishes message on the task's log topic, one line per message, secrets masked."""
        engine = getattr(self, "_engine", None)
        if engine is None:
            sys.stderr.write("%s\n" % message)
            return
        engine.log(str(message))

    # ------------------------------------------------------------ manifest

    @classmethod
    def plugin_name(cls):
        if cls.NAME:
            return cls.NAME
        exe = os.path.basename(sys.argv[0] if sys.argv and sys.argv[0] else "")
        if exe.startswith("flowbus-") and len(exe) > len("flowbus-"):
            return exe[len("flowbus-"):]
        return cls.__name__.lower()

    @classmethod
    def description(cls):
        if cls.DESCRIPTION:
            return cls.DESCRIPTION
        doc = (cls.__doc__ or "").strip()
        return doc.splitlines()[0] if doc else ""

    @classmethod
    def param_specs(cls):
        """PARAMS in the long form: name -> {"type", "default", "description"}."""
        specs = {}
        for name, spec in (cls.PARAMS or {}).items():
            if isinstance(spec, dict) and ("type" in spec or "default" in spec):
                full = {"type": spec.get("type"), "default": spec.get("default"),
                        "description": spec.get("description", "")}
            else:
                full = {"type": _type_of(spec), "default": spec, "description": ""}
            if full["type"] is None:
                full["type"] = _type_of(full["default"]) or "string"
            if full["type"] not in PARAM_TYPES:
                raise TypeError("PARAMS[%r]: type %r is not one of %s" % (
                    name, full["type"], ", ".join(PARAM_TYPES)))
            specs[name] = full
        return specs

    @classmethod
    def manifest(cls):
        """The --describe object, in the shape of the C built-ins (docs/protocol.md)."""
        m = {"name": cls.plugin_name(), "description": cls.description(),
             "inputs": list(cls.INPUTS), "outputs": list(cls.OUTPUTS),
             "params": cls.param_specs(), "permissions": list(cls.REQUIRED_PERMISSIONS)}
        if cls.CATEGORY:
            m["category"] = cls.CATEGORY
        if cls.REQUIRES_AUTH:
            m["requires_auth"] = True
        return m


def _type_of(value):
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    for name, kinds in (("string", (str,)), ("array", (list,)), ("object", (dict,))):
        if isinstance(value, kinds):
            return name
    return None


def read_params(cls, given):
    """PARAMS' defaults overridden by the workflow's params; raises Failed on a wrong type."""
    specs = cls.param_specs()
    params = {name: spec["default"] for name, spec in specs.items()}
    for name, value in given.items():
        spec = specs.get(name)
        if spec is not None and value is not None:
            kinds = PARAM_TYPES[spec["type"]]
            wrong = not isinstance(value, kinds) or (bool not in kinds and isinstance(value, bool))
            if wrong:
                raise Failed("param %s is %s; expected %s %s" % (
                    name, json.dumps(value)[:100], "an" if spec["type"][0] in "aeio" else "a",
                    spec["type"]))
        params[name] = value
    return params
