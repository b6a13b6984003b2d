/** A PingOne ACTIVITY event that revokes every session of `userId` issued before `at`. */
export function userDeleted(eventId: string, userId: string, at: number) {
  return {
    id: eventId,
    recordedAt: new Date(at).toISOString(),
    action: { type: 'USER.DELETED', description: 'User Deleted' },
    resources: [{ type: 'USER', id: userId }],
    result: { status: 'SUCCESS' },
  };
}

export interface DeliveryOutcome {
  /** The status of each attempt, in order (0: no HTTP answer: refused, reset or timed out). */
  attempts: number[];
  /** Date.now() when the 200 came back (undefined if it never did within the deadline). */
  ackedAt?: number;
}

/**
 * Posts one PingOne delivery the way PingOne does: retries on anything but a 200 (503, a refused or
 * dropped connection, a timeout) until `deadlineMs` has passed, `retryMs` apart.
 */
export async function deliver(
  url: string,
  secret: string,
  body: unknown,
  options: {
    deadlineMs?: number;
    retryMs?: number;
    timeoutMs?: number;
    /** Called with each attempt's status as it comes back. */
    onAttempt?: (status: number) => void;
  } = {},
): Promise<DeliveryOutcome> {
  const deadline = Date.now() + (options.deadlineMs ?? 30_000);
  const attempts: number[] = [];
  for (;;) {
    let status: number;
    try {
      const res = await fetch(`${url}/webhooks/pingone`, {
        method: 'POST',
        headers: { authorization: `Bearer ${secret}`, 'content-type': 'application/json' },
        body: JSON.stringify(body),
        signal: AbortSignal.timeout(options.timeoutMs ?? 5000),
      });
      status = res.status;
      await res.arrayBuffer();
    } catch {
      status = 0;
    }
    attempts.push(status);
    options.onAttempt?.(status);
    if (status === 200) return { attempts, ackedAt: Date.now() };
    if (Date.now() > deadline) return { attempts };
    await new Promise((r) => setTimeout(r, options.retryMs ?? 100));
  }
}
