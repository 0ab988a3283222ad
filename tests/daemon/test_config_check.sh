#!/bin/sh
# aloopd -t on good and bad configurations: the exit status, "configuration
# OK" on stdout, or every error line (file:line: path "value": what) on
# stderr.  The shipped conf/aloop.conf is checked unmodified, with the
# build's plugins and a certificate made here.
set -u
: "${top_srcdir:?run by make check}" "${top_builddir:?run by make check}"
aloopd="$top_builddir/daemon/aloopd"
fixtures="$top_builddir/tests/fixtures/.libs"
tmp=$(mktemp -d "${TMPDIR:-/tmp}/aloop-t.XXXXXX") || exit 1
tmp=$(cd "$tmp" && pwd -P)
trap 'rm -rf "$tmp"' EXIT
trap 'exit 1' INT TERM
failed=0

# expect NAME STATUS STDOUT STDERR ARGS...: run aloopd ARGS in $tmp, bounded
# by a timeout, and compare status and both outputs exactly.
expect() {
	name=$1 status=$2 out=$3 err=$4
	shift 4
	(cd "$tmp" && timeout "${bound:-30}" "$aloopd" "$@" >"$tmp/out" \
	    2>"$tmp/err")
	got=$?
	printf '%s\n' "$out" | sed '/^$/d' >"$tmp/out.want"
	printf '%s\n' "$err" | sed '/^$/d' >"$tmp/err.want"
	if [ "$got" -ne "$status" ] ||
	    ! cmp -s "$tmp/out" "$tmp/out.want" ||
	    ! cmp -s "$tmp/err" "$tmp/err.want"; then
		echo "FAIL: $name (exit $got, expected $status)"
		diff -u "$tmp/out.want" "$tmp/out"
		diff -u "$tmp/err.want" "$tmp/err"
		failed=1
	else
		echo "ok: $name"
	fi
}

conf() {
	cat >"$tmp/aloop.conf"
}

# --version names aloopd's version and every library it runs with; --help
# lists every option.  Both exit 0 without reading a configuration.
ver=$("$aloopd" --version)
for want in "aloopd " "libaloop " "libevent 2." "OpenSSL 3." "libconfig 1." \
    "plugin ABI "; do
	case $ver in
	*"$want"*) ;;
	*) echo "FAIL: --version lacks \"$want\": $ver"; failed=1 ;;
	esac
done
help=$("$aloopd" --help)
for want in "--config FILE" "--test" "--foreground" "--debug" "--version" \
    "--help"; do
	case $help in
	*"$want"*) ;;
	*) echo "FAIL: --help lacks \"$want\""; failed=1 ;;
	esac
done
"$aloopd" --no-such-option >/dev/null 2>&1 &&
	{ echo "FAIL: an unknown option was accepted"; failed=1; }

# The shipped default, laid out as in the source tree: conf/ beside build/.
mkdir -p "$tmp/conf" "$tmp/build"
cp "$top_srcdir/conf/aloop.conf" "$tmp/conf/aloop.conf"
ln -s "$top_builddir/plugins" "$tmp/build/plugins"
"$top_srcdir/script/make-dev-cert" "$tmp/build/certs" >/dev/null || exit 1
expect "default configuration" 0 "conf/aloop.conf: configuration OK" "" \
	-t -c conf/aloop.conf
expect "long options" 0 "conf/aloop.conf: configuration OK" "" \
	--test --config conf/aloop.conf

# The copy `make install` puts in /etc/aloop must pass as it is (the unit
# runs -t before every start); only the plugin directory is this build's.
sed 's|^daemon = {|&\
	plugin_path = [ "'"$top_builddir"'/plugins/.libs" ];|' \
	"$top_builddir/conf/aloop.conf.installed" >"$tmp/installed.conf"
expect "installed default configuration" 0 \
	"installed.conf: configuration OK" "" -t -c installed.conf
if grep -q '^[^#]*\.\./build' "$tmp/installed.conf"; then
	echo "FAIL: the installed configuration names the build tree"
	failed=1
fi

conf <<EOF2
daemon = {
	plugin_path = [ "$top_builddir/plugins/.libs" ];
};
listeners = (
	{ name = "echo"; protocol = "echo"; listen = [ "127.0.0.1:7007" ]; },
	{ name = "udp"; protocol = "echo"; type = "udp";
	  listen = [ "127.0.0.1:7007" ]; }
);
EOF2
expect "small configuration" 0 "aloop.conf: configuration OK" "" \
	-t -c aloop.conf

