/**
 * Resolves true once `done()` holds, checking every 10 ms, or false if it still does not
 * after `withinMs`: for a state another process or socket reaches (a count, a close seen
 * by berth) that no event in the test announces. Assert on the result.
 */
export async function until(done: () => boolean | Promise<boolean>, withinMs = 5000): Promise<boolean> {
  const deadline = Date.now() + withinMs;
  for (;;) {
    if (await done()) return true;
    if (Date.now() > deadline) return false;
    await new Promise((r) => setTimeout(r, 10));
  }
}
