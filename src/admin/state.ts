import type { ReloadActor, ReloadResult } from '../reload.js'

/** What the running gateway tells its admin plane: readiness, and how to re-read the configuration file. */
export interface AdminState {
  ready: boolean
  /** re-read the configuration file (set by the running gateway; absent when built without a file) */
  reload?: (actor?: ReloadActor) => Promise<ReloadResult>
  /** the Prometheus text for /metrics when this process is one of several workers (all of them, aggregated) */
  metrics?: () => Promise<string>
}
