#!/usr/bin/env bash
# Step 2 of the GitHub Action (action.yml): points the job's tools at the helper.
#
# Inputs (env): ACTION_SERVICE_ACCOUNT_EMAIL (keyless) or ACTION_SERVICE_ACCOUNT_KEY (key JSON),
# ACTION_REGISTRIES, ACTION_AUDIENCE, ACTION_IDP_TOKEN_ENDPOINT.
# Writes to GITHUB_ENV (that is what this action is for: later steps must see the settings),
# every value validated to be one line first, so an input cannot smuggle in a variable.
# Everything it writes lives under RUNNER_TEMP: a job-private Docker config (a copy of the
# existing one, if any, plus credHelpers), the key file (0600) and the token cache. Nothing
# secret is printed.
set -euo pipefail

name=docker-credential-stackit
default_audience=sts.accounts.stackit.cloud
die() {
	echo "::error title=docker-credential-stackit::$*" >&2
	exit 1
}
trim() {
	local s=$1
	s=${s#"${s%%[![:space:]]*}"}
	printf '%s' "${s%"${s##*[![:space:]]}"}"
}
# Exports NAME=VALUE to this step and, through GITHUB_ENV, to the job's later steps.
export_var() {
	[[ $2 != *$'\n'* && $2 != *$'\r'* ]] || die "$1 would hold a line break; refused (it could set other variables)"
	printf '%s=%s\n' "$1" "$2" >>"$GITHUB_ENV"
	export "$1=$2"
}

: "${RUNNER_TEMP:?runs only on a GitHub runner (RUNNER_TEMP is not set)}"
: "${GITHUB_ENV:?runs only on a GitHub runner (GITHUB_ENV is not set)}"
command -v "$name" >/dev/null || die "$name is not on PATH (the install step did not run?)"

umask 077
dir="$RUNNER_TEMP/$name"
mkdir -p "$dir"

email=$(trim "${ACTION_SERVICE_ACCOUNT_EMAIL:-}")
key=${ACTION_SERVICE_ACCOUNT_KEY:-}
if [ -n "$email" ] && [ -n "$(trim "$key")" ]; then
	die "give service-account-email (keyless) or service-account-key, not both"
elif [ -n "$email" ]; then
	[[ $email =~ ^[^@[:space:]]+@[^@[:space:]]+\.[^@[:space:].]+$ ]] || die "service-account-email is not an e-mail address"
	if [ -z "${ACTIONS_ID_TOKEN_REQUEST_URL:-}" ] || [ -z "${ACTIONS_ID_TOKEN_REQUEST_TOKEN:-}" ]; then
		die "keyless sign-in needs the job's OIDC token: add 'permissions: id-token: write' to the job"
	fi
	export_var STACKIT_SERVICE_ACCOUNT_EMAIL "$email"
	audience=$(trim "${ACTION_AUDIENCE:-$default_audience}")
	[[ $audience =~ ^[A-Za-z0-9:/._~-]+$ ]] || die "audience may only hold letters, digits and : / . _ ~ -"
	if [ "$audience" != "$default_audience" ]; then
		# The helper asks for STACKIT's audience unless the request URL names one already.
		sep='?'
		[[ $ACTIONS_ID_TOKEN_REQUEST_URL == *\?* ]] && sep='&'
		export_var ACTIONS_ID_TOKEN_REQUEST_URL "$ACTIONS_ID_TOKEN_REQUEST_URL${sep}audience=$audience"
	fi
	endpoint=$(trim "${ACTION_IDP_TOKEN_ENDPOINT:-}")
	[ -z "$endpoint" ] || export_var STACKIT_IDP_TOKEN_ENDPOINT "$endpoint"
	who="service account $email (keyless, GitHub OIDC token for audience $audience)"
elif [ -n "$(trim "$key")" ]; then
	printf '%s' "$key" >"$dir/sa-key.json"
	chmod 600 "$dir/sa-key.json"
	export_var STACKIT_SERVICE_ACCOUNT_KEY_PATH "$dir/sa-key.json"
	who="the service account key from the service-account-key input"
else
	die "set service-account-email (keyless; the job needs 'permissions: id-token: write') or service-account-key (the key JSON from a secret)"
fi

registries=()
extra=()
for host in ${ACTION_REGISTRIES//,/ }; do
	[[ $host =~ ^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?(:[0-9]{1,5})?$ ]] || die "registries: '$host' is not a host[:port]"
	registries+=("$host")
	[ "$host" = registry.onstackit.cloud ] || extra+=("$host")
done
[ ${#registries[@]} -gt 0 ] || die "registries is empty"
if [ ${#extra[@]} -gt 0 ]; then
	export_var DOCKER_CREDENTIAL_STACKIT_REGISTRIES "$(
		IFS=,
		echo "${extra[*]}"
	)"
fi
export_var DOCKER_CREDENTIAL_STACKIT_CACHE_DIR "$dir/cache"

# A job-private Docker config: the existing one copied (earlier logins keep working), then the
# registries mapped to the helper. podman, buildah and skopeo read $DOCKER_CONFIG/config.json too.
docker_dir="$dir/docker"
mkdir -p "$docker_dir"
existing="${DOCKER_CONFIG:-$HOME/.docker}/config.json"
if [ -f "$existing" ] && [ "$existing" != "$docker_dir/config.json" ]; then
	cp "$existing" "$docker_dir/config.json"
fi
export_var DOCKER_CONFIG "$docker_dir"
args=()
for host in "${registries[@]}"; do args+=(--registry "$host"); done
"$name" configure-docker "${args[@]}"
echo "docker-config=$docker_dir" >>"$GITHUB_OUTPUT"
echo "$name answers for ${registries[*]} with $who"
