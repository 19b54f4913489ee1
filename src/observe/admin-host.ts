/**
 * DNS-rebinding guard for the admin server: bound to loopback, it answers only requests whose Host is an IP
 * literal or localhost. A web page on evil.example that rebinds its name to 127.0.0.1 sends `Host: evil.example`
 * and is refused, so it cannot read /config or /status from the operator's browser.
 */
import { isIP } from 'node:net';

/** True for 127.0.0.0/8, ::1 and localhost: the binds a browser on the same machine can reach by rebinding. */
export function isLoopbackBind(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase();
  return h === 'localhost' || h === '::1' || (isIP(h) === 4 && h.startsWith('127.'));
}

/** The Host header's name without port or brackets, lowercased; null when it cannot be read. */
function hostName(header: string): string | null {
  const h = header.trim().toLowerCase();
  if (h.startsWith('[')) {
    const end = h.indexOf(']');
    return end > 0 ? h.slice(1, end) : null;
  }
  const colon = h.indexOf(':');
  // More than one colon without brackets is not a valid Host; refuse rather than guess.
  if (colon !== h.lastIndexOf(':')) return null;
  return colon >= 0 ? h.slice(0, colon) : h;
}

/**
 * Whether a request may be answered. Non-loopback binds (a pod IP, 0.0.0.0) are reached by name on purpose
 * (Services, Prometheus targets), so only loopback binds are checked.
 */
export function hostAllowed(hostHeader: string | undefined, bindHost: string): boolean {
  if (!isLoopbackBind(bindHost)) return true;
  if (hostHeader === undefined) return true; // HTTP/1.0 without Host: no browser sends that
  const name = hostName(hostHeader);
  if (name === null) return false;
  return name === 'localhost' || isIP(name) !== 0;
}
