/** Start-up errors with stable codes: what an operator can grep for and a script can match on. */

export const ErrorCode = {
  InvalidArguments: 'SNIGATE_E_ARGS',
  ConfigInvalid: 'SNIGATE_E_CONFIG_INVALID',
  ConfigNotFound: 'SNIGATE_E_CONFIG_NOT_FOUND',
  BindFailed: 'SNIGATE_E_BIND',
  AdminBindFailed: 'SNIGATE_E_ADMIN_BIND',
  Internal: 'SNIGATE_E_INTERNAL',
} as const;

export type ErrorCodeValue = (typeof ErrorCode)[keyof typeof ErrorCode];

export class SnigateError extends Error {
  readonly code: ErrorCodeValue;
  /** Process exit status for the CLI. */
  readonly exitCode: number;

  constructor(code: ErrorCodeValue, message: string, exitCode = 2) {
    super(message);
    this.name = 'SnigateError';
    this.code = code;
    this.exitCode = exitCode;
  }
}
