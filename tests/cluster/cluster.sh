#!/usr/bin/env bash
# Builds the control-plane binary once per (Kubernetes release, source) and
# runs it:  tests/cluster/cluster.sh up|down|build [--dir DIR]
# The binary is cached under ~/.cache/tenure/cluster/, outside the source
# tree, so later runs and CI on the same machine skip the ~7 minute build.
# .cache/bin/kubectl links to it: kubectl of the control plane's release.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)

kube_version=$(cd "$here" && go list -m -f '{{.Version}}' k8s.io/kubernetes)
source_hash=$(cd "$here" && cat go.mod go.sum ./*.go cluster.sh | sha256sum | cut -c1-12)
cache=${XDG_CACHE_HOME:-$HOME/.cache}/tenure/cluster/${kube_version}-${source_hash}
binary=$cache/tenure-cluster

if [[ ! -x $binary ]]; then
  echo "building the Kubernetes ${kube_version} control plane (first time only)..." >&2
  started=$(date +%s)
  minor=${kube_version#v1.}; minor=${minor%%.*}
  pkg=k8s.io/component-base/version
  client=k8s.io/client-go/pkg/version
  ldflags=""
  for key_value in gitVersion=${kube_version} gitMajor=1 gitMinor=${minor} gitTreeState=clean \
                   buildDate=$(date -u +%Y-%m-%dT%H:%M:%SZ); do
    ldflags+=" -X ${pkg}.${key_value} -X ${client}.${key_value}"
  done
  mkdir -p "$cache"
  (cd "$here" && go build -trimpath -ldflags "-s -w${ldflags}" -o "$binary.tmp" .)
  mv "$binary.tmp" "$binary"
  echo "built in $(( $(date +%s) - started ))s: $binary" >&2
fi

mkdir -p "$repo/.cache/bin"
ln -sfn "$binary" "$repo/.cache/bin/kubectl"

command=${1:?usage: cluster.sh up|down|build [--dir DIR]}
shift
[[ $command == build ]] && exit 0
exec "$binary" "$command" --dir "$repo/.cache/cluster" "$@"
