/** Condition types and the upstream reason strings, and a small builder that stamps observedGeneration. */
import type { Condition } from '../api/types.ts';

export const ConditionType = {
  Accepted: 'Accepted',
  Programmed: 'Programmed',
  ResolvedRefs: 'ResolvedRefs',
  Conflicted: 'Conflicted',
  OverlappingTLSConfig: 'OverlappingTLSConfig',
  InsecureFrontendValidationMode: 'InsecureFrontendValidationMode',
} as const;

/** Reason strings exactly as `apis/v1` spells them; conformance compares them verbatim. */
export const Reason = {
  Accepted: 'Accepted',
  Programmed: 'Programmed',
  ResolvedRefs: 'ResolvedRefs',
  Pending: 'Pending',
  Invalid: 'Invalid',
  InvalidParameters: 'InvalidParameters',
  UnsupportedAddress: 'UnsupportedAddress',
  AddressNotUsable: 'AddressNotUsable',
  ListenersNotValid: 'ListenersNotValid',
  ListenersNotResolved: 'ListenersNotResolved',
  UnsupportedProtocol: 'UnsupportedProtocol',
  UnsupportedValue: 'UnsupportedValue',
  PortUnavailable: 'PortUnavailable',
  ProtocolConflict: 'ProtocolConflict',
  HostnameConflict: 'HostnameConflict',
  NoConflicts: 'NoConflicts',
  InvalidCertificateRef: 'InvalidCertificateRef',
  InvalidRouteKinds: 'InvalidRouteKinds',
  RefNotPermitted: 'RefNotPermitted',
  InvalidCACertificateRef: 'InvalidCACertificateRef',
  InvalidCACertificateKind: 'InvalidCACertificateKind',
  NoValidCACertificate: 'NoValidCACertificate',
  InvalidClientCertificateRef: 'InvalidClientCertificateRef',
  OverlappingHostnames: 'OverlappingHostnames',
  ConfigurationChanged: 'ConfigurationChanged',
  NotAllowedByListeners: 'NotAllowedByListeners',
  NoMatchingListenerHostname: 'NoMatchingListenerHostname',
  NoMatchingParent: 'NoMatchingParent',
  BackendNotFound: 'BackendNotFound',
  InvalidKind: 'InvalidKind',
  UnsupportedVersion: 'UnsupportedVersion',
} as const;

export function condition(
  type: string,
  ok: boolean,
  reason: string,
  message: string,
  observedGeneration: number,
): Condition {
  return { type, status: ok ? 'True' : 'False', reason, message, observedGeneration };
}
