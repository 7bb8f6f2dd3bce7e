#!/usr/bin/env bash
# test_deb.sh BUILD_DIR [SOURCE_DIR] - checks the Debian package end to end.
#
# Builds the package of BUILD_DIR with CPack (cmake/packaging.cmake) into a
# temporary directory, then:
#  - its control fields (dpkg-deb -I): name, version, the dependencies a clean
#    Debian needs (mosquitto, and Paho and libcurl, which libflowbus opens with
#    dlopen, so dpkg-shlibdeps cannot find them);
#  - its contents (dpkg-deb -c): every file of README.md's "Installing" table
#    under /usr, the documents and workflows under share/, nothing outside
#    /usr, nothing owned by anyone but root, no path of the build tree;
#  - unpacked into a scratch root (dpkg -x: no dpkg database, no root needed),
#    the packaged flowbus, with nothing of the build tree on any path (env -i),
#    runs the packaged disk monitor workflow with its packaged plugins and its
#    private broker, and writes disk-report.txt.
# Every check runs even after a failure; the last line is "N passed, M failed"
# and the exit status is 1 if anything failed, 77 (skipped) without dpkg-deb.
set -uo pipefail

if [ $# -lt 1 ] || [ ! -f "$1/CPackConfig.cmake" ]; then
  echo "usage: test_deb.sh BUILD_DIR [SOURCE_DIR]  (BUILD_DIR: a configured and built tree)" >&2
  exit 2
fi
command -v dpkg-deb > /dev/null || { echo "dpkg-deb not found: skipped"; exit 77; }
build=$(cd "$1" && pwd)
src=${2:-$(cd "$(dirname "$0")/../.." && pwd)}

tmp=$(mktemp -d "${TMPDIR:-/tmp}/fbdeb.XXXXXX") || exit 2
trap 'rm -rf "$tmp"' EXIT
passed=0
failed=0
ok() { echo "ok:   $1"; passed=$((passed + 1)); }
bad() { echo "FAIL: $1"; failed=$((failed + 1)); }
check() { if "${@:2}"; then ok "$1"; else bad "$1"; fi; }
show() { sed 's/^/    | /' "$1"; }
finish() {
  echo "$passed passed, $failed failed"
  [ "$failed" -eq 0 ]
  exit $?
}

# ------------------------------------------------------------ the package
if (cd "$tmp" && cpack --config "$build/CPackConfig.cmake" -G DEB -B "$tmp/pkg") \
  > "$tmp/cpack.log" 2>&1; then
  ok "cpack -G DEB"
else
  bad "cpack -G DEB"
  show "$tmp/cpack.log"
  finish
fi
deb=$(find "$tmp/pkg" -maxdepth 1 -name 'flowbus_*.deb' -print -quit)
check "the package is named flowbus_<version>_<arch>.deb (${deb##*/})" test -n "$deb"
[ -n "$deb" ] || finish

version=$(sed -n 's/^project(flowbus VERSION \([0-9.]*\).*/\1/p' "$src/CMakeLists.txt")
field() { dpkg-deb -f "$deb" "$1"; }
check "Package: flowbus" test "$(field Package)" = flowbus
check "Version: $version (the project's)" test "$(field Version)" = "$version"
depends=$(field Depends)
# The SDK's MQTT library: linked libmosquitto (the default) or Paho, opened with dlopen.
if grep -q '^FLOWBUS_MQTT:STRING=paho$' "$build/CMakeCache.txt"; then mqtt_dep=libpaho-mqtt1.3; else mqtt_dep=libmosquitto1; fi
for dep in mosquitto $mqtt_dep libcurl4 libjansson4 libyaml-0-2 libc6; do
  check "Depends names $dep" grep -q "\(^\|, \)$dep\( \|,\|$\)" <<< "$depends"
done
check "Recommends python3-paho-mqtt (the Python plugins)" grep -q python3-paho-mqtt <<< "$(field Recommends)"

dpkg-deb -c "$deb" > "$tmp/contents" 2> "$tmp/contents.err"
check "dpkg-deb -c lists the package" test -s "$tmp/contents"
awk '{ print $6 }' "$tmp/contents" | sed 's|^\./|/|; s|/$||' > "$tmp/paths"
has() { grep -qx -- "$1" "$tmp/paths"; }
check "/usr/bin/flowbus" has /usr/bin/flowbus
for p in start end df touched cmd every mqtt-in mqtt-out shout upper; do
  check "/usr/libexec/flowbus/flowbus-$p" has "/usr/libexec/flowbus/flowbus-$p"
done
check "/usr/lib*/libflowbus.so.0 (the SONAME)" grep -qx '/usr/lib.*/libflowbus\.so\.0' "$tmp/paths"
check "/usr/include/flowbus/flowbus.h" has /usr/include/flowbus/flowbus.h
check "/usr/lib*/pkgconfig/flowbus.pc" grep -qx '/usr/lib.*/pkgconfig/flowbus\.pc' "$tmp/paths"
check "/usr/share/flowbus/python/flowbus/__init__.py (the Python SDK)" \
  has /usr/share/flowbus/python/flowbus/__init__.py
check "/usr/share/doc/flowbus/README.md" has /usr/share/doc/flowbus/README.md
check "/usr/share/doc/flowbus/protocol.md" has /usr/share/doc/flowbus/protocol.md
check "/usr/share/flowbus/workflows/disk-monitor.yaml" has /usr/share/flowbus/workflows/disk-monitor.yaml
check "/usr/share/flowbus/broker-config/secure.conf" has /usr/share/flowbus/broker-config/secure.conf
outside=$(grep -v -e '^/usr$' -e '^/usr/' -e '^$' "$tmp/paths" | head -n 3)
check "nothing outside /usr${outside:+ (found: $outside)}" test -z "$outside"
owners=$(awk '{ print $2 }' "$tmp/contents" | sort -u | tr '\n' ' ')
check "every file is root/root (got: $owners)" test "$owners" = "root/root "
check "no path of the build tree in the package" test -z "$(grep -F "$build" "$tmp/paths")"

# ------------------------------------------ unpacked, run from scratch
root=$tmp/root
mkdir -p "$root" "$tmp/run" "$tmp/tmp"
check "dpkg -x into a scratch root" dpkg -x "$deb" "$root"
libdir=$(dirname "$(find "$root/usr" -maxdepth 3 -name 'libflowbus.so.0' -print -quit)")
# No dpkg database in the scratch root, so no ldconfig: the loader is told
# where the unpacked library is; everything else comes from the package.
clean_env=(env -i "PATH=/usr/bin:/bin:/usr/sbin:/sbin" "HOME=$tmp" "TMPDIR=$tmp/tmp"
  "XDG_RUNTIME_DIR=$tmp/tmp" "LANG=C.UTF-8" "LD_LIBRARY_PATH=$libdir")
sanitize=$(sed -n 's/^FLOWBUS_SANITIZE:STRING=//p' "$build/CMakeCache.txt")
[ -n "$sanitize" ] && clean_env+=("ASAN_OPTIONS=detect_leaks=0")

if (cd "$tmp/run" && "${clean_env[@]}" timeout 60 "$root/usr/bin/flowbus" run \
  "$root/usr/share/flowbus/workflows/disk-monitor.yaml" --set TIMEOUT=1) \
  > "$tmp/disk.out" 2> "$tmp/disk.err"; then
  ok "the packaged flowbus runs the packaged disk monitor (exit 0)"
else
  bad "the packaged flowbus runs the packaged disk monitor (exit $?)"
  show "$tmp/disk.err"
  tail -n 12 "$tmp/disk.out" | sed 's/^/    | /'
fi
check "  ... and DF ran (FLOWBUS_PLUGIN_PATH unset: found beside the unpacked flowbus, in ../libexec/flowbus)" \
  grep -q "DF .*done" "$tmp/disk.out"
check "  ... and it wrote disk-report.txt" grep -q " has .* free" "$tmp/run/disk-report.txt"

# The unknown-plugin error names the package's plugin directory.
printf 'workflow:\n  tasks:\n    - name: A\n      plugin: nosuch\n' > "$tmp/nosuch.yaml"
"${clean_env[@]}" "$root/usr/bin/flowbus" validate "$tmp/nosuch.yaml" 2> "$tmp/nosuch.err"
check "the unknown-plugin error lists $root/usr/libexec/flowbus" \
  grep -qF "$(realpath "$root/usr/libexec/flowbus")" "$tmp/nosuch.err"

left=$(grep -l -s -z -x -F "TMPDIR=$tmp/tmp" /proc/[0-9]*/environ 2> /dev/null || true)
check "no process of the run is left" test -z "$left"
finish
