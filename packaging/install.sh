#!/bin/sh
# Installs a docker-credential-stackit release tarball after verifying its SHA-256.
#
#   install.sh [--prefix DIR] [--sha256 HEX | --checksum-file FILE] TARBALL-OR-URL
#
# The checksum comes from --sha256, else --checksum-file, else "<TARBALL>.sha256" next to the
# tarball (or at "<URL>.sha256"). Nothing is installed unless it matches: a tarball without a
# checksum is refused. The binary goes to DIR/bin, the man page to DIR/share/man/man1.
# DIR defaults to /usr/local when writable, else ~/.local.
#
# POSIX sh on purpose: it runs on Linux and macOS without bash. Exit status 0 on success,
# 1 on failure, 2 on a usage error.
set -eu

NAME=docker-credential-stackit
prefix=""
want=""
checksum_file=""
source=""

die() {
	echo "install.sh: $*" >&2
	exit 1
}

usage() {
	echo "install.sh: $*" >&2
	echo "usage: install.sh [--prefix DIR] [--sha256 HEX | --checksum-file FILE] TARBALL-OR-URL" >&2
	exit 2
}

while [ $# -gt 0 ]; do
	case "$1" in
	--prefix) [ $# -ge 2 ] || usage "--prefix needs a directory"; prefix=$2; shift 2 ;;
	--prefix=*) prefix=${1#--prefix=}; shift ;;
	--sha256) [ $# -ge 2 ] || usage "--sha256 needs a hex digest"; want=$2; shift 2 ;;
	--sha256=*) want=${1#--sha256=}; shift ;;
	--checksum-file) [ $# -ge 2 ] || usage "--checksum-file needs a file"; checksum_file=$2; shift 2 ;;
	--checksum-file=*) checksum_file=${1#--checksum-file=}; shift ;;
	-h | --help)
		sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'
		exit 0
		;;
	-*) usage "unknown option $1" ;;
	*)
		[ -z "$source" ] || usage "only one tarball, got '$source' and '$1'"
		source=$1
		shift
		;;
	esac
done
[ -n "$source" ] || usage "no tarball given"

tmp=$(mktemp -d 2>/dev/null || mktemp -d -t "$NAME")
trap 'rm -rf "$tmp"' EXIT
trap 'exit 1' INT TERM

fetch() { # URL DEST
	if command -v curl >/dev/null 2>&1; then
		curl --proto '=https,http' --fail --silent --show-error --location --output "$2" "$1"
	elif command -v wget >/dev/null 2>&1; then
		wget --quiet --output-document="$2" "$1"
	else
		die "need curl or wget to download $1"
	fi
}

case "$source" in
https://* | http://*)
	tarball="$tmp/$(basename "$source")"
	fetch "$source" "$tarball" || die "cannot download $source"
	if [ -z "$want" ] && [ -z "$checksum_file" ]; then
		checksum_file="$tmp/checksum"
		fetch "$source.sha256" "$checksum_file" ||
			die "cannot download $source.sha256; pass --sha256 HEX from the release page"
	fi
	;;
*)
	[ -f "$source" ] || die "$source: no such file"
	tarball=$source
	if [ -z "$want" ] && [ -z "$checksum_file" ]; then
		checksum_file="$source.sha256"
		[ -f "$checksum_file" ] ||
			die "no checksum: $checksum_file does not exist; pass --sha256 HEX or --checksum-file FILE"
	fi
	;;
esac

if [ -z "$want" ]; then
	[ -f "$checksum_file" ] || die "$checksum_file: no such file"
	# sha256sum format: "<hex>  <name>"; a bare digest works too. Use the line naming this
	# tarball if there is one (a SHA256SUMS file lists every platform), else the first line.
	base=$(basename "$source")
	want=$(awk -v f="$base" '{ n = $2; sub(/^\*/, "", n) } n == f { print $1; exit }' "$checksum_file")
	[ -n "$want" ] || want=$(awk 'NR == 1 { print $1 }' "$checksum_file")
fi
want=$(printf '%s' "$want" | tr 'A-F' 'a-f')
case "$want" in
*[!0-9a-f]* | "") die "'$want' is not a SHA-256 hex digest" ;;
esac
[ ${#want} -eq 64 ] || die "'$want' is not a SHA-256 hex digest (expected 64 hex digits)"

if command -v sha256sum >/dev/null 2>&1; then
	got=$(sha256sum "$tarball" | awk '{ print $1 }')
elif command -v shasum >/dev/null 2>&1; then
	got=$(shasum -a 256 "$tarball" | awk '{ print $1 }')
elif command -v openssl >/dev/null 2>&1; then
	got=$(openssl dgst -sha256 "$tarball" | awk '{ print $NF }')
else
	die "need sha256sum, shasum or openssl to verify the download"
fi
[ "$got" = "$want" ] || die "SHA-256 mismatch for $(basename "$source"): expected $want, got $got; nothing was installed"
echo "SHA-256 verified: $got"

# Refuse absolute paths and '..' before extracting anything.
tar -tzf "$tarball" >"$tmp/list" || die "$source is not a gzip tarball"
if grep -E '(^/|(^|/)\.\.(/|$))' "$tmp/list" >/dev/null; then
	die "$source contains absolute or '..' paths; refusing to extract it"
fi
mkdir "$tmp/x"
tar -xzf "$tarball" -C "$tmp/x"
bin=$(find "$tmp/x" -type f -name "$NAME" | head -n 1)
[ -n "$bin" ] || die "$source contains no $NAME binary"
man=$(find "$tmp/x" -type f -name "$NAME.1" | head -n 1)

if [ -z "$prefix" ]; then
	if [ -w /usr/local/bin ] || { [ ! -e /usr/local/bin ] && [ -w /usr/local ]; }; then
		prefix=/usr/local
	else
		prefix="${HOME:?set HOME or pass --prefix}/.local"
	fi
fi
mkdir -p "$prefix/bin" || die "cannot create $prefix/bin; pass --prefix DIR or run with sudo"
# Copy then rename, so a running helper is never replaced by a half-written file.
cp "$bin" "$prefix/bin/.$NAME.new" || die "cannot write to $prefix/bin; pass --prefix DIR or run with sudo"
chmod 755 "$prefix/bin/.$NAME.new"
mv -f "$prefix/bin/.$NAME.new" "$prefix/bin/$NAME"
echo "installed $prefix/bin/$NAME"
if [ -n "$man" ] && mkdir -p "$prefix/share/man/man1" 2>/dev/null; then
	cp "$man" "$prefix/share/man/man1/$NAME.1" && chmod 644 "$prefix/share/man/man1/$NAME.1" &&
		echo "installed $prefix/share/man/man1/$NAME.1"
fi

"$prefix/bin/$NAME" version || die "$prefix/bin/$NAME does not run on this machine"
case ":${PATH:-}:" in
*":$prefix/bin:"*) ;;
*) echo "note: $prefix/bin is not on PATH; Docker runs $NAME from PATH, so add it (e.g. export PATH=\"$prefix/bin:\$PATH\")" ;;
esac
echo "next: set STACKIT_SERVICE_ACCOUNT_KEY_PATH to your service account key and run: $NAME configure-docker"
