#!/bin/sh
# Build the libFuzzer targets of tests/fuzz with clang, straight from the
# sources (not through the autotools build), and run each for a bounded
# time on its seed corpus in tests/fuzz/corpus/<target>.  Exits non-zero
# if a target does not build or finds a crash, a leak or undefined
# behaviour; 77 (skipped) if clang cannot build a libFuzzer program.
#
#	tests/fuzz/run.sh [target ...]	targets: config listen metrics proxy
#
# FUZZ_SECONDS	how long each target runs (default 30)
# FUZZ_BUILD	where the objects and programs go (default build-fuzz)
# FUZZ_CC	the compiler (default clang)
# FUZZ_ARGS	more libFuzzer options, e.g. "-jobs=2"
# A configured build tree gives config.h: build/ if it has one, else one
# is configured in $FUZZ_BUILD/conf.
set -eu
top=$(cd "$(dirname "$0")/../.." && pwd)
cd "$top"
secs=${FUZZ_SECONDS:-30}
out=${FUZZ_BUILD:-$top/build-fuzz}
cc=${FUZZ_CC:-clang}
targets=${*:-config listen metrics proxy}
mkdir -p "$out"
out=$(cd "$out" && pwd)

# Can this clang link a fuzzer at all (Debian: libclang-rt-14-dev)?
printf '#include <stddef.h>\n#include <stdint.h>\nint LLVMFuzzerTestOneInput(const uint8_t *d, size_t n) { return 0; }\n' \
    >"$out/probe.c"
if ! "$cc" -fsanitize=fuzzer,address,undefined -o "$out/probe" \
    "$out/probe.c" >/dev/null 2>&1; then
	echo "fuzz: skipped: $cc cannot build a libFuzzer program" \
	    "(install clang and libclang-rt-14-dev)"
	exit 77
fi

if [ -f "$top/build/config.h" ] && [ -f "$top/build/include/aloop/version.h" ]
then
	conf=$top/build
else
	conf=$out/conf
	if [ ! -f "$conf/config.h" ]; then
		echo "fuzz: configuring $conf for config.h"
		mkdir -p "$conf"
		(cd "$conf" && "$top/configure" CC="$cc" >configure.out 2>&1) ||
		    { tail -n 20 "$conf/configure.out"; exit 1; }
	fi
fi

deps="libevent_openssl libevent openssl libconfig"
cflags="-std=gnu11 -g -O1 -fno-omit-frame-pointer -Wall -Wextra -Werror
    -Wno-unused-parameter -fsanitize=address,undefined
    -fno-sanitize-recover=undefined -I$conf -I$top/include -I$conf/include
    -I$top/lib -I$top/daemon -DSYSCONFDIR=\"/etc\"
    -DPLUGINDIR=\"/nonexistent\" $(pkg-config --cflags $deps)"
libs="$(pkg-config --libs $deps) -ldl -lpthread"

# Compile @1 (a source) into $out/obj if it changed or a header did.
compile() {
	o=$out/obj/$(echo "$1" | tr / _).o
	mkdir -p "$out/obj"
	if [ ! -f "$o" ] || [ -n "$(find "$top/$1" "$top/include" "$top/lib" \
	    "$top/daemon" "$top/plugins" -newer "$o" -name '*.[ch]' \
	    2>/dev/null | head -n 1)" ]; then
		# shellcheck disable=SC2086
		"$cc" $cflags $2 -c -o "$o" "$top/$1"
	fi
	objs="$objs $o"
}

# libaloop, as much as the configuration reader needs (TLS contexts,
# errors, the log), and the reader itself.
config_sources="daemon/config.c daemon/config_file.c daemon/config_parse.c
    daemon/config_listener.c daemon/access.c daemon/settings.c
    daemon/ticket_secret.c daemon/plugin_loader.c
    daemon/strmap.c daemon/tls_cache.c lib/error.c lib/log.c lib/version.c
    lib/tls_context.c"

build() {
	objs=
	case $1 in
	config|listen)
		for s in $config_sources tests/fuzz/fuzz_$1.c; do
			compile "$s" -fsanitize=fuzzer-no-link
		done ;;
	metrics)
		compile tests/fuzz/fuzz_metrics.c -fsanitize=fuzzer-no-link ;;
	proxy)
		for s in lib/proxy_header.c tests/fuzz/fuzz_proxy_header.c; do
			compile "$s" -fsanitize=fuzzer-no-link
		done ;;
	*)
		echo "fuzz: no target $1" >&2
		return 1 ;;
	esac
	# shellcheck disable=SC2086
	"$cc" $cflags -fsanitize=fuzzer -o "$out/fuzz_$1" $objs $libs
}

# libconfig 1.5 leaks a string it was scanning when a syntax error
# follows it (once per bad file read, not per connection): not ours.
LSAN_OPTIONS="suppressions=$top/tests/fuzz/lsan.supp${LSAN_OPTIONS:+:$LSAN_OPTIONS}"
export LSAN_OPTIONS

status=0
for t in $targets; do
	echo "== fuzz $t: build"
	if ! build "$t"; then
		status=1
		continue
	fi
	echo "== fuzz $t: ${secs} s"
	mkdir -p "$out/corpus/$t" "$out/crashes/$t"
	# The seeds are read, new inputs go to $out: the tree stays clean.
	# shellcheck disable=SC2086
	if (cd "$out/crashes/$t" && "$out/fuzz_$t" -max_total_time="$secs" \
	    -timeout=10 -rss_limit_mb=2048 -max_len=65536 -print_final_stats=1 \
	    ${FUZZ_ARGS:-} "$out/corpus/$t" "$top/tests/fuzz/corpus/$t") \
	    >"$out/fuzz_$t.log" 2>&1; then
		grep -E '^stat::(number_of_executed_units|new_units_added)' \
		    "$out/fuzz_$t.log" | tr '\n' ' '
		echo
	else
		status=1
		echo "FAIL: fuzz $t (inputs in $out/crashes/$t)"
		grep -A 40 -E '^==[0-9]+==ERROR|runtime error|^SUMMARY' \
		    "$out/fuzz_$t.log" | head -n 60
	fi
done
exit $status
