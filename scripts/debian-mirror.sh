# debian-mirror.sh — sourced by the install scripts: find_mirror prints the
# Debian mirror URL of this system's apt sources (or $DEBIAN_MIRROR), and
# private_apt_opts WORK sets APT_OPTS to apt options that keep every list,
# cache and status file under WORK (nothing of the system's apt state is
# read or changed), and private_extract WORK STAGE PKG... downloads the
# packages with those options and unpacks them into STAGE (with a
# .packages list, without docs, headers and static libraries);
# private_mirror prints a usable http(s) mirror (or explains on stderr and
# fails) and warns when no trixie archive key is installed;
# private_update WORK MIRROR SUITE... fetches the package lists (failing
# unless every suite's list came), and private_closure PKG... prints the
# Depends/PreDepends closure of the packages.
# shellcheck shell=bash

# Find a Debian mirror URL from the system's apt sources (one-line *.list
# and deb822 *.sources). Prefer an entry whose suite is the release codename
# itself (not -security/-updates).
find_mirror() {
	if [ -n "${DEBIAN_MIRROR:-}" ]; then
		echo "${DEBIAN_MIRROR%/}"
		return
	fi
	local codename
	codename="$(. /etc/os-release 2>/dev/null && echo "${VERSION_CODENAME:-}")"
	[ -n "$codename" ] || codename=bookworm
	local files=()
	[ -f /etc/apt/sources.list ] && files+=(/etc/apt/sources.list)
	local f
	for f in /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
		[ -f "$f" ] && files+=("$f")
	done
	[ "${#files[@]}" -gt 0 ] || return 0
	awk -v cn="$codename" '
		function emit(u) { sub(/\/+$/, "", u); print u; done = 1; exit }
		function check(   a) {
			if (types ~ /[ \t]deb([ \t]|$)/ && suites ~ ("[ \t]" cn "[ \t]") && uris != "") {
				split(uris, a, /[ \t]+/); emit(a[1])
			}
			uris = ""; suites = ""; types = ""
		}
		FNR == 1 { if (prev ~ /\.sources$/) check(); prev = FILENAME }
		/^[ \t]*#/ { next }
		FILENAME ~ /\.sources$/ {
			if ($0 ~ /^[ \t]*$/) { check(); next }
			if (tolower($1) == "types:")  { types = $0 " " }
			if (tolower($1) == "uris:")   { uris = $0; sub(/^[^:]*:[ \t]*/, "", uris) }
			if (tolower($1) == "suites:") { suites = " " $0 " " }
			next
		}
		$1 == "deb" {
			i = 2
			if ($i ~ /^\[/) { while (i <= NF && $i !~ /\]$/) i++; i++ }
			if ($(i+1) == cn) emit($i)
		}
		END { if (!done && prev ~ /\.sources$/) check() }
	' "${files[@]}"
}

private_apt_opts() {
	local w="$1"
	APT_OPTS=(
		-o "Dir::Etc::SourceList=$w/sources.list"
		-o "Dir::Etc::SourceParts=$w/parts"
		-o "Dir::Etc::Preferences=/dev/null"
		-o "Dir::Etc::PreferencesParts=$w/prefs"
		-o "Dir::State::Lists=$w/lists"
		-o "Dir::State::status=$w/status"
		-o "Dir::Cache=$w/cache"
		-o "Dir::Cache::pkgcache="
		-o "Dir::Cache::srcpkgcache="
		-o "APT::Architectures::=amd64"
		-o "Acquire::Languages=none"
		-o "APT::Sandbox::User=root"
	)
}

private_extract() {
	local w="$1" stage="$2" deb
	shift 2
	(cd "$w/debs" && apt-get -q "${APT_OPTS[@]}" download "$@") >"$w/download.log" 2>&1 || {
		cat "$w/download.log" >&2
		echo "apt-get download failed" >&2
		return 1
	}
	rm -rf "$stage"
	mkdir -p "$stage"
	: >"$stage/.packages"
	for deb in "$w"/debs/*.deb; do
		dpkg -x "$deb" "$stage" || { echo "dpkg -x $(basename "$deb") failed" >&2; return 1; }
		dpkg-deb -f "$deb" Package Version | paste -sd= | sed 's/^Package: //; s/=Version: /=/' >>"$stage/.packages"
	done
	sort -o "$stage/.packages" "$stage/.packages"
	local l=usr/lib/x86_64-linux-gnu
	rm -rf "$stage/usr/share/doc" "$stage/usr/share/man" "$stage/usr/share/lintian" \
		"$stage/usr/share/locale" "$stage/usr/include" "$stage/$l"/*.a "$stage/$l/cmake" "$stage/$l/pkgconfig"
}

private_update() {
	local w="$1" mirror="$2" s
	shift 2
	if ! apt-get -q "${APT_OPTS[@]}" update >"$w/update.log" 2>&1; then
		cat "$w/update.log" >&2
		echo "apt-get update for $* failed" >&2
		return 1
	fi
	local bad=0
	grep -qE '^E: |^W: (Failed to fetch|GPG error|.*NO_PUBKEY|.*not signed)' "$w/update.log" && bad=1
	for s in "$@"; do
		compgen -G "$w/lists/*_dists_${s}_main_binary-amd64_Packages*" >/dev/null || bad=1
	done
	if [ $bad = 1 ]; then
		cat "$w/update.log" >&2
		echo "apt-get update for $* from $mirror failed (see above; NO_PUBKEY means debian-archive-keyring lacks the $1 keys)" >&2
		return 1
	fi
	grep -E '^W: ' "$w/update.log" >&2 || true
}

private_closure() {
	apt-cache "${APT_OPTS[@]}" depends --recurse --no-recommends --no-suggests \
		--no-conflicts --no-breaks --no-replaces --no-enhances "$@" |
		grep -E '^[a-z0-9]' | grep -v '^<' | sort -u
}

private_mirror() {
	local m
	m="$(find_mirror || true)"
	if [ -z "$m" ]; then
		echo "could not find a Debian mirror in /etc/apt/sources.list{,.d/*}; set DEBIAN_MIRROR=<url>" >&2
		return 1
	fi
	case "$m" in
		http://* | https://*) ;;
		*) echo "unsupported mirror URI '$m' from the system sources; set DEBIAN_MIRROR=<http(s) url>" >&2; return 1 ;;
	esac
	[ -f /usr/share/keyrings/debian-archive-trixie-stable.gpg ] || [ -f /etc/apt/trusted.gpg.d/debian-archive-trixie-stable.asc ] ||
		echo "warning: no trixie archive key found; install a newer debian-archive-keyring if apt reports NO_PUBKEY" >&2
	echo "$m"
}
