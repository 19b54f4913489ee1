/** One Ingress path → an HTTPRoute path match (and URLRewrite for rewrite-target), as ingress-nginx means it. */
import type { ConvertNote, Obj } from './types.ts';

export interface PathPlan {
  match: { type: 'PathPrefix' | 'Exact'; value: string };
  filter?: Obj;
}

const REGEX_CHARS = /[()[\]*+?^$|\\{}]/;
/** `/prefix(/|$)(.*)`: the ingress-nginx idiom for "strip this prefix", with rewrite-target `/$2`. */
const STRIP_IDIOM = /^(\/[^()[\]*+?^$|\\{}]*?)\(\/\|\$\)\(\.\*\)$/;

export function convertPath(
  p: Obj,
  regex: boolean,
  rewrite: string | undefined,
  note: (s: ConvertNote['severity'], m: string) => void,
): PathPlan | null {
  const path = typeof p.path === 'string' && p.path !== '' ? p.path : '/';
  const type = typeof p.pathType === 'string' ? p.pathType : 'ImplementationSpecific';
  if (regex && REGEX_CHARS.test(path)) {
    const m = STRIP_IDIOM.exec(path);
    if (m && rewrite !== undefined && /^(\/[^$]*?)?\/?\$2$/.test(rewrite)) {
      const prefix = m[1]!;
      const replacement = rewrite.replace(/\/?\$2$/, '') || '/';
      return {
        match: { type: 'PathPrefix', value: prefix },
        filter: {
          type: 'URLRewrite',
          urlRewrite: { path: { type: 'ReplacePrefixMatch', replacePrefixMatch: replacement } },
        },
      };
    }
    note(
      'unsupported',
      `regex path ${path}${rewrite !== undefined ? ` with rewrite-target ${rewrite}` : ''} is not converted (Gateway API has no portable regex paths)`,
    );
    return null;
  }
  let match: PathPlan['match'];
  if (type === 'Exact') match = { type: 'Exact', value: path };
  else if (type === 'Prefix') match = { type: 'PathPrefix', value: path };
  else {
    if (type !== 'ImplementationSpecific') {
      note('unsupported', `path ${path}: pathType ${type} is not a Kubernetes pathType`);
      return null;
    }
    note(
      'note',
      `path ${path}: pathType ImplementationSpecific became PathPrefix (what ingress-nginx does without use-regex)`,
    );
    match = { type: 'PathPrefix', value: path };
  }
  if (rewrite === undefined) return { match };
  if (rewrite.includes('$')) {
    note(
      'unsupported',
      `rewrite-target ${rewrite} refers to capture groups but path ${path} has none: not converted`,
    );
    return { match };
  }
  note(
    'note',
    `rewrite-target ${rewrite} on path ${path}: ingress-nginx replaces the whole path, so URLRewrite ReplaceFullPath`,
  );
  return {
    match,
    filter: {
      type: 'URLRewrite',
      urlRewrite: { path: { type: 'ReplaceFullPath', replaceFullPath: rewrite } },
    },
  };
}
