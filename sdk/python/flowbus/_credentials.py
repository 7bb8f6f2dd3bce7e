"""How a task gets its broker credentials (docs/protocol.md, "Credentials"), as the C SDK's
task_credentials.c does.

The coordinator never puts a password in a task's environment, which any process of the
same user can read in /proc/<pid>/environ. It passes an inherited pipe whose number is in
FLOWBUS_CREDENTIALS_FD, holding mosquitto_pub options-file lines ("-u USER", "-P PASSWORD");
the task reads it to the end and closes it before it starts anything. Before that, the
process makes itself non-dumpable (PR_SET_DUMPABLE 0), so the commands it runs cannot read
its memory, environment or descriptors in /proc.
"""

import os

from ._errors import SetupError

PR_SET_DUMPABLE = 4
MAX_CREDENTIALS = 4096


def protect():
    """Makes this process non-dumpable (best effort: without libc's prctl nothing changes)."""
    try:
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)
    except (OSError, AttributeError):
        pass


def read(environ):
    """(username, password) from the credentials pipe, or (None, None) without one.

    FLOWBUS_CREDENTIALS_FD and FLOWBUS_PASSWORD are removed from os.environ, so that no
    child of the task inherits them."""
    text = environ.get("FLOWBUS_CREDENTIALS_FD")
    for name in ("FLOWBUS_CREDENTIALS_FD", "FLOWBUS_PASSWORD"):
        os.environ.pop(name, None)
    if not text:
        return None, None
    try:
        fd = int(text)
    except ValueError:
        fd = -1
    if not 3 <= fd <= 1024:
        raise SetupError("FLOWBUS_CREDENTIALS_FD '%s' is not the number of an inherited "
                         "descriptor (3 to 1024)" % text)
    data = b""
    try:
        while True:
            chunk = os.read(fd, MAX_CREDENTIALS)
            if not chunk:
                break
            data += chunk
            if len(data) >= MAX_CREDENTIALS:
                raise SetupError("FLOWBUS_CREDENTIALS_FD %d holds more than %d bytes"
                                 % (fd, MAX_CREDENTIALS - 1))
    except OSError as e:
        raise SetupError("FLOWBUS_CREDENTIALS_FD %d: %s" % (fd, e.strerror))
    finally:
        try:
            os.close(fd)
        except OSError:
            pass
    user = password = None
    for line in data.decode("utf-8", "replace").split("\n"):
        if line.startswith("-u "):
            user = line[3:]
        elif line.startswith("-P "):
            password = line[3:]
    return user, password
