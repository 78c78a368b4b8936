#!/usr/bin/env bash
# Pins k8s.io/kubernetes at the given release and generates a replace for
# every k8s.io staging module that its go.mod lists at v0.0.0 (staging modules
# are published as v0.<minor>.<patch> of the same release).
#   usage: tests/cluster/pin.sh v1.37.2
set -euo pipefail
cd "$(dirname "$0")"
version=${1:?usage: pin.sh vX.Y.Z}
staging=v0.${version#v1.}

go mod edit -require="k8s.io/kubernetes@${version}"
for replace in $(go mod edit -json | python3 -c 'import json,sys; print(" ".join(r["Old"]["Path"] for r in json.load(sys.stdin).get("Replace") or []))'); do
  go mod edit -dropreplace="$replace"
done
gomod=$(go mod download -json "k8s.io/kubernetes@${version}" | python3 -c 'import json,sys; print(json.load(sys.stdin)["GoMod"])')
awk '/^require \(/{r=1; next} r && /^\)/{r=0} r && $1 ~ /^k8s\.io\// && $2 == "v0.0.0" {print $1}' "$gomod" |
  while read -r module; do
    go mod edit -replace="${module}=${module}@${staging}"
  done
go mod tidy
