# Shared by the scripts in script/: the Debian packages the project needs,
# and a function that makes sure they are installed.

# Build and test dependencies, by Debian package name.
# python3 runs the daemon tests; systemd and man-db give systemd-analyze
# verify what it needs to check the unit.
ALOOP_PACKAGES="build-essential autoconf automake libtool pkg-config
libevent-dev libssl-dev libconfig-dev libcunit1-dev libsystemd-dev
openssl procps python3 systemd man-db"
# curl fetches through the proxy plugin in its daemon test.
ALOOP_PACKAGES="$ALOOP_PACKAGES curl"
# promtool checks the metrics plugin's output in its daemon test.
ALOOP_PACKAGES="$ALOOP_PACKAGES prometheus"
# clang and its libFuzzer runtime (Debian 12 ships it apart) build the
# fuzz targets of tests/fuzz.
ALOOP_PACKAGES="$ALOOP_PACKAGES clang libclang-rt-14-dev"
# HAProxy sends PROXY protocol headers in the proxy_protocol daemon test.
ALOOP_PACKAGES="$ALOOP_PACKAGES haproxy"

# script/bootstrap --bench: the proxies bench/run.sh's proxy group
# measures aloopd's proxy plugin against, HAProxy and nginx with its stream
# module (the shared harness's install_peers.sh has the other peers).
ALOOP_BENCH_PACKAGES="haproxy nginx libnginx-mod-stream"

# ensure_packages PKG...: install what is missing (as root), or print the
# exact command and fail.
ensure_packages() {
	missing=""
	for p in "$@"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null |
			grep -q "install ok installed" || missing="$missing $p"
	done
	[ -z "$missing" ] && return 0
	if [ "$(id -u)" -eq 0 ]; then
		echo "installing:$missing"
		export DEBIAN_FRONTEND=noninteractive
		apt-get update -qq &&
			apt-get install -y -qq --no-install-recommends $missing ||
			{ echo "apt-get install failed:$missing" >&2; exit 1; }
	else
		echo "missing Debian packages; run as root:" >&2
		echo "  apt-get install$missing" >&2
		exit 1
	fi
}

# The number of parallel make jobs: every core.
jobs() {
	nproc 2>/dev/null || echo 2
}
