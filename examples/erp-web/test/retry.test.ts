import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as client from 'openid-client';
import { backoffMs, retryable, SessionEnded, singleFlight, withRetries } from '../lib/retry.js';

const bodyError = (status: number, error: string, headers: Record<string, string> = {}) =>
  new client.ResponseBodyError('server responded with an error', {
    cause: { error },
    response: new Response(JSON.stringify({ error }), { status, headers }),
  });

const noSleep = { sleep: async () => {} };

test('network errors, 5xx and 429 are retried; invalid_grant and other 4xx are not', () => {
  assert.equal(retryable(new TypeError('fetch failed')).retry, true);
  assert.equal(retryable(bodyError(503, 'temporarily_unavailable')).retry, true);
  assert.deepEqual(retryable(bodyError(429, 'slow_down', { 'retry-after': '2' })), { retry: true, afterMs: 2000 });
  assert.equal(retryable(bodyError(400, 'invalid_grant')).retry, false);
  assert.equal(retryable(bodyError(401, 'invalid_client')).retry, false);
  assert.equal(retryable(new SessionEnded('invalid_grant')).retry, false);
});

test('back-off doubles from 200 ms with jitter and stops growing at 5 s', () => {
  assert.equal(backoffMs(0, () => 0), 100);
  assert.equal(backoffMs(0, () => 1), 200);
  assert.equal(backoffMs(3, () => 1), 1600);
  assert.equal(backoffMs(10, () => 1), 5000);
});

test('a refresh that meets a 503 and a network error succeeds on the third try, sleeping between', async () => {
  const failures: unknown[] = [bodyError(503, 'temporarily_unavailable'), new TypeError('fetch failed')];
  const slept: number[] = [];
  let calls = 0;
  const result = await withRetries(
    async () => {
      calls++;
      const f = failures.shift();
      if (f) throw f;
      return 'tokens';
    },
    { sleep: async (ms) => void slept.push(ms) },
  );
  assert.equal(result, 'tokens');
  assert.equal(calls, 3);
  assert.equal(slept.length, 2);
});

test('invalid_grant is not retried; a lasting outage gives up after the attempts', async () => {
  let calls = 0;
  await assert.rejects(
    withRetries(async () => {
      calls++;
      throw new SessionEnded('invalid_grant');
    }, noSleep),
    SessionEnded,
  );
  assert.equal(calls, 1);
  calls = 0;
  await assert.rejects(
    withRetries(async () => {
      calls++;
      throw bodyError(502, 'server_error');
    }, { ...noSleep, attempts: 4 }),
  );
  assert.equal(calls, 4);
});

test('twenty concurrent callers share one refresh; the next call after it starts another', async () => {
  const holder: { inFlight?: Promise<string> } = {};
  let runs = 0;
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  const work = async () => {
    runs++;
    await gate;
    return `token-${runs}`;
  };
  const all = Array.from({ length: 20 }, () => singleFlight(holder, work));
  release();
  assert.deepEqual(new Set(await Promise.all(all)), new Set(['token-1']));
  assert.equal(runs, 1);
  assert.equal(await singleFlight(holder, work), 'token-2');
  // A failed refresh is shared too, and does not stick.
  const failing = Array.from({ length: 5 }, () => singleFlight(holder, async () => Promise.reject(new SessionEnded('x'))));
  for (const p of failing) await assert.rejects(p, SessionEnded);
  assert.equal(holder.inFlight, undefined);
});