conf <<EOF2
daemon = {
	workers = 0;
	plugin_path = [ "$top_builddir/plugins/.libs" ];
};
listeners = (
	{
		name = "echo";
		protocol = "echo";
		listen = [ "127.0.0.1:7007" ];
		tcp_nodelai = true;
	},
	{
		name = "chargen";
		protocol = "chargen";
		listen = [ "127.0.0.1:99999", "[::1]:7019" ];
		settings = { line_length = 0; };
	},
	{
		name = "echo";
		protocol = "./nosuch.so";
		listen = [ "[::1]:7007" ];
		type = "sctp";
	}
);
EOF2
expect "bad configuration" 1 "" "aloop.conf:2: daemon.workers \"0\": out of range (1..1024)
aloop.conf:10: listeners[0].tcp_nodelai \"true\": unknown setting
aloop.conf:15: listeners[1].listen[0] \"127.0.0.1:99999\": port out of range
aloop.conf:19: listeners[2].name \"echo\": name already used by listeners[0]
aloop.conf:22: listeners[2].type \"sctp\": expected one of \"tcp\", \"udp\"
aloop.conf:16: listeners[1].settings.line_length \"0\": out of range (1..1000)
aloop.conf:20: listeners[2].protocol \"./nosuch.so\": $tmp/./nosuch.so: No such file or directory
aloop.conf: configuration test failed" -t -c aloop.conf

conf <<EOF2
listeners = (
	{
		name = "old";
		protocol = "$fixtures/plugin_wrong_major.so";
		listen = [ "127.0.0.1:7007" ];
	}
);
EOF2
# The fixture is built for the next major version, at this minor one.
abi=$("$aloopd" -V | sed -n 's/^plugin ABI //p')
wrong="$((${abi%.*} + 1)).${abi#*.}"
expect "plugin of another ABI" 1 "" "aloop.conf:4: listeners[0].protocol \"$fixtures/plugin_wrong_major.so\": $fixtures/plugin_wrong_major.so: plugin ABI $wrong, but aloopd speaks ABI $abi: rebuild the plugin against this aloop
aloop.conf: configuration test failed" -t -c aloop.conf

