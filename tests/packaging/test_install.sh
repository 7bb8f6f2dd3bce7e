#!/usr/bin/env bash
# test_install.sh BUILD_DIR [SOURCE_DIR] - checks `cmake --install` end to end.
#
# Installs BUILD_DIR into a fresh prefix under a temporary directory, then:
#  - every file README.md's "Installing" table promises is there;
#  - the minimal C plugin of README.md's "Writing a plugin" section (extracted
#    from the README itself, so the check and the docs cannot drift) compiles
#    with -Wall -Wextra -Werror and the flags of the installed flowbus.pc;
#  - the installed bin/flowbus, with nothing of the build tree on any path
#    (env -i), runs a workflow of the installed start/end plugins, which it
#    must find in <prefix>/libexec/flowbus, and one of the example plugin
#    (found through FLOWBUS_PLUGIN_PATH), with its private broker.
# Every check runs even after a failure; the last line is "N passed, M failed"
# and the exit status is 1 if anything failed.
set -uo pipefail

if [ $# -lt 1 ] || [ ! -f "$1/CMakeCache.txt" ]; then
  echo "usage: test_install.sh BUILD_DIR [SOURCE_DIR]  (BUILD_DIR: a configured and built tree)" >&2
  exit 2
fi
build=$(cd "$1" && pwd)
src=${2:-$(cd "$(dirname "$0")/../.." && pwd)}

tmp=$(mktemp -d "${TMPDIR:-/tmp}/fbinstall.XXXXXX") || exit 2
trap 'rm -rf "$tmp"' EXIT
prefix=$tmp/prefix
passed=0
failed=0

ok() { echo "ok:   $1"; passed=$((passed + 1)); }
bad() { echo "FAIL: $1"; failed=$((failed + 1)); }
# check DESCRIPTION COMMAND...: one check, counted.
check() { if "${@:2}"; then ok "$1"; else bad "$1"; fi; }
show() { sed 's/^/    | /' "$1"; } # indents a file's text under a FAIL line

finish() {
  echo "$passed passed, $failed failed"
  [ "$failed" -eq 0 ]
  exit $?
}

# The environment every installed program runs in: nothing inherited, so no
# path can lead to the build tree (mosquitto is in /usr/sbin on Debian).
clean_env=(env -i "PATH=/usr/local/bin:/usr/bin:/bin:/usr/local/sbin:/usr/sbin:/sbin"
  "HOME=$tmp" "TMPDIR=$tmp/tmp" "LANG=C.UTF-8")
mkdir -p "$tmp/tmp" "$tmp/plugins" "$tmp/run"

# ---------------------------------------------------------------- install
if cmake --install "$build" --prefix "$prefix" > "$tmp/install.log" 2>&1; then
  ok "cmake --install $build --prefix <tmp>/prefix"
else
  bad "cmake --install $build --prefix <tmp>/prefix"
  show "$tmp/install.log"
  finish
fi

# ------------------------------------------------------------ the files
check "bin/flowbus is an executable" test -x "$prefix/bin/flowbus"
for p in start end df touched cmd shout upper; do
  check "libexec/flowbus/flowbus-$p is an executable" test -x "$prefix/libexec/flowbus/flowbus-$p"
done
libdir=$(dirname "$(find "$prefix" -maxdepth 3 -name 'libflowbus.so' -print -quit)")
case "$libdir" in
"$prefix"/lib*) ok "lib*/libflowbus.so is installed (${libdir#"$prefix"/})" ;;
*) bad "lib*/libflowbus.so is installed"; libdir=$prefix/lib ;;
esac
soname=$(readelf -d "$libdir/libflowbus.so" 2>/dev/null | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')
check "the SONAME link ${soname:-(none)} is installed next to libflowbus.so" \
  test -n "$soname" -a -e "$libdir/$soname"
check "include/flowbus/flowbus.h is the source's header" \
  cmp -s "$prefix/include/flowbus/flowbus.h" "$src/sdk/include/flowbus/flowbus.h"
pcdir=$libdir/pkgconfig
check "${pcdir#"$prefix"/}/flowbus.pc is installed" test -f "$pcdir/flowbus.pc"
check "include/flowbus/protocol.h is the source's header" \
  cmp -s "$prefix/include/flowbus/protocol.h" "$src/sdk/include/flowbus/protocol.h"
check "share/flowbus/python/flowbus/__init__.py (the Python SDK)" \
  test -f "$prefix/share/flowbus/python/flowbus/__init__.py"
for w in "$src"/workflows/*.yaml; do
  check "share/flowbus/workflows/${w##*/} is the source's" \
    cmp -s "$w" "$prefix/share/flowbus/workflows/${w##*/}"
