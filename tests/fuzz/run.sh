#!/usr/bin/env bash
# tests/fuzz/run.sh --bin-dir DIR [--seconds S] [--work-dir DIR] [--merge] TARGET...
#
# Runs each libFuzzer target fuzz_TARGET (from --bin-dir) for S seconds
# (default 20) on its committed corpus tests/fuzz/corpus/TARGET, with the
# dictionary TARGET.dict when there is one. New inputs and crash artifacts go
# under --work-dir (default: a temporary directory), never into the corpus;
# with --merge, new inputs that add coverage are then merged (minimized) into
# the committed corpus. A target fails on any crash, leak, sanitizer report,
# input slower than 30 s (a hang, with margin for a loaded machine) or
# out-of-memory (> 2 GB). Prints "N passed, M failed"; exits 1 if any failed.
set -uo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
bin_dir="" seconds=20 work_dir="" merge=0
targets=()
while [ $# -gt 0 ]; do
  case "$1" in
    --bin-dir) bin_dir="$2"; shift ;;
    --seconds) seconds="$2"; shift ;;
    --work-dir) work_dir="$2"; shift ;;
    --merge) merge=1 ;;
    -h|--help) sed -n '2,/^set /{/^set /d;s/^# \{0,1\}//p}' "$0"; exit 0 ;;
    -*) echo "run.sh: unknown option $1" >&2; exit 2 ;;
    *) targets+=("$1") ;;
  esac
  shift
done
if [ -z "$bin_dir" ] || [ ${#targets[@]} -eq 0 ]; then
  echo "usage: run.sh --bin-dir DIR [--seconds S] [--work-dir DIR] [--merge] TARGET..." >&2
  exit 2
fi
if [ -z "$work_dir" ]; then
  work_dir="$(mktemp -d "${TMPDIR:-/tmp}/flowbus-fuzz.XXXXXX")"
  trap 'rm -rf "$work_dir"' EXIT
fi

# Leaks count as failures; UBSan reports stop the run like ASan's do.
# strict_string_checks as in scripts/test's sanitizer pass, whose options CI's
# fuzz step inherits: a local run must find what CI finds (a strndup of a
# buffer with no NUL after it was found only so).
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:strict_string_checks=1:halt_on_error=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"

passed=0 failed=0
for t in "${targets[@]}"; do
  exe="$bin_dir/fuzz_$t"
  corpus="$here/corpus/$t"
  new="$work_dir/$t-new"
  mkdir -p "$new" "$corpus"
  dict=()
  [ -f "$here/$t.dict" ] && dict=(-dict="$here/$t.dict")
  echo "==== fuzz_$t: ${seconds} s on $corpus ($(ls "$corpus" | wc -l) inputs)"
  # The first directory receives new inputs; the corpus is only read.
  if "$exe" -max_total_time="$seconds" -timeout=30 -rss_limit_mb=2048 -print_final_stats=1 \
       -artifact_prefix="$work_dir/$t-" "${dict[@]}" "$new" "$corpus" \
       >"$work_dir/$t.log" 2>&1; then
    tail -n 12 "$work_dir/$t.log" | grep -E 'stat::number_of_executed_units|stat::peak_rss_mb|cov:' | tail -n 3
    passed=$((passed + 1))
    echo "ok   fuzz_$t"
  else
    tail -n 60 "$work_dir/$t.log"
    ls "$work_dir"/"$t"-crash-* "$work_dir"/"$t"-leak-* "$work_dir"/"$t"-timeout-* \
       "$work_dir"/"$t"-oom-* 2>/dev/null
    failed=$((failed + 1))
    echo "FAIL fuzz_$t (log: $work_dir/$t.log)"
    continue
  fi
  if [ $merge = 1 ]; then
    "$exe" -merge=1 -timeout=30 -rss_limit_mb=2048 "$corpus" "$new" >"$work_dir/$t-merge.log" 2>&1 ||
      { tail -n 20 "$work_dir/$t-merge.log"; failed=$((failed + 1)); }
    echo "     corpus now $(ls "$corpus" | wc -l) inputs, $(du -sk "$corpus" | cut -f1) KB"
  fi
done
echo "$passed passed, $failed failed"
[ $failed = 0 ]