conf <<EOF2
daemon = { workers = 1 }
listeners = (
EOF2
expect "syntax error" 1 "" "aloop.conf:3: syntax error
aloop.conf: configuration test failed" -t -c aloop.conf

expect "missing file" 1 "" "nope.conf: No such file or directory
nope.conf: configuration test failed" -t -c nope.conf

# A proxy whose upstream is aloopd itself: the same address, a name that
# resolves to it, a wildcard listener's port, a UNIX listener's path.
conf <<EOF2
daemon = { plugin_path = [ "$top_builddir/plugins/.libs" ]; };
listeners = (
	{ name = "loop"; protocol = "proxy"; listen = [ "127.0.0.1:7107" ];
	  settings = { upstream = [
		"127.0.0.1:7107",
		"localhost:7108",
		"unix:$tmp/echo.sock",
		"127.0.0.1:7109" ]; }; },
	{ name = "any"; protocol = "echo";
	  listen = [ "*:7108", "unix:$tmp/echo.sock" ]; }
);
EOF2
expect "proxy to itself" 1 "" "aloop.conf:5: listeners[0].settings.upstream[0] \"127.0.0.1:7107\": is listener \"loop\" of this aloopd: a proxy that forwards to aloopd can loop until no descriptor is left
aloop.conf:6: listeners[0].settings.upstream[1] \"localhost:7108\": is listener \"any\" of this aloopd: a proxy that forwards to aloopd can loop until no descriptor is left
aloop.conf:7: listeners[0].settings.upstream[2] \"unix:$tmp/echo.sock\": is listener \"any\" of this aloopd: a proxy that forwards to aloopd can loop until no descriptor is left
aloop.conf: configuration test failed" -t -c aloop.conf
# Every file @include names is checked before anything reads it; each bad
# one is an error at the @include's line, never an exit or a hang (the
# expect timeout bounds the FIFO case, which once blocked for good).
mkdir -p "$tmp/inc/dir"
mkfifo "$tmp/inc/fifo"
cat >"$tmp/inc/listeners.conf" <<EOF2
listeners = (
	{ name = "echo"; protocol = "echo"; listen = [ "127.0.0.1:7007" ]; }
);
EOF2
inc() {
	printf 'daemon = {\n\tplugin_path = [ "%s" ];\n};\n@include "%s"\n' \
	    "$top_builddir/plugins/.libs" "$1" >"$tmp/inc/aloop.conf"
}
inc listeners.conf
expect "good include" 0 "inc/aloop.conf: configuration OK" "" \
	-t -c inc/aloop.conf
for bad in "dir:not a regular file (a directory)" \
    "fifo:not a regular file (a FIFO)" \
    "/dev/zero:not a regular file (a device)" \
    "/dev/null:not a regular file (a device)" \
    "missing.conf:No such file or directory"; do
	inc "${bad%%:*}"
	expect "include of ${bad%%:*}" 1 "" \
	    "inc/aloop.conf:4: @include \"${bad%%:*}\": ${bad#*:}
inc/aloop.conf: configuration test failed" -t -c inc/aloop.conf
done
# Sparse: past 16 MiB without writing 16 MiB.
truncate -s 16M "$tmp/inc/big.conf"
echo "x = 1;" >>"$tmp/inc/big.conf"
inc big.conf
expect "include of a file past 16 MiB" 1 "" \
    "inc/aloop.conf:4: @include \"big.conf\": larger than 16 MiB
inc/aloop.conf: configuration test failed" -t -c inc/aloop.conf
printf '# loops back\n@include "aloop.conf"\n' >"$tmp/inc/loop.conf"
inc loop.conf
expect "include cycle" 1 "" \
    "inc/loop.conf:2: @include \"aloop.conf\": includes itself (an @include cycle)
inc/aloop.conf: configuration test failed" -t -c inc/aloop.conf
i=1
while [ $i -le 11 ]; do
	printf '@include "n%d.conf"\n' $((i + 1)) >"$tmp/inc/n$i.conf"
	i=$((i + 1))
done
inc n1.conf
expect "includes nested too deeply" 1 "" \
    "inc/n10.conf:1: @include \"n11.conf\": nested too deeply (more than 10 levels of @include)
inc/aloop.conf: configuration test failed" -t -c inc/aloop.conf
if [ "$(id -u)" -ne 0 ]; then
	printf 'x = 1;\n' >"$tmp/inc/secret.conf"
	chmod 0 "$tmp/inc/secret.conf"
	inc secret.conf
	expect "include of an unreadable file" 1 "" \
	    "inc/aloop.conf:4: @include \"secret.conf\": Permission denied
inc/aloop.conf: configuration test failed" -t -c inc/aloop.conf
else
	echo "skip: include of an unreadable file (root reads any file)"
fi

# 100,000 listeners: the duplicate checks once compared every listener
# with every other.  The time is printed, not asserted; the expect
# timeout is the bound.  The sanitizers' unoptimised build is some ten
# times slower and shares the machine with the other tests: 10,000 there.
many=100000
if grep -q -e '--enable-sanitizers' "$top_builddir/config.status" 2>/dev/null
then
	many=10000
fi
awk -v dir="$top_builddir/plugins/.libs" -v n=$many 'BEGIN {
	printf "daemon = { plugin_path = [ \"%s\" ]; };\nlisteners = (\n", dir
	for (i = 0; i < n; i++)
		printf "  { name = \"l%d\"; protocol = \"echo\"; listen = [ \"127.0.%d.%d:%d\" ]; }%s\n",
		    i, i / 60000, 1 + (i % 7), 1024 + i % 60000, i < n - 1 ? "," : ""
	print ");"
}' >"$tmp/many.conf"
start=$(date +%s.%N)
bound=120 expect "$many listeners" 0 "many.conf: configuration OK" "" \
	-t -c many.conf
echo "# aloopd -t on $many listeners: $(awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN { printf "%.2f", e - s }') s"

# getopt names the program as libtool ran it: check the rest.
(cd "$tmp" && timeout 30 "$aloopd" --bogus >"$tmp/out" 2>"$tmp/err")
got=$?
if [ "$got" -eq 1 ] && [ ! -s "$tmp/out" ] &&
    grep -q "unrecognized option '--bogus'" "$tmp/err" &&
    grep -q "^usage: aloopd \[-c FILE\] \[-t | -T\]" "$tmp/err"; then
	echo "ok: unknown option"
else
	echo "FAIL: unknown option (exit $got)"
	cat "$tmp/err"
	failed=1
fi

exit $failed
