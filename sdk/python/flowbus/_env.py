"""The task's FLOWBUS_* environment (docs/protocol.md, "Starting a task process").

Env reads it once, checks names with the rules of flowbus/protocol.h and
raises SetupError with a message naming the variable, quoting what it holds
and saying what was expected, as the C SDK's task_env.c does.
"""

import json
import os
import re

from . import _credentials
from ._errors import SetupError

RUN_ID_RULE = re.compile(r"[A-Za-z0-9_-]{1,64}\Z")
VAR_RULE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}\Z")
# Task names: letters, digits, "_" and "-", not starting with "-" (fb_name_valid).
TASK_RULE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_-]{0,63}\Z")
DEFAULT_QUEUE = 100
MAX_QUEUE = 1000000
OVERFLOW_POLICIES = ("block", "drop-oldest", "drop-newest")
DEFAULT_RECONNECT_MAX = 30.0


def split_list(environ, name, rule, what):
    """The comma-separated names in variable name, each checked against rule."""
    names = []
    for item in environ.get(name, "").split(","):
        item = item.strip()
        if not item:
            continue
        if not rule.match(item):
            raise SetupError("%s: '%s' is not a valid %s" % (name, item, what))
        if item not in names:
            names.append(item)
    return names


def _whole(environ, name, default, low, high):
    text = environ.get(name, "")
    if not text:
        return default
    try:
        value = int(text, 10)
    except ValueError:
        value = None
    if value is None or not low <= value <= high:
        raise SetupError("%s '%s' is not a whole number from %d to %d" % (name, text, low, high))
    return value


def _seconds(environ, name, default):
    text = environ.get(name, "")
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value <= 86400 * 365:
        raise SetupError("%s '%s' is not a number of seconds" % (name, text))
    return value


