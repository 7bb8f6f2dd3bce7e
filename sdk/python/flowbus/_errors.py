"""The exceptions of the flowbus Python SDK.

A plugin raises Failed (or any other exception) from execute() to fail the
task or the activation; the SDK raises Denied and SetupError itself and turns
them into the state "denied" (exit 77) and exit code 2.
"""

# Exit codes, as the C plugins use them (tasks/common/plugin_cli.h) and
# FB_EXIT_DENIED (sdk/include/flowbus/protocol.h).
EXIT_OK = 0
EXIT_FAILED = 1
EXIT_SETUP = 2
EXIT_LOST = 3
EXIT_DENIED = 77


class FlowbusError(Exception):
    """The base of every exception the SDK defines."""


class SetupError(FlowbusError):
    """The task cannot be opened: a bad environment, no broker. The process exits 2."""


class Denied(FlowbusError):
    """The permission check refused the task; the message is the one-line reason.

    The reason never contains the token (docs/security.md, "Failing closed").
    """


class Failed(FlowbusError):
    """Raised by execute() to fail with a chosen exit code (default 1).

    Any other exception fails the same way with exit code 1; Failed only
    lets the plugin pick the code, as fb_task_fail does in C.
    """

    def __init__(self, message, exit_code=EXIT_FAILED):
        super().__init__(message)
        self.exit_code = int(exit_code)


class Lost(FlowbusError):
    """The broker went away for longer than FLOWBUS_RECONNECT_MAX. The process exits 3."""
