/**
 * How many callers came in the same event-loop turn. Node runs every ready
 * socket's handler in the poll phase, then the check phase (setImmediate):
 * callers that wait there learn how many of them the turn brought, which
 * tells work that overlaps (requests under load) from work that comes
 * alone, even when each handler runs to completion without any I/O.
 */
export class TurnCount {
  private waiting: Array<(n: number) => void> = [];

  /** Resolves at the end of this turn with the number of callers in it (at least 1). */
  count(): Promise<number> {
    return new Promise((resolve) => {
      if (this.waiting.push(resolve) === 1) setImmediate(() => this.release());
    });
  }

  private release(): void {
    const waiting = this.waiting;
    this.waiting = [];
    for (const resolve of waiting) resolve(waiting.length);
  }
}
