#!/bin/sh
# Runs in the installer DaemonSet's init container: copies the plugin binary, the kubelet's
# CredentialProviderConfig and (if the Secret is mounted) the service account key onto the node.
#
# Every file is written next to its target and renamed over it, so the kubelet never execs or
# reads a half-written file, and a binary the kubelet is running right now is replaced, not
# overwritten (which would fail with "text file busy").
set -eu

SRC_BIN=${SRC_BIN:-/docker-credential-stackit}
SRC_CONFIG=${SRC_CONFIG:-/config/credential-provider-config.yaml}
SRC_KEY=${SRC_KEY:-/secret/sa-key.json}
# Host directories, mounted by the DaemonSet under /host.
BIN_DIR=${BIN_DIR:-/host/bin}
CONFIG_DIR=${CONFIG_DIR:-/host/config}
KEY_DIR=${KEY_DIR:-/host/key}
CONFIG_NAME=${CONFIG_NAME:-config.yaml}
KEY_NAME=${KEY_NAME:-sa-key.json}

say() { echo "install: $*"; }
die() { echo "install: error: $*" >&2; exit 1; }

# put SRC DIR NAME MODE: atomic copy with the given mode.
put() {
    tmp="$2/.$3.tmp.$$"
    # Created private, then opened up: the key is never readable by others, not even briefly.
    (umask 077 && cp "$1" "$tmp") || die "cannot write $tmp; is $2 a writable hostPath mount?"
    chmod "$4" "$tmp"
    mv -f "$tmp" "$2/$3"
    say "wrote $2/$3 (mode $4)"
}

# The binary runs on the node's OS, not in this image: a dynamically linked glibc build would
# work here only by luck. Refuse anything that does not run, with the fix in the message.
"$SRC_BIN" version >/dev/null 2>&1 ||
    die "$SRC_BIN does not run in this image; build the installer image from the static release binary (cargo build --release on Linux links glibc statically; see build.rs)"

[ -f "$SRC_CONFIG" ] || die "no CredentialProviderConfig at $SRC_CONFIG; is the ConfigMap mounted?"

mkdir -p "$BIN_DIR" "$CONFIG_DIR"
put "$SRC_BIN" "$BIN_DIR" docker-credential-stackit 0755
put "$SRC_CONFIG" "$CONFIG_DIR" "$CONFIG_NAME" 0644

if [ -f "$SRC_KEY" ]; then
    # The key directory holds a private key: root only.
    mkdir -p "$KEY_DIR"
    chmod 0700 "$KEY_DIR"
    put "$SRC_KEY" "$KEY_DIR" "$KEY_NAME" 0600
else
    say "no key Secret mounted at $SRC_KEY; expecting the node's own key file (see README.md)"
fi

say "$("$BIN_DIR/docker-credential-stackit" version) installed; restart the kubelet once if its flags are new"
