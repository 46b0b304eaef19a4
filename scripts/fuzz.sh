#!/bin/sh
# fuzz.sh [SECONDS]: builds every tests/fuzz/fuzz_*.c with clang's libFuzzer,
# AddressSanitizer and UndefinedBehaviorSanitizer into build-fuzz/, and runs
# each for SECONDS (default 60) on its corpus in build-fuzz/corpus/<name>/.
# Exit 1 if any target finds a crash (the reproducer is left in build-fuzz/).
set -eu
cd "$(dirname "$0")/.."
secs=${1:-60}
out=build-fuzz
mkdir -p "$out/gen"
./scripts/embed-templates.sh templates > "$out/gen/templates_embed.c"
./scripts/embed-web.sh src/web > "$out/gen/web_embed.c"
./scripts/version.sh "$out/gen/version.h"
# The Makefile's list, so that a library added there is found here too.
pkgs="$(make -s --no-print-directory print-pkgs)"
san="-g -O1 -fsanitize=address,undefined -fno-sanitize-recover=undefined"
cflags="-D_GNU_SOURCE -Iinclude -I$out/gen $(pkg-config --cflags $pkgs)"
libs="$(pkg-config --libs $pkgs) -lresolv -lpthread -lm"
# The library once (coverage without libFuzzer's main), one compiler per
# core; then each target links against it. Rebuilt from scratch each run:
# a few files, and no stale object can hide a change.
rm -rf "$out/obj"
mkdir -p "$out/obj"
ls src/*.c "$out/gen/templates_embed.c" "$out/gen/web_embed.c" |
	xargs -P "$(nproc)" -I{} sh -c \
		'clang '"$san"' -fsanitize=fuzzer-no-link '"$cflags"' -c -o "'"$out"'/obj/$(basename {} .c).o" {}'
rm -f "$out/libselo-fuzz.a"
ar rcs "$out/libselo-fuzz.a" "$out"/obj/*.o
status=0
for t in tests/fuzz/fuzz_*.c; do
	name=$(basename "$t" .c)
	clang $san -fsanitize=fuzzer $cflags -o "$out/$name" "$t" "$out/libselo-fuzz.a" $libs
	mkdir -p "$out/corpus/$name"
	[ -d "tests/fuzz/seeds/$name" ] && cp -n tests/fuzz/seeds/$name/* "$out/corpus/$name/" 2>/dev/null || true
	echo "fuzz: $name for ${secs}s" >&2
	if ! (cd "$out" && ./"$name" -max_total_time="$secs" -max_len=8192 -print_final_stats=1 \
		"corpus/$name" 2>"$name.log"); then
		echo "fuzz: $name FAILED; see $out/$name.log" >&2
		tail -30 "$out/$name.log" >&2
		status=1
	fi
done
exit $status
