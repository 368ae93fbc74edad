#!/usr/bin/env bash
# Compares a benchmark at an older revision with the working tree, in
# alternating rounds: on a shared, noisy machine the noise drifts over
# minutes, and alternating puts the two builds in the same minutes.
#
#   scripts/abbench.sh [-n ROUNDS] [-t BENCHTIME] REV PACKAGE REGEXP
#   scripts/abbench.sh -n 6 HEAD~1 ./plugins 'BenchmarkFormat/json/batch=512/wasm$'
#
# REV is checked out in a temporary worktree; each test binary runs in its
# own tree's package directory (the plugin tests build their plugins from
# the source they find there). Prints, per benchmark and metric (ns/op, or
# ns/record where reported), each build's values sorted, median and
# minimum, and new/old of the medians and of the minima.
set -euo pipefail
rounds=5
benchtime=1s
while getopts "n:t:" o; do
	case $o in
	n) rounds=$OPTARG ;;
	t) benchtime=$OPTARG ;;
	*) exit 2 ;;
	esac
done
shift $((OPTIND - 1))
if [ $# -ne 3 ]; then
	sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'
	exit 2
fi
rev=$1 pkg=$2 pattern=$3
root=$(git rev-parse --show-toplevel)
tmp=$(mktemp -d)
trap 'git -C "$root" worktree remove --force "$tmp/old" >/dev/null 2>&1 || true; rm -rf "$tmp"' EXIT
git -C "$root" worktree add --detach --force "$tmp/old" "$rev" >/dev/null 2>&1 ||
	{ echo "abbench: cannot check out $rev" >&2; exit 2; }
# Built from the package's directory, so that a package of another module
# in the tree (./bench) builds too.
(cd "$tmp/old/$pkg" && go test -c -o "$tmp/old.test" .)
(cd "$root/$pkg" && go test -c -o "$tmp/new.test" .)
run() { # build tree
	(cd "$2/$pkg" && "$tmp/$1.test" -test.run '^$' -test.bench "$pattern" -test.benchtime "$benchtime") |
		awk -v b="$1" '/^Benchmark/ {
			unit = "ns/op"; v = $3
			for (i = 4; i < NF; i++) if ($(i+1) == "ns/record") { unit = "ns/record"; v = $i }
			print $1, unit, b, v
		}'
}
for _ in $(seq "$rounds"); do
	run old "$tmp/old"
	run new "$root"
done >"$tmp/results"
sort -k1,1 -k2,2 -k3,3 -k4,4g "$tmp/results" | awk '
	function report(   i, b, builds) {
		if (key == "") return
		printf "%s (%s)\n", key, unit
		split("old new", builds, " ")
		for (i = 1; i <= 2; i++) {
			b = builds[i]
			printf "  %s%s   median %s  min %s\n", b, vals[b], med[b], mn[b]
		}
		if (med["old"] > 0 && mn["old"] > 0)
			printf "  new/old: median %.3f, min %.3f\n", med["new"] / med["old"], mn["new"] / mn["old"]
		delete n; delete vals; delete med; delete mn; delete all
	}
	{
		k = $1
		if (k != key || $2 != unit) { finish(); report(); key = k; unit = $2 }
		b = $3; n[b]++; all[b, n[b]] = $4; vals[b] = vals[b] " " $4
	}
	function finish(   b) {
		for (b in n) { mn[b] = all[b, 1]; med[b] = all[b, int((n[b] + 1) / 2)] }
	}
	END { finish(); report() }'
