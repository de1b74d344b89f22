/**
 * A cancel signal for one forwarded request: what undici's `signal` option accepts (an EventEmitter-shaped
 * object with `aborted` and `reason`), without an AbortController's EventTarget machinery, which costs a few
 * microseconds and a kilobyte of garbage per request. undici adds one listener and removes it when the request
 * ends; `abort()` calls whatever listens at that moment, once.
 */
type Listener = () => void

export class Cancel {
  aborted = false
  reason: Error | undefined = undefined
  #listeners: Listener[] = []

  abort (reason: Error): void {
    if (this.aborted) return
    this.aborted = true
    this.reason = reason
    const ls = this.#listeners
    this.#listeners = []
    for (const l of ls) l()
  }

  on (event: string, listener: Listener): this {
    if (event === 'abort' && !this.aborted) this.#listeners.push(listener)
    return this
  }

  once (event: string, listener: Listener): this { return this.on(event, listener) }
  addListener (event: string, listener: Listener): this { return this.on(event, listener) }

  removeListener (event: string, listener: Listener): this {
    if (event === 'abort') {
      const i = this.#listeners.indexOf(listener)
      if (i !== -1) this.#listeners.splice(i, 1)
    }
    return this
  }

  off (event: string, listener: Listener): this { return this.removeListener(event, listener) }

  listenerCount (event: string): number { return event === 'abort' ? this.#listeners.length : 0 }
}
