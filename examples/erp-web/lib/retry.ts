// The refresh's failure policy, apart from Next so it is unit-tested (test/retry.test.ts):
// which errors are worth another try, the back-off, and one promise in flight per key.
import * as client from 'openid-client';

/// Tessera refused the grant (`invalid_grant`): the user must sign in again. Never retried.
export class SessionEnded extends Error {}

export function retryable(e: unknown): { retry: boolean; afterMs?: number } {
  if (e instanceof SessionEnded) return { retry: false };
  if (e instanceof client.ResponseBodyError) {
    if (e.status === 429 || e.status >= 500) {
      const after = Number(e.response.headers.get('retry-after'));
      return { retry: true, afterMs: Number.isFinite(after) && after > 0 ? Math.min(after, 30) * 1000 : undefined };
    }
    return { retry: false }; // 4xx: invalid_grant, invalid_client, … another try cannot help
  }
  if (e instanceof client.AuthorizationResponseError) return { retry: false };
  // Network errors, timeouts, a 5xx whose body is not JSON: try again.
  return { retry: true };
}

/// Exponential back-off with full jitter: 200 ms, 400 ms, … capped at 5 s.
export function backoffMs(attempt: number, random = Math.random): number {
  const base = Math.min(5000, 200 * 2 ** attempt);
  return base / 2 + random() * (base / 2);
}

export interface RetryOptions {
  attempts?: number;
  sleep?: (ms: number) => Promise<void>;
  onRetry?: (e: unknown) => void;
}

/// Runs `fn` until it succeeds, a non-retryable error, or `attempts` tries.
export async function withRetries<T>(fn: () => Promise<T>, o: RetryOptions = {}): Promise<T> {
  const attempts = o.attempts ?? 6;
  const sleep = o.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
  for (let i = 0; ; i++) {
    try {
      return await fn();
    } catch (e) {
      const { retry, afterMs } = retryable(e);
      if (!retry || i + 1 >= attempts) throw e;
      o.onRetry?.(e);
      await sleep(afterMs ?? backoffMs(i));
    }
  }
}

/// One promise in flight per holder: every caller while it runs gets the same one.
export function singleFlight<T>(holder: { inFlight?: Promise<T> }, fn: () => Promise<T>): Promise<T> {
  holder.inFlight ??= fn().finally(() => {
    holder.inFlight = undefined;
  });
  return holder.inFlight;
}
