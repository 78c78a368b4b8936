#!/usr/bin/env bash
# The demo storyline `make dev` plays against the samples while the operator runs.
# Watch it with: kubectl get tenants -w   (and kubectl describe tenant <name>)
set -euo pipefail
kubectl=${KUBECTL:-kubectl}
say() { printf '\n\033[1mstory: %s\033[0m\n' "$*" >&2; }
patch() { "$kubectl" patch tenant "$1" --type=merge -p "$2" >/dev/null; }

sleep 10
say "globex stops paying: suspended for 40s of grace, then its data expires"
patch globex '{"spec":{"state":"Suspended","suspensionReason":"NonPayment"}}'
sleep 5
say "initech closes its account: data expires now, purged after 30s"
patch initech '{"spec":{"state":"Closed"}}'
sleep 5
say "umbrella closes too, but a legal hold keeps its data"
patch umbrella '{"spec":{"state":"Closed"}}'
sleep 10
say "hooli's policy is created: PolicyResolved turns True"
"$kubectl" apply -f - >/dev/null <<'YAML'
apiVersion: retention.tenure.dev/v1alpha1
kind: RetentionPolicy
metadata: {name: enterprise}
spec: {suspensionGracePeriod: 30d, expiredDataRetention: 90d, activeDataRetention: 365d}
YAML
sleep 60
say "the legal hold on umbrella is released: its overdue purge starts at once"
"$kubectl" delete legalhold case-2026-114 >/dev/null
sleep 20
say "done: acme and hooli are Active; globex, initech and umbrella are Purged"
