/** A copy of the routing table safe to show: certificate and key PEM replaced, everything else kept. */
import type { RoutingTable } from './types.ts';

export function redactTable(t: RoutingTable): RoutingTable {
  return {
    binds: t.binds.map((b) => ({
      ...b,
      listeners: b.listeners.map((l) =>
        l.tls
          ? {
              ...l,
              tls: {
                ...l.tls,
                certificates: l.tls.certificates.map((c) => ({
                  ...c,
                  certPem: '<redacted>',
                  keyPem: '<redacted>',
                })),
              },
            }
          : l,
      ),
    })),
  };
}
