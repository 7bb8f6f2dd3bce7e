"""graphs - the seeded task graphs of the benchmarks, as flowbus workflows and Makefiles.

A graph is a list of (name, [dependency names]) in topological order. The same
graph becomes a workflow of no-op `cmd` tasks (edges are `depends_on`) and a
Makefile of phony targets whose recipe is `true`, so `make -j2` runs exactly
the same graph of processes.
"""

import random


def chain(n):
    """n tasks, each depending on the one before."""
    return [(f"N{i}", [f"N{i - 1}"] if i else []) for i in range(n)]


def random_dag(n, seed, width=10):
    """n tasks in layers of `width`; each task past the first layer depends on
    one random task of the layer just before (so the critical path is the
    number of layers) and on 0-2 more random tasks of any earlier layer."""
    rng = random.Random(seed)
    nodes = []
    for i in range(n):
        layer = i // width
        deps = set()
        if layer > 0:
            prev = range((layer - 1) * width, layer * width)
            deps.add(rng.choice(prev))
            for _ in range(rng.randint(0, 2)):
                deps.add(rng.randrange(0, layer * width))
        nodes.append((f"N{i}", [f"N{d}" for d in sorted(deps)]))
    return nodes


def fan(branches=3, seconds=1):
    """FORK -> `branches` tasks sleeping `seconds` -> JOIN."""
    mids = [f"B{i}" for i in range(branches)]
    return ([("FORK", [])] + [(m, ["FORK"]) for m in mids] + [("JOIN", mids)],
            {m: ["/bin/sleep", str(seconds)] for m in mids})


def edges(graph):
    return sum(len(d) for _, d in graph)


def critical_path(graph):
    depth = {}
    for name, deps in graph:
        depth[name] = 1 + max((depth[d] for d in deps), default=0)
    return max(depth.values(), default=0)


def _yaml_list(items):
    return "[" + ", ".join(f'"{x}"' for x in items) + "]"


def workflow_yaml(graph, name, argv=None, runs_on=None):
    """A workflow of `cmd` tasks running /bin/true (or argv[name]), each placed
    on an agent with the label runs_on[name] where runs_on names one."""
    argv = argv or {}
    runs_on = runs_on or {}
    lines = ["workflow:", f'  name: "{name}"', "  tasks:"]
    for task, deps in graph:
        cmd = argv.get(task, ["/bin/true"])
        lines.append(f'    - name: "{task}"')
        lines.append('      plugin: "cmd"')
        if task in runs_on:
            lines.append(f'      runs_on: "{runs_on[task]}"')
        lines.append(f"      params: {{argv: {_yaml_list(cmd)}}}")
        if deps:
            lines.append(f"      depends_on: {_yaml_list(deps)}")
    return "\n".join(lines) + "\n"


def makefile(graph, argv=None):
    """The same graph for make: phony targets, recipe `true` (or argv[name])."""
    argv = argv or {}
    names = [t for t, _ in graph]
    has_dependent = {d for _, deps in graph for d in deps}
    sinks = [t for t in names if t not in has_dependent]
    out = [".PHONY: all " + " ".join(names), "all: " + " ".join(sinks)]
    for task, deps in graph:
        out.append(f"{task}: {' '.join(deps)}".rstrip())
        out.append("\t@" + " ".join(argv.get(task, ["true"])))
    return "\n".join(out) + "\n"


def hop_chain_yaml(n, gate_file, name="hop chain"):
    """GATE (touched: waits for gate_file) -> P1 -> ... -> Pn, all flowbus-benchprobe.

    Every probe has exactly one input, its predecessor's output, which carries
    the predecessor's publish time (see probe.c)."""
    lines = ["workflow:", f'  name: "{name}"', "  tasks:",
             '    - name: "GATE"', '      plugin: "touched"', '      outputs: ["X0"]',
             f'      params: {{file: "{gate_file}", timeout: 0}}']
    for i in range(1, n + 1):
        lines += [f'    - name: "P{i}"', '      plugin: "benchprobe"',
                  f'      inputs: ["X{i - 1}"]', f'      outputs: ["X{i}"]']
    return "\n".join(lines) + "\n"