done
check "share/flowbus/broker-config/secure.conf" test -f "$prefix/share/flowbus/broker-config/secure.conf"
check "share/flowbus/systemd/flowbus@.service" test -f "$prefix/share/flowbus/systemd/flowbus@.service"
for d in README.md docs/protocol.md docs/workflow-format.md; do
  check "share/doc/flowbus/${d##*/}" cmp -s "$src/$d" "$prefix/share/doc/flowbus/${d##*/}"
done

# ------------------------------------------------------ scripts/install
# What it would run (a real run is a Release build: too slow for a test).
"$src/scripts/install" --dry-run --prefix "$tmp/p2" > "$tmp/si.out" 2>&1
check "scripts/install --prefix P --dry-run ends with cmake --install ... --prefix P" \
  grep -qx "cmake --install $src/build-release --prefix $tmp/p2 *" "$tmp/si.out"
check "  ... and builds with RPATH P/lib (a prefix outside the loader's paths)" \
  grep -q -- "-DCMAKE_INSTALL_RPATH=$tmp/p2/lib" "$tmp/si.out"
"$src/scripts/install" --dry-run --deb > "$tmp/sideb.out" 2>&1
check "scripts/install --deb --dry-run builds the package with cpack -G DEB" \
  grep -q "^cpack .* -G DEB" "$tmp/sideb.out"
check "  ... and installs it with apt-get" \
  grep -q "apt-get install -y $src/build-release/flowbus_.*\.deb" "$tmp/sideb.out"
"$src/scripts/install" --bogus > /dev/null 2>&1
check "scripts/install refuses an unknown option (exit 2)" test $? -eq 2

# --------------------------------------------- the README's C plugin
# The first ```c block after the heading "## Writing a plugin".
awk '/^## / { in_section = ($0 == "## Writing a plugin") }
     in_section && !done && /^```c$/ { copying = 1; next }
     copying && /^```$/ { copying = 0; done = 1 }
     copying { print }' "$src/README.md" > "$tmp/plugins/flowbus-greet.c"
check "README.md's \"Writing a plugin\" has a C block with main()" \
  grep -q 'int main' "$tmp/plugins/flowbus-greet.c"
plugin_name=$(sed -n '1s|^/\* flowbus-\([a-z0-9_-]*\):.*|\1|p' "$tmp/plugins/flowbus-greet.c")
check "the README plugin names itself flowbus-greet in its first line" test "$plugin_name" = greet

if flags=$(PKG_CONFIG_PATH=$pcdir pkg-config --cflags --libs flowbus 2> "$tmp/pc.err"); then
  ok "pkg-config --cflags --libs flowbus: $flags"
else
  bad "pkg-config --cflags --libs flowbus"
  show "$tmp/pc.err"
fi
# A relocated install must point at itself, not at the prefix the tree was
# configured with; otherwise the compiler finds another (or no) flowbus. The
# directories are compared resolved: ${pcfiledir}/../.. is as good as the path.
flag_dir() { # flag_dir -I|-L: the resolved directory of that flag in $flags
  local word
  for word in $flags; do
    case "$word" in "$1"*) realpath -m "${word#"$1"}"; return ;; esac
  done
}
if [ "$(flag_dir -I)" = "$(realpath "$prefix/include")" ] &&
  [ "$(flag_dir -L)" = "$(realpath "$libdir")" ]; then
  ok "flowbus.pc points into the install prefix"
else
  bad "flowbus.pc points into the install prefix (-I$prefix/include -L$libdir), got: $flags"
  show "$pcdir/flowbus.pc"
  # Go on with the right directories, so the checks below still say something.
  flags=$(PKG_CONFIG_PATH=$pcdir pkg-config --define-variable=includedir="$prefix/include" \
    --define-variable=libdir="$libdir" --cflags --libs flowbus)
  echo "      (the checks below use $flags instead)"
fi
# A sanitized SDK needs sanitized callers: the runtime must come first.
sanitize=$(sed -n 's/^FLOWBUS_SANITIZE:STRING=//p' "$build/CMakeCache.txt")
extra=()
[ -n "$sanitize" ] && extra=("-fsanitize=$sanitize")
# shellcheck disable=SC2086 # $flags is a list of words, as from $(pkg-config ...)
if (cd "$tmp/plugins" && cc -Wall -Wextra -Werror "${extra[@]}" flowbus-greet.c \
  -o flowbus-greet $flags) > "$tmp/cc.log" 2>&1; then
  ok "the README plugin compiles with cc -Wall -Wextra -Werror${extra:+ ${extra[*]}} \$(pkg-config ...)"
else
  bad "the README plugin compiles with cc -Wall -Wextra -Werror \$(pkg-config ...)"
  show "$tmp/cc.log"
fi

# ------------------------------------------------- the installed flowbus
flowbus=("${clean_env[@]}" "LD_LIBRARY_PATH=$libdir" timeout 60 "$prefix/bin/flowbus")

