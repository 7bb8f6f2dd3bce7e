#!/bin/sh
# test_exports.sh LIBRARY - libflowbus exports only its public API: every
# dynamic symbol it defines is fb_* (sdk/flowbus.map). Anything else fails,
# in particular a function of the C library (poll, connect, ...): a library
# that defines one changes libc for every program that links it.
set -eu
lib=${1:?usage: test_exports.sh LIBRARY}

symbols=$(nm -D --defined-only "$lib" | awk 'NF >= 3 { print $3 }')
if [ -z "$symbols" ]; then
    echo "FAIL: nm -D found no defined symbols in $lib" >&2
    exit 1
fi
bad=0
fb=0
for sym in $symbols; do
    name=${sym%%@*} # a versioned symbol reads name@@VERSION
    case $name in
    fb_*) fb=$((fb + 1)) ;;
    *)
        echo "FAIL: $lib exports $sym, which is not fb_*" >&2
        bad=1
        ;;
    esac
done
# The public API itself must be there, or the check above proves nothing.
case " $(echo $symbols) " in
*" fb_bus_new "*) ;;
*) echo "FAIL: $lib does not export fb_bus_new" >&2; bad=1 ;;
esac
[ $bad = 0 ] || exit 1
echo "ok: $fb fb_* symbols exported and nothing else"