class Env:
    """What flowbus told this task process, as attributes."""

    def __init__(self, environ=None):
        env = os.environ if environ is None else environ
        for name in ("FLOWBUS_BROKER", "FLOWBUS_RUN_ID", "FLOWBUS_TASK"):
            if not env.get(name):
                raise SetupError("%s is not set (this program is meant to be started by flowbus)" % name)
        self.broker = env["FLOWBUS_BROKER"]
        self.run_id = env["FLOWBUS_RUN_ID"]
        self.task = env["FLOWBUS_TASK"]
        if not RUN_ID_RULE.match(self.run_id):
            raise SetupError("FLOWBUS_RUN_ID '%s' is malformed ([A-Za-z0-9_-], 1-64 characters)"
                             % self.run_id)
        if not TASK_RULE.match(self.task):
            raise SetupError("FLOWBUS_TASK '%s' is malformed" % self.task)
        self.root = env.get("FLOWBUS_TOPIC_ROOT") or "flowbus/" + self.run_id
        self.plugin = env.get("FLOWBUS_PLUGIN", "")
        self.username = env.get("FLOWBUS_USERNAME") or None
        # FLOWBUS_PASSWORD only for a plugin started by hand; flowbus passes a pipe (_credentials).
        self.password = env.get("FLOWBUS_PASSWORD")
        user, password = _credentials.read(env)
        if user is not None:
            self.username = user
        if password is not None:
            self.password = password
        self.tls_ca = env.get("FLOWBUS_TLS_CA") or None
        self.tls_cert = env.get("FLOWBUS_TLS_CERT") or None
        self.tls_key = env.get("FLOWBUS_TLS_KEY") or None
        self.attempt = _whole(env, "FLOWBUS_ATTEMPT", 1, 1, 2**31 - 1)
        self.reconnect_max = _seconds(env, "FLOWBUS_RECONNECT_MAX", DEFAULT_RECONNECT_MAX)
        self.parent_pid = _whole(env, "FLOWBUS_PARENT_PID", 0, 0, 2**31 - 1)
        # The MQTT v5 message expiry of every retained publish, as the C SDK gives it; 0: none.
        self.expiry = _whole(env, "FLOWBUS_EXPIRY", 0, 0, 2**32 - 1)
        # The value limit (docs/protocol.md, "What a value is"), as the C SDK reads it.
        self.max_value = _whole(env, "FLOWBUS_MAX_VALUE", 256 * 1024, 1, 2**31 - 1)

        inputs = split_list(env, "FLOWBUS_INPUTS", VAR_RULE, "variable name")
        self.outputs = split_list(env, "FLOWBUS_OUTPUTS", VAR_RULE, "variable name")
        self.depends = split_list(env, "FLOWBUS_DEPENDS", TASK_RULE, "task name")
        self.secrets = split_list(env, "FLOWBUS_SECRETS", VAR_RULE, "variable name")
        # A secret that is not listed among the inputs is still an input.
        self.inputs = inputs + [s for s in self.secrets if s not in inputs]
        self.secret_values = {}
        for name in self.secrets:
            if name not in env:
                raise SetupError("secret input %s is listed in FLOWBUS_SECRETS but not set in the "
                                 "environment" % name)
            self.secret_values[name] = env[name]

        text = env.get("FLOWBUS_PARAMS") or "{}"
        try:
            self.params = json.loads(text)
        except ValueError as e:
            raise SetupError("FLOWBUS_PARAMS: %s" % e)
        if not isinstance(self.params, dict):
            raise SetupError("FLOWBUS_PARAMS is not a JSON object")

        mode = env.get("FLOWBUS_MODE") or "oneshot"
        if mode not in ("oneshot", "reactive"):
            raise SetupError("FLOWBUS_MODE '%s' is not 'oneshot' or 'reactive'" % mode)
        self.reactive = mode == "reactive"
        self.queue = _whole(env, "FLOWBUS_QUEUE", DEFAULT_QUEUE, 1, MAX_QUEUE)
        # What a full queue does, as in the C SDK: block (the default), drop-oldest, drop-newest.
        self.overflow = env.get("FLOWBUS_OVERFLOW") or "block"
        if self.reactive and self.overflow not in OVERFLOW_POLICIES:
            raise SetupError("FLOWBUS_OVERFLOW '%s' is not 'block', 'drop-oldest' or 'drop-newest'"
                             % self.overflow[:64])
        self.workers = _whole(env, "FLOWBUS_WORKERS", 1, 1, 1024)
        self.worker = _whole(env, "FLOWBUS_WORKER", 1, 1, self.workers)
        triggers = split_list(env, "FLOWBUS_TRIGGERS", VAR_RULE, "variable name")
        for t in triggers:
            if t not in self.inputs or t in self.secrets:
                raise SetupError("FLOWBUS_TRIGGERS: %s is not %s" % (
                    t, "one of the task's inputs" if t not in self.inputs else
                    "allowed: a secret input cannot trigger (it is not on the bus)"))
        # Without FLOWBUS_TRIGGERS every input on the bus is a trigger.
        self.triggers = triggers or [i for i in self.inputs if i not in self.secrets]

    def topic(self, rest):
        """A topic of this run: <root>/<rest>."""
        return "%s/%s" % (self.root, rest)

    @property
    def state_topic(self):
        return self.topic("tasks/%s/state" % self.task)

    @property
    def log_topic(self):
        return self.topic("tasks/%s/log" % self.task)

    def hostport(self):
        """(host, port, tls) from FLOWBUS_BROKER (tcp://, mqtt://, mqtts://, ssl://)."""
        scheme, sep, rest = self.broker.partition("://")
        if not sep or scheme not in ("tcp", "mqtt", "mqtts", "ssl"):
            raise SetupError("FLOWBUS_BROKER '%s' is not a tcp://, mqtt://, mqtts:// or ssl:// URL"
                             % self.broker)
        tls = scheme in ("mqtts", "ssl")
        hostport = rest.split("/", 1)[0]
        if hostport.startswith("["):
            host, _, port = hostport[1:].partition("]")
            port = port[1:] if port.startswith(":") else ""
        else:
            host, _, port = hostport.rpartition(":")
            if not host:
                host, port = port, ""
        if not port:
            port = "8883" if tls else "1883"
        if not host or not port.isdigit():
            raise SetupError("cannot read host:port in FLOWBUS_BROKER '%s'" % self.broker)
        return host, int(port), tls
