#!/bin/sh
# Copy the repo's contrib collector config next to kustomization.yaml (kustomize
# cannot read files outside its directory). Run after editing
# collector-config/otelcol-contrib.yaml; tests/test_deploy_kubernetes.py fails
# while the two differ.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
cp "$here/../../collector-config/otelcol-contrib.yaml" "$here/otelcol/otelcol-contrib.yaml"
echo "synced $here/otelcol/otelcol-contrib.yaml"
