/** Shared shapes of the pure conversion (Ingress / legacy TLSRoute → Gateway API v1). */

export type Obj = Record<string, unknown>;

export interface InputObject {
  object: Obj;
  file: string;
}

export interface ConvertNote {
  /** `unsupported`: dropped, must be reviewed; `note`: converted, with a caveat. */
  severity: 'unsupported' | 'note';
  /** `Ingress ns/name`, `TLSRoute ns/name`. */
  object: string;
  message: string;
}

export interface ConvertOptions {
  /** gatewayClassName of the generated Gateway (default `snigate`). */
  gatewayClass?: string;
  /** Name of the generated Gateway (default `snigate`). */
  gatewayName?: string;
  /** Namespace for objects that name none, and of the generated Gateway (default: the first Ingress's). */
  namespace?: string;
}

export interface ConvertResult {
  /** Gateway API objects, plus every input object that needed no conversion, in a stable order. */
  objects: Obj[];
  notes: ConvertNote[];
  /** How many Ingresses and legacy TLSRoutes were converted. */
  converted: number;
}

export const GW_V1 = 'gateway.networking.k8s.io/v1';
export const GW_GROUP = 'gateway.networking.k8s.io';

export function isObj(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export function metaOf(o: Obj): {
  name: string;
  namespace: string | undefined;
  annotations: Record<string, string>;
} {
  const m = isObj(o.metadata) ? o.metadata : {};
  const ann = isObj(m.annotations) ? m.annotations : {};
  const annotations: Record<string, string> = {};
  for (const [k, v] of Object.entries(ann)) annotations[k] = String(v);
  return {
    name: typeof m.name === 'string' ? m.name : '',
    namespace: typeof m.namespace === 'string' && m.namespace !== '' ? m.namespace : undefined,
    annotations,
  };
}

/** A DNS-label-safe fragment of a hostname for listener and object names. */
export function slug(host: string): string {
  const s = host
    .toLowerCase()
    .replace(/^\*\./, 'wildcard.')
    .replace(/[^a-z0-9-]+/g, '-')
    .replace(/^-+|-+$/g, '');
  return s.slice(0, 50).replace(/-+$/, '') || 'default';
}
