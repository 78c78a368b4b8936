#!/usr/bin/env bash
# Builds the control-plane binary once per (Kubernetes release, source) and
# runs it:  tests/cluster/cluster.sh up|down|build|packages [--dir DIR]
# The binary is cached under ~/.cache/tenure/cluster/, outside the source
# tree, so later runs and CI on the same machine skip the ~7 minute build;
# beside it, the static binaries of the pause and test workload images.
# .cache/bin/kubectl links to it: kubectl of the control plane's release;
# .cache/bin/tenure-cluster too (its image and ctr commands).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
command=${1:?usage: cluster.sh up|down|build|packages [--dir DIR]}
shift

# The node runs Debian's containerd, runc and CNI plugins: installed when missing.
packages() {
  if ! command -v containerd >/dev/null || ! command -v runc >/dev/null || [[ ! -x /usr/lib/cni/bridge ]]; then
    echo "installing the node's Debian packages: containerd runc containernetworking-plugins" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      containerd runc containernetworking-plugins >/dev/null
  fi
}
[[ $command == packages ]] && { packages; exit 0; }

kube_version=$(cd "$here" && go list -m -f '{{.Version}}' k8s.io/kubernetes)
source_hash=$(cd "$here" && cat go.mod go.sum ./*.go images/*/*.go cluster.sh | sha256sum | cut -c1-12)
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
  for image in pause workload; do
    (cd "$here" && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$cache/$image" "./images/$image")
  done
  (cd "$here" && go build -trimpath -ldflags "-s -w${ldflags}" -o "$binary.tmp" .)
  mv "$binary.tmp" "$binary"
  echo "built in $(( $(date +%s) - started ))s: $binary" >&2
fi

mkdir -p "$repo/.cache/bin"
ln -sfn "$binary" "$repo/.cache/bin/kubectl"
ln -sfn "$binary" "$repo/.cache/bin/tenure-cluster"

[[ $command == build ]] && exit 0
[[ $command == up ]] && packages
exec "$binary" "$command" --dir "$repo/.cache/cluster" "$@"
