#!/usr/bin/env python3
# The plugin of issue 15, as its author writes it; the test runs it with
# /usr/bin/python3 and PYTHONPATH=<build>/share/flowbus/python.
from flowbus import Task, run
class Backup(Task):
    REQUIRES_AUTH = True
    REQUIRED_PERMISSIONS = ["can_backup", "can_read_storage"]
    def execute(self, inputs):
        return {"BACKUP_STATUS": "success"}
run(Backup)
