/** Turn the translator's working state into status objects shaped as the API server stores them. */
import type { Condition } from '../api/types.ts';
import { ConditionType, condition, Reason } from './conditions.ts';
import type { GatewayCtx, ListenerCtx } from './context.ts';
import type { ObjectStatus } from './options.ts';

export function gatewayStatus(gw: GatewayCtx): ObjectStatus {
  const g = gw.gateway;
  const gen = g.metadata.generation ?? 1;
  const valid = gw.listeners.filter((l) => l.accepted.ok).length;
  const all = gw.listeners.length;
  let accepted: Condition;
  if (gw.acceptProblem)
    accepted = condition(
      ConditionType.Accepted,
      false,
      gw.acceptProblem.reason,
      gw.acceptProblem.message,
      gen,
    );
  else if (valid === all)
    accepted = condition(ConditionType.Accepted, true, Reason.Accepted, 'Gateway is accepted', gen);
  else {
    const bad = gw.listeners
      .filter((l) => !l.accepted.ok)
      .map((l) => `${l.spec.name} (${l.accepted.reason})`);
    accepted = condition(
      ConditionType.Accepted,
      valid > 0,
      Reason.ListenersNotValid,
      `${all - valid} of ${all} listeners are not valid: ${bad.join(', ')}`,
      gen,
    );
  }
  let programmed: Condition;
  if (accepted.status !== 'True')
    programmed = condition(ConditionType.Programmed, false, Reason.Invalid, 'Gateway is not accepted', gen);
  else if (gw.programProblem)
    programmed = condition(
      ConditionType.Programmed,
      false,
      gw.programProblem.reason,
      gw.programProblem.message,
      gen,
    );
  else
    programmed = condition(
      ConditionType.Programmed,
      true,
      Reason.Programmed,
      'Gateway is programmed in the data plane',
      gen,
    );
  const conditions = [accepted, programmed];
  if (g.spec.tls?.backend) {
    const p = gw.gatewayRefProblems[0];
    conditions.push(
      p
        ? condition(
            ConditionType.ResolvedRefs,
            false,
            p.reason,
            gw.gatewayRefProblems.map((x) => x.message).join('; '),
            gen,
          )
        : condition(ConditionType.ResolvedRefs, true, Reason.ResolvedRefs, 'All references resolved', gen),
    );
  }
  if (gw.insecureFrontend) {
    conditions.push(
      condition(
        ConditionType.InsecureFrontendValidationMode,
        true,
        Reason.ConfigurationChanged,
        'spec.tls.frontend uses AllowInsecureFallback: clients without a valid certificate are let through',
        gen,
      ),
    );
  }
  return {
    apiVersion: g.apiVersion,
    kind: 'Gateway',
    metadata: { name: g.metadata.name, namespace: gw.namespace, generation: gen },
    status: {
      addresses: accepted.status === 'True' ? gw.statusAddresses : [],
      conditions,
      listeners: gw.listeners.map((l) => listenerStatus(l, gen)),
    },
  };
}

function listenerStatus(l: ListenerCtx, gen: number): Record<string, unknown> {
  const conditions: Condition[] = [
    condition(ConditionType.Accepted, l.accepted.ok, l.accepted.reason, l.accepted.message, gen),
    condition(ConditionType.Programmed, l.programmed.ok, l.programmed.reason, l.programmed.message, gen),
  ];
  const p = l.refProblems[0];
  conditions.push(
    p
      ? condition(
          ConditionType.ResolvedRefs,
          false,
          p.reason,
          l.refProblems.map((x) => x.message).join('; '),
          gen,
        )
      : condition(ConditionType.ResolvedRefs, true, Reason.ResolvedRefs, 'All references resolved', gen),
  );
  if (l.conflicted)
    conditions.push(
      condition(ConditionType.Conflicted, true, l.conflicted.reason, l.conflicted.message, gen),
    );
  if (l.overlapping) {
    conditions.push(
      condition(ConditionType.OverlappingTLSConfig, true, l.overlapping.reason, l.overlapping.message, gen),
    );
  }
  return {
    name: l.spec.name,
    supportedKinds: l.supportedKinds,
    attachedRoutes: l.attachedRoutes,
    conditions,
  };
}
