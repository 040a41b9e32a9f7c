// The active trace context kept across awaits with AsyncLocalStorage, for processes that propagate trace
// context without recording spans (no SDK tracer provider, so none of its context manager either).
import { AsyncLocalStorage } from 'node:async_hooks';
import { ROOT_CONTEXT, type Context, type ContextManager } from '@opentelemetry/api';

export class AsyncLocalContextManager implements ContextManager {
  #storage = new AsyncLocalStorage<Context>();

  active(): Context {
    return this.#storage.getStore() ?? ROOT_CONTEXT;
  }

  with<A extends unknown[], F extends (...args: A) => ReturnType<F>>(
    context: Context, fn: F, thisArg?: ThisParameterType<F>, ...args: A
  ): ReturnType<F> {
    return this.#storage.run(context, () => fn.call(thisArg, ...args));
  }

  /** Functions run in `context` whenever they are called; other targets are returned as they are. */
  bind<T>(context: Context, target: T): T {
    if (typeof target !== 'function') return target;
    const fn = target as unknown as (...a: unknown[]) => unknown;
    const run = (ctx: Context, self: unknown, a: unknown[]): unknown => this.with(ctx, () => fn.apply(self, a));
    return function (this: unknown, ...a: unknown[]) { return run(context, this, a); } as unknown as T;
  }

  enable(): this {
    return this;
  }

  disable(): this {
    this.#storage.disable();
    this.#storage = new AsyncLocalStorage<Context>();
    return this;
  }
}
