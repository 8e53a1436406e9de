#!/usr/bin/env bash
# Step 1 of the GitHub Action (action.yml): puts docker-credential-stackit on PATH.
#
# Nothing to do when the action's own version is already on PATH. Else the release tarball for
# the runner's platform (checksum verified by packaging/install.sh), else `cargo install` from
# the action's own checkout. Everything goes under RUNNER_TEMP, which the runner deletes after
# the job. Input (env): ACTION_RELEASE_BASE_URL (optional mirror of the release downloads).
set -euo pipefail

name=docker-credential-stackit
die() {
	echo "::error title=docker-credential-stackit::$*" >&2
	exit 1
}

: "${GITHUB_ACTION_PATH:?runs only as a step of the action}"
: "${RUNNER_TEMP:?runs only on a GitHub runner (RUNNER_TEMP is not set)}"
: "${GITHUB_PATH:?runs only on a GitHub runner (GITHUB_PATH is not set)}"

version=$(sed -n 's/^version = "\([^"]*\)"$/\1/p' "$GITHUB_ACTION_PATH/Cargo.toml" | head -n 1)
[[ $version =~ ^[0-9]+\.[0-9]+\.[0-9]+([-+][0-9A-Za-z.-]+)?$ ]] || die "cannot read the helper's version from $GITHUB_ACTION_PATH/Cargo.toml"

if found=$(command -v "$name") && [ "$("$name" version 2>/dev/null)" = "$name $version" ]; then
	echo "$name $version is already on PATH ($found)"
	exit 0
fi

dir="$RUNNER_TEMP/$name"
mkdir -p "$dir"
case "${RUNNER_OS:-}/${RUNNER_ARCH:-}" in
Linux/X64) triple=x86_64-unknown-linux-gnu ;;
Linux/ARM64) triple=aarch64-unknown-linux-gnu ;;
macOS/X64) triple=x86_64-apple-darwin ;;
macOS/ARM64) triple=aarch64-apple-darwin ;;
*) triple="" ;;
esac

installed=""
if [ -n "$triple" ]; then
	repository=${GITHUB_ACTION_REPOSITORY:-${GITHUB_REPOSITORY:-}}
	base=${ACTION_RELEASE_BASE_URL:-${GITHUB_SERVER_URL:-https://github.com}/$repository/releases/download/v$version}
	url="${base%/}/$name-$version-$triple.tar.gz"
	echo "installing $name $version from $url"
	if sh "$GITHUB_ACTION_PATH/packaging/install.sh" --prefix "$dir" "$url"; then
		installed=tarball
	else
		echo "::warning title=docker-credential-stackit::no usable release tarball at $url; building $name $version from the action's source instead"
	fi
else
	echo "no release tarball for ${RUNNER_OS:-?}/${RUNNER_ARCH:-?}; building $name $version from the action's source"
fi
if [ -z "$installed" ]; then
	command -v cargo >/dev/null || die "no release tarball for this runner and no cargo to build $name; use a runner with Rust (rustup) or a platform with release tarballs"
	cargo install --locked --quiet --root "$dir" --path "$GITHUB_ACTION_PATH"
fi

bin="$dir/bin"
# GITHUB_PATH takes one directory per line: a newline in it would add another.
[[ $bin != *$'\n'* && $bin != *$'\r'* ]] || die "RUNNER_TEMP holds a line break"
echo "$bin" >>"$GITHUB_PATH"
"$bin/$name" version
