#!/usr/bin/env bash
# Runs the upstream Gateway API conformance suite against a REAL cluster with snigate installed from
# deploy/helm/snigate. It is NOT run in CI: CI has no cluster (the Kubernetes code is tested there against
# an in-process fake API server, src/config/kube-fake-server.ts).
#
# Needs: kubectl pointed at a disposable cluster (kind, k3d, or a cloud one) that can give a LoadBalancer
# Service an address (cloud, MetalLB, or cloud-provider-kind), helm 3, docker, git and Go >= 1.24.
#
# Usage:
#   scripts/conformance-on-cluster.sh                       # build, install, run the GATEWAY-TLS core set
#   KIND_CLUSTER=kind scripts/conformance-on-cluster.sh     # also `kind load` the image into that cluster
#   SUPPORTED_FEATURES=Gateway,ReferenceGrant,TLSRoute,TLSRouteModeTerminate scripts/conformance-on-cluster.sh
#   RUN_TEST=TLSRouteSimpleSameNamespace scripts/conformance-on-cluster.sh   # one test
#   SKIP_INSTALL=1 scripts/conformance-on-cluster.sh        # snigate is already installed
#
# Output: the Go test log, and a ConformanceReport YAML in $REPORT (default ./conformance-report.yaml).
set -euo pipefail

GATEWAY_API_VERSION="${GATEWAY_API_VERSION:-v1.6.1}"
IMAGE_REPOSITORY="${IMAGE_REPOSITORY:-snigate}"
IMAGE_TAG="${IMAGE_TAG:-dev}"
NAMESPACE="${NAMESPACE:-snigate-system}"
GATEWAY_CLASS="${GATEWAY_CLASS:-snigate}"
# Features snigate implements (claiming a feature makes its tests run and must pass): the GATEWAY-TLS core,
# TLS Terminate for TLSRoute and Terminate + Passthrough on one port (TLSRouteModeMixed: without claiming it,
# TLSRouteListenerMixedTerminationNotSupported would expect the ProtocolConflict snigate does not report),
# HTTPRoute and its extended features, BackendTLSPolicy.
SUPPORTED_FEATURES="${SUPPORTED_FEATURES:-Gateway,ReferenceGrant,TLSRoute,TLSRouteModeTerminate,TLSRouteModeMixed,HTTPRoute,BackendTLSPolicy,GatewayHTTPListenerIsolation,HTTPRouteHostRewrite,HTTPRoutePathRewrite,HTTPRoutePathRedirect,HTTPRouteSchemeRedirect,HTTPRoutePortRedirect,HTTPRouteResponseHeaderModification,HTTPRouteRequestMirror,HTTPRouteQueryParamMatching,HTTPRouteMethodMatching}"
CHANNEL="${CHANNEL:-standard}"
REPORT="${REPORT:-$PWD/conformance-report.yaml}"
RUN_TEST="${RUN_TEST:-}"
WORKDIR="${WORKDIR:-$(mktemp -d)}"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"

need() { command -v "$1" >/dev/null || { echo "conformance: $1 is required" >&2; exit 2; }; }
for t in kubectl helm git go; do need "$t"; done
kubectl version >/dev/null || { echo "conformance: kubectl cannot reach a cluster" >&2; exit 2; }

if [[ -z "${SKIP_INSTALL:-}" ]]; then
  need docker
  echo "== Gateway API ${GATEWAY_API_VERSION} CRDs (${CHANNEL} channel)"
  kubectl apply --server-side -f \
    "https://github.com/kubernetes-sigs/gateway-api/releases/download/${GATEWAY_API_VERSION}/${CHANNEL}-install.yaml"

  echo "== image ${IMAGE_REPOSITORY}:${IMAGE_TAG}"
  docker build -f "$ROOT/deploy/Dockerfile" -t "${IMAGE_REPOSITORY}:${IMAGE_TAG}" "$ROOT"
  if [[ -n "${KIND_CLUSTER:-}" ]]; then
    kind load docker-image "${IMAGE_REPOSITORY}:${IMAGE_TAG}" --name "$KIND_CLUSTER"
  fi

  echo "== snigate from the chart"
  helm upgrade --install snigate "$ROOT/deploy/helm/snigate" \
    --namespace "$NAMESPACE" --create-namespace \
    --set image.repository="$IMAGE_REPOSITORY" --set image.tag="$IMAGE_TAG" \
    --set controller.gatewayClass.name="$GATEWAY_CLASS" \
    --wait --timeout 5m
  kubectl -n "$NAMESPACE" rollout status deployment/snigate --timeout=5m
fi

echo "== upstream conformance suite (${GATEWAY_API_VERSION}) in ${WORKDIR}"
if [[ ! -d "$WORKDIR/gateway-api" ]]; then
  git clone --depth 1 --branch "$GATEWAY_API_VERSION" https://github.com/kubernetes-sigs/gateway-api "$WORKDIR/gateway-api"
fi
cd "$WORKDIR/gateway-api"
args=(
  --gateway-class="$GATEWAY_CLASS"
  --supported-features="$SUPPORTED_FEATURES"
  --conformance-profiles=GATEWAY-TLS
  --report-output="$REPORT"
  --organization=snigate --project=snigate --url=https://github.com/snigate/snigate
  --version="$(sed -n 's/^  "version": "\(.*\)",$/\1/p' "$ROOT/package.json")"
  --contact=https://github.com/snigate/snigate/issues
  --cleanup-base-resources=true
  --debug
)
if [[ -n "$RUN_TEST" ]]; then args+=(--run-test="$RUN_TEST"); fi
go test ./conformance -run TestConformance -v -timeout 60m -count=1 -args "${args[@]}"
echo "== report: $REPORT"
