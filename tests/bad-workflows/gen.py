#!/usr/bin/python3
"""Writes the bad workflows too large to commit into the directory given.

Each NAME.yaml written here has its NAME.expected committed next to this
script; run.py calls this first and then checks the generated files like the
committed ones. The output is deterministic.
"""
import os
import sys

HEAD = "workflow:\n  name: big\n  tasks:\n"
MB = 1024 * 1024
DEPTH = 10000


def files():
    # A 1 MB scalar where a number is expected: the message quotes only its start.
    yield "huge-scalar-timeout", (
        HEAD + "    - {name: A, plugin: start, execution: {timeout: \"" + "9" * MB + "\"}}\n")
    # A 1 MB task name: the message must not repeat the megabyte.
    yield "huge-scalar-name", HEAD + "    - {name: " + "N" * MB + ", plugin: start}\n"
    # A valid 1 MB description, then an error: positions after it are still right.
    yield "huge-scalar-then-error", (
        HEAD + "    - name: A\n      plugin: start\n      description: \"" + "d" * MB + "\"\n"
        "    - {name: B, plugin: end, inputs: [NEVER]}\n")
    # 10,000 levels of flow sequences, as the whole document and inside params.
    yield "deep-flow-top", "[" * DEPTH + "]" * DEPTH + "\n"
    yield "deep-flow-params", (
        HEAD + "    - {name: A, plugin: start, params: {x: " + "[" * DEPTH + "]" * DEPTH + "}}\n")
    # 10,000 levels of flow mappings under 'workflow'.
    yield "deep-flow-mappings", "workflow: " + "{a: " * DEPTH + "x" + "}" * DEPTH + "\n"
    # 10,000 levels of block sequences ("- - - x" nests one level per dash).
    yield "deep-block-params", (
        HEAD + "    - name: A\n      plugin: start\n      params:\n        x:\n          "
        + "- " * DEPTH + "x\n")
    yield "deep-block-top", "- " * DEPTH + "x\n"
    # A 10 MB file: 100,000 valid tasks chained by variables, then one task
    # whose input nobody sets.
    lines = [HEAD, "    - {name: T0, plugin: start, outputs: [V0]}\n"]
    size = sum(len(s) for s in lines)
    i = 1
    while size < 10 * MB:
        line = "    - {name: T%d, plugin: shout, inputs: [V%d], outputs: [V%d]}\n" % (i, i - 1, i)
        lines.append(line)
        size += len(line)
        i += 1
    lines.append("    - {name: LAST, plugin: end, inputs: [V%d, MISSING]}\n" % (i - 1))
    yield "big-10mb", "".join(lines)


def write_all(out):
    """Writes every generated input into out, skipping those already there."""
    os.makedirs(out, exist_ok=True)
    for name, text in files():
        path = os.path.join(out, name + ".yaml")
        if os.path.exists(path) and os.path.getsize(path) == len(text):
            continue
        with open(path + ".tmp", "w", encoding="ascii") as f:
            f.write(text)
        os.replace(path + ".tmp", path)


if __name__ == "__main__":
    write_all(sys.argv[1] if len(sys.argv) > 1 else ".")