if "${flowbus[@]}" --version > "$tmp/version.log" 2>&1; then
  ok "installed flowbus --version: $(head -n 1 "$tmp/version.log")"
else
  bad "installed flowbus --version"
  show "$tmp/version.log"
fi

# run NAME EXPECTED_EXIT [ENV...] -- ARGS: runs the installed flowbus in
# $tmp/run with --json; its output is in $tmp/NAME.out and .err.
run() {
  local name=$1 want=$2 rc
  shift 2
  local env=()
  while [ "$1" != -- ]; do env+=("$1"); shift; done
  shift
  (cd "$tmp/run" && "${clean_env[@]}" "LD_LIBRARY_PATH=$libdir" "${env[@]}" timeout 60 \
    "$prefix/bin/flowbus" run "$@" --json) > "$tmp/$name.out" 2> "$tmp/$name.err"
  rc=$?
  if [ "$rc" -eq "$want" ]; then
    return 0
  fi
  echo "    flowbus run $* exited $rc, expected $want"
  show "$tmp/$name.err"
  tail -n 3 "$tmp/$name.out" | sed 's/^/    | /'
  return 1
}

# The last --json line of a run: {"event":"run",...,"tasks":{NAME:{"state":..}}}.
task_state() { # task_state NAME TASK
  tail -n 1 "$tmp/$1.out" | grep -o "\"$2\":{\"state\":\"[a-z]*\"" | sed 's/.*"state":"\(.*\)"/\1/'
}
var_value() { # var_value NAME VAR: the value of a --json var event
  grep "\"event\":\"var\"" "$tmp/$1.out" | grep "\"name\":\"$2\"" |
    sed -n 's/.*"value":"\([^"]*\)".*/\1/p' | head -n 1
}

cat > "$tmp/start-end.yaml" << 'EOF'
workflow:
  name: "installed start and end"
  tasks:
    - name: START
      plugin: start
      outputs: [TRUE]
    - name: END
      plugin: end
      inputs: [TRUE]
EOF
check "the installed flowbus runs the installed start and end (libexec/flowbus)" \
  run start-end 0 -- "$tmp/start-end.yaml"
check "  ... and END is done" test "$(task_state start-end END)" = "done"

# A plugin that exists only in <prefix>/libexec/flowbus proves that this
# directory, and not one compiled in for another prefix, is searched.
printf '#!/bin/sh\nexit 0\n' > "$prefix/libexec/flowbus/flowbus-only-here"
chmod +x "$prefix/libexec/flowbus/flowbus-only-here"
cat > "$tmp/only-here.yaml" << 'EOF'
workflow:
  name: "a plugin only in the install's libexec"
  tasks:
    - name: HERE
      plugin: only-here
EOF
check "the installed flowbus searches <prefix>/libexec/flowbus" run only-here 0 -- "$tmp/only-here.yaml"

cat > "$tmp/greet.yaml" << 'EOF'
workflow:
  name: "the README's example plugin"
  env:
    NAME: "install test"
  tasks:
    - name: GREET
      plugin: greet
      inputs: [NAME]
      outputs: [GREETING]
EOF
check "the README plugin runs under the installed flowbus (FLOWBUS_PLUGIN_PATH)" \
  run greet 0 "FLOWBUS_PLUGIN_PATH=$tmp/plugins" -- "$tmp/greet.yaml"
check "  ... and sets GREETING='Hello, install test!'" \
  test "$(var_value greet GREETING)" = "Hello, install test!"

cat > "$tmp/all.yaml" << 'EOF'
workflow:
  name: "installed plugins and the README's example together"
  env:
    NAME: "install test"
  tasks:
    - name: START
      plugin: start
      outputs: [TRUE]
    - name: GREET
      plugin: greet
      inputs: [NAME, TRUE]
      outputs: [GREETING]
    - name: SHOUT
      plugin: shout
      inputs: [GREETING]
      outputs: [SHOUTED]
    - name: END
      plugin: end
      inputs: [SHOUTED]
EOF
check "start -> greet -> shout -> end, installed flowbus and plugins" \
  run all 0 "FLOWBUS_PLUGIN_PATH=$tmp/plugins" -- "$tmp/all.yaml"
check "  ... and SHOUTED='HELLO, INSTALL TEST!!'" \
  test "$(var_value all SHOUTED)" = "HELLO, INSTALL TEST!!"

# The private brokers and every task process are gone: they all had the
# runs' TMPDIR in their environment (this script and grep do not).
left=$(grep -l -s -z -x -F "TMPDIR=$tmp/tmp" /proc/[0-9]*/environ 2> /dev/null || true)
check "no process of the runs is left" test -z "$left"

finish
