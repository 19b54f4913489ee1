/** Validation entry point: apiVersion and metadata checks, then the per-kind validator, as the API server would run them. */

import type { Diagnostic, ObjectKey } from './diagnostics.ts';
import { CLUSTER_SCOPED, type Resource, type ResourceKind, SUPPORTED_VERSIONS } from './types.ts';
import {
  Checker,
  DNS1035_LABEL,
  DNS1123_LABEL,
  DNS1123_SUBDOMAIN,
  isObj,
  type Obj,
} from './validate-common.ts';
import {
  validateConfigMap,
  validateEndpointSlice,
  validateSecret,
  validateService,
  validateServiceImport,
} from './validate-core.ts';
import { validateGateway, validateGatewayClass } from './validate-gateway.ts';
import { validateHTTPRoute } from './validate-httproute.ts';
import { validateIngress, validateIngressClass } from './validate-ingress.ts';
import {
  validateBackendTLSPolicy,
  validateBackendTrafficPolicy,
  validateClientTrafficPolicy,
  validateSecurityPolicy,
} from './validate-policies.ts';
import { validateReferenceGrant } from './validate-referencegrant.ts';
import { validateTCPRoute, validateTLSRoute } from './validate-routes.ts';

const VALIDATORS: Record<ResourceKind, (c: Checker, o: Obj) => void> = {
  GatewayClass: validateGatewayClass,
  Gateway: validateGateway,
  TLSRoute: validateTLSRoute,
  TCPRoute: validateTCPRoute,
  HTTPRoute: validateHTTPRoute,
  ReferenceGrant: validateReferenceGrant,
  Service: validateService,
  EndpointSlice: validateEndpointSlice,
  Secret: validateSecret,
  ConfigMap: validateConfigMap,
  Namespace: () => {},
  Ingress: validateIngress,
  IngressClass: validateIngressClass,
  ServiceImport: validateServiceImport,
  BackendTrafficPolicy: validateBackendTrafficPolicy,
  ClientTrafficPolicy: validateClientTrafficPolicy,
  SecurityPolicy: validateSecurityPolicy,
  BackendTLSPolicy: validateBackendTLSPolicy,
};

/** The served-but-deprecated versions, with the API server's own warning. */
const DEPRECATED: Record<string, string> = {
  'TLSRoute gateway.networking.k8s.io/v1alpha2': 'TLSRoute',
  'TLSRoute gateway.networking.k8s.io/v1alpha3': 'TLSRoute',
  'TCPRoute gateway.networking.k8s.io/v1alpha2': 'TCPRoute',
};

export function isKnownKind(kind: unknown): kind is ResourceKind {
  return typeof kind === 'string' && Object.hasOwn(SUPPORTED_VERSIONS, kind);
}

export function objectKeyOf(o: unknown): ObjectKey | undefined {
  if (!isObj(o) || typeof o.kind !== 'string' || !isObj(o.metadata) || typeof o.metadata.name !== 'string')
    return undefined;
  const ns = o.metadata.namespace;
  return typeof ns === 'string' && ns !== ''
    ? { kind: o.kind, namespace: ns, name: o.metadata.name }
    : { kind: o.kind, name: o.metadata.name };
}

export function validateObject(obj: Resource): Diagnostic[] {
  return validateRaw(obj as unknown);
}

/** Validates anything that claims to be one of our kinds; errors mean the API server would reject it. */
export function validateRaw(o: unknown): Diagnostic[] {
  const c = new Checker(objectKeyOf(o));
  if (!isObj(o)) {
    c.error('', 'a manifest must be a mapping with apiVersion, kind and metadata');
    return c.diagnostics;
  }
  const kind = o.kind;
  if (!isKnownKind(kind)) {
    c.error('kind', `unknown kind ${JSON.stringify(kind)}`, undefined, 'unknown-kind');
    return c.diagnostics;
  }
  const versions = SUPPORTED_VERSIONS[kind];
  if (typeof o.apiVersion !== 'string' || !versions.includes(o.apiVersion)) {
    c.error(
      'apiVersion',
      `${kind} ${o.apiVersion === undefined ? 'needs an apiVersion' : `${JSON.stringify(o.apiVersion)} is not supported`}; supported: ${versions.join(', ')}`,
      `write \`apiVersion: ${versions[0]}\``,
      'unsupported-version',
    );
    return c.diagnostics;
  }
  const deprecated = DEPRECATED[`${kind} ${o.apiVersion}`];
  if (deprecated) {
    c.warn(
      'apiVersion',
      `the ${o.apiVersion.split('/')[1]} version of ${deprecated} has been deprecated and will be removed in a future release of the API`,
      `write \`apiVersion: ${versions[0]}\` (same fields)`,
      'deprecated-version',
    );
  }
  metadata(c, o, kind);
  VALIDATORS[kind](c, o);
  return c.diagnostics;
}

function metadata(c: Checker, o: Obj, kind: ResourceKind): void {
  const meta = c.obj(o.metadata, 'metadata', true);
  if (!meta) return;
  const dnsName = kind === 'Service' || kind === 'ServiceImport';
  const label = kind === 'Namespace';
  c.str(meta.name, 'metadata.name', {
    required: true,
    min: 1,
    max: dnsName || label ? 63 : 253,
    pattern: dnsName ? DNS1035_LABEL : label ? DNS1123_LABEL : DNS1123_SUBDOMAIN,
    patternText: dnsName
      ? 'a Service name is lowercase letters, digits and "-", starting with a letter'
      : 'names are lowercase letters, digits, "-" and "."',
    hint:
      meta.generateName !== undefined
        ? 'snigate needs a fixed `metadata.name`; `generateName` is not supported'
        : undefined,
  });
  if (!CLUSTER_SCOPED.has(kind)) {
    c.str(meta.namespace, 'metadata.namespace', {
      min: 1,
      max: 63,
      pattern: DNS1123_LABEL,
      patternText: 'namespaces are lowercase letters, digits and "-"',
    });
  }
  c.stringMap(meta.labels, 'metadata.labels');
  c.stringMap(meta.annotations, 'metadata.annotations');
  c.int(meta.generation, 'metadata.generation', { min: 0 });
}
